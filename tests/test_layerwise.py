"""Per-layer multipliers, group assignment, discriminative spread and freezing."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from hypothesis import given
from hypothesis import strategies as st

from lrtools.optimizers import adam, current_hyperparams, sgd
from lrtools.transforms import (assign_groups, discriminative_multipliers, layer_multipliers, layerwise,
                                leaf_paths, scale_by_layer)


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    for width in (4, 3, 2):
      x = nn.Dense(width)(x)
    return x


LINEN = MLP().init(jax.random.PRNGKey(0), jnp.ones((1, 3)))
GROUPS = ["Dense_0", "Dense_1", "Dense_2"]


class NNXModel(nnx.Module):
  def __init__(self, rngs):
    self.body = nnx.Linear(3, 4, rngs=rngs)
    self.head = nnx.Linear(4, 2, rngs=rngs)

  def __call__(self, x):
    return self.head(nnx.relu(self.body(x)))


def test_paths_of_linen_and_nnx_trees():
  assert leaf_paths(LINEN)[:2] == ["params/Dense_0/bias", "params/Dense_0/kernel"]
  state = nnx.state(NNXModel(nnx.Rngs(0)), nnx.Param)
  assert leaf_paths(state) == ["body/bias", "body/kernel", "head/bias", "head/kernel"]
  assert leaf_paths(nnx.as_pure(state)) == leaf_paths(state)


def _ones(tree):
  return jax.tree.map(jnp.ones_like, tree)


@pytest.mark.parametrize("multipliers", [
    {"params": {"Dense_0": {"kernel": 0.1, "bias": 0.1}, "Dense_1": {"kernel": 0.5, "bias": 0.5},
                "Dense_2": {"kernel": 1.0, "bias": 1.0}}},  # the full tree
    {"params": {"Dense_0": 0.1, "Dense_1": 0.5, "Dense_2": 1.0}},  # a prefix
    lambda path, p: {"Dense_0": 0.1, "Dense_1": 0.5, "Dense_2": 1.0}[path.split("/")[1]],
], ids=["tree", "prefix", "callable"])
def test_scale_by_layer(multipliers):
  tx = scale_by_layer(multipliers)
  updates, _ = jax.jit(tx.update)(_ones(LINEN), tx.init(LINEN))
  for name, want in [("Dense_0", 0.1), ("Dense_1", 0.5), ("Dense_2", 1.0)]:
    for leaf in jax.tree.leaves(updates["params"][name]):
      np.testing.assert_allclose(np.asarray(leaf), want)


def _three_steps(opt, grads):
  @jax.jit
  def go(grads):
    state = opt.init(LINEN)
    for _ in range(3):
      updates, state = opt.update(grads, state, LINEN)
    return updates
  return go(grads)


@pytest.mark.parametrize("make", [sgd, adam], ids=["sgd", "adam"])
def test_multiplier_equals_scaling_the_learning_rate(make):
  factors = [0.1, 0.5, 2.0]
  grads = jax.tree.map(lambda p: jnp.sin(jnp.arange(p.size, dtype=p.dtype).reshape(p.shape)), LINEN)
  updates = _three_steps(optax.chain(make(0.01), scale_by_layer(layer_multipliers(LINEN, GROUPS, factors))),
                         grads)
  for name, c in zip(GROUPS, factors):
    want = _three_steps(make(0.01 * c), grads)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6),  # float32 params
                 updates["params"][name], want["params"][name])


def test_assign_groups_regex_and_glob():
  want = {"params": {f"Dense_{i}": {"bias": i, "kernel": i} for i in range(3)}}
  assert assign_groups(LINEN, GROUPS) == want
  assert assign_groups(LINEN, ["*/Dense_0/*", ["*/Dense_1/*"], "*"], syntax="glob") == want
  # ordered: the first matching group wins
  assert assign_groups(LINEN, [r"Dense_0/kernel", r".*"])["params"]["Dense_0"] == {"bias": 1, "kernel": 0}


def _named(call, name):
  """The one error form: the call, the argument, then the value echoed."""
  return rf"^`{call}\({name}=\.\.\.\)` .+, got {name}="


def test_group_errors():
  with pytest.raises(ValueError, match=_named("assign_groups", "groups") + ".*"):
    assign_groups(LINEN, ["Dense_0", "Dense_1"])
  with pytest.raises(ValueError, match=r"'params/Dense_2/bias' matches no group"):
    assign_groups(LINEN, ["Dense_0", "Dense_1"])
  with pytest.raises(ValueError, match=r"the pattern 'Dense_9' matches none"):
    assign_groups(LINEN, ["Dense_9", ".*"])
  with pytest.raises(ValueError, match=r"group\(s\) \[1\] receive none"):
    assign_groups(LINEN, [".*", "Dense_0"])
  with pytest.raises(ValueError, match=_named("assign_groups", "syntax")):
    assign_groups(LINEN, GROUPS, syntax="sql")
  with pytest.raises(ValueError, match=_named("layer_multipliers", "factors") + r".*\[1.0, 0.5\]"):
    layer_multipliers(LINEN, GROUPS, [1.0, 0.5])
  with pytest.raises(ValueError, match=r"`layer_multipliers\(factors=\.\.\.\)` must be non-negative"):
    layer_multipliers(LINEN, GROUPS, [1.0, -0.5, 1.0])


@pytest.mark.parametrize("call", [assign_groups, lambda p, g: layer_multipliers(p, g, [1.0, 1.0]),
                                  lambda p, g: discriminative_multipliers(p, g, 0.1, 1.0)],
                         ids=["assign_groups", "layer_multipliers", "discriminative_multipliers"])
def test_bad_regex_is_named(call):
  """A pattern that does not compile used to raise re.error from inside the re module."""
  with pytest.raises(ValueError, match=r"`\w+\(groups=\.\.\.\)` must be a valid regular expression .+, "
                                       r"got groups='Dense_\('"):
    call(LINEN, ["Dense_(", ".*"])


def test_multiplier_errors():
  with pytest.raises(ValueError, match=_named("scale_by_layer", "multipliers") + ".*"):
    scale_by_layer({"params": {"Dense_0": 1.0, "Dense_1": 1.0}}).init(LINEN)
  with pytest.raises(ValueError, match=r"factor for the parameter 'params/Dense_2/bias' \(gives none\)"):
    scale_by_layer({"params": {"Dense_0": 1.0, "Dense_1": 1.0}}).init(LINEN)
  with pytest.raises(ValueError, match=r"entries \['params/Dense_7'\] match none"):
    scale_by_layer({"params": {"Dense_0": 1.0, "Dense_1": 1.0, "Dense_2": 1.0, "Dense_7": 1.0}}).init(LINEN)
  with pytest.raises(ValueError, match=r"`scale_by_layer\(multipliers=\.\.\.\)` must be non-negative"):
    scale_by_layer({"a": -1.0})
  with pytest.raises(ValueError, match="must be finite"):
    scale_by_layer(lambda path, p: float("nan")).init(LINEN)
  with pytest.raises(ValueError, match=r"must be a scalar"):
    scale_by_layer(lambda path, p: jnp.ones(2)).init(LINEN)


@pytest.mark.parametrize("optimizer", ["adam", None, 0.1, lambda lr: sgd(lr), optax.sgd],
                         ids=["string", "None", "number", "factory", "optax-factory"])
def test_layerwise_needs_a_transformation(optimizer):
  """``layerwise("adam", ...)`` used to fail inside optax.chain with an AttributeError."""
  with pytest.raises(ValueError, match=_named("layerwise", "optimizer")):
    layerwise(optimizer, {"params": 1.0})


# Generated bad inputs: bools as numbers, strings/None/complex, vectors as scalars, negative factors.
_not_a_factor = st.one_of(st.booleans(), st.text(max_size=3), st.complex_numbers(min_magnitude=0.1).filter(
    lambda z: z.imag != 0), st.lists(st.floats(0.0, 2.0), min_size=1, max_size=3).map(np.asarray),
    st.floats(max_value=-1e-3), st.sampled_from([np.nan, np.inf]))
_not_groups = st.one_of(st.none(), st.booleans(), st.integers(), st.just([]), st.just([[]]), st.just([3]),
                        st.just([None, ".*"]), st.text(min_size=1, max_size=3).map(lambda t: t + "("))
_not_a_syntax = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(["REGEX", "fnmatch", ""]))


@given(case=st.one_of(
    st.tuples(st.just("scale_by_layer"), st.just("multipliers"), _not_a_factor | st.none() | st.just({})),
    st.tuples(st.just("layerwise"), st.just("multipliers"), _not_a_factor | st.none()),
    st.tuples(st.just("layer_multipliers"), st.just("factors"),
              _not_a_factor.map(lambda f: [1.0, f, 1.0]) | st.none() | st.just("abc")),
    st.tuples(st.just("discriminative_multipliers"), st.sampled_from(["low", "high"]),
              _not_a_factor | st.none() | st.just(0.0)),
    st.tuples(st.sampled_from(["assign_groups", "layer_multipliers", "discriminative_multipliers"]),
              st.just("groups"), _not_groups),
    st.tuples(st.sampled_from(["assign_groups", "layer_multipliers", "discriminative_multipliers"]),
              st.just("syntax"), _not_a_syntax)))
def test_bad_arguments_are_named(case):
  call, name, value = case
  calls = {  # each public call with good arguments, one replaced by the bad value
      "scale_by_layer": lambda multipliers=1.0: scale_by_layer(multipliers),
      "layerwise": lambda multipliers=1.0: layerwise(sgd(0.1), multipliers),
      "layer_multipliers": lambda groups=GROUPS, factors=(1.0, 1.0, 1.0), syntax="regex":
          layer_multipliers(LINEN, groups, factors, syntax=syntax),
      "discriminative_multipliers": lambda groups=GROUPS, low=0.1, high=1.0, syntax="regex":
          discriminative_multipliers(LINEN, groups, low, high, syntax=syntax),
      "assign_groups": lambda groups=GROUPS, syntax="regex": assign_groups(LINEN, groups, syntax=syntax),
  }
  with pytest.raises(ValueError, match=_named(call, name)):
    calls[call](**{name: value})


def test_discriminative_spread():
  mult = discriminative_multipliers(LINEN, GROUPS, 0.01, 1.0)
  got = [mult["params"][g]["kernel"] for g in GROUPS]
  np.testing.assert_allclose(got, [0.01, 0.1, 1.0])
  assert discriminative_multipliers(LINEN, [".*"], 0.01, 1.0)["params"]["Dense_0"]["bias"] == 1.0
  with pytest.raises(ValueError, match=r"`discriminative_multipliers\(low=\.\.\.\)` must be positive"):
    discriminative_multipliers(LINEN, GROUPS, 0.0, 1.0)
  with pytest.raises(ValueError, match="needs low <= high"):
    discriminative_multipliers(LINEN, GROUPS, 1.0, 0.1)


def test_vmap_over_the_spread():
  grads = _ones(LINEN)

  def first_layer_update(low):
    tx = optax.chain(sgd(1.0), scale_by_layer(discriminative_multipliers(LINEN, GROUPS, low, 1.0)))
    updates, _ = tx.update(grads, tx.init(LINEN), LINEN)
    return updates["params"]["Dense_0"]["bias"][0], updates["params"]["Dense_1"]["bias"][0]

  first, middle = jax.vmap(first_layer_update)(jnp.array([0.01, 0.25, 1.0]))
  np.testing.assert_allclose(np.asarray(first), [-0.01, -0.25, -1.0])
  np.testing.assert_allclose(np.asarray(middle), [-0.1, -0.5, -1.0])


def test_layerwise_freezes_without_state():
  mult = layer_multipliers(LINEN, GROUPS, [0.0, 0.5, 1.0])
  opt = layerwise(adam(0.1), mult)
  state = opt.init(LINEN)
  updates, state = jax.jit(opt.update)(_ones(LINEN), state, LINEN)
  for leaf in jax.tree.leaves(updates["params"]["Dense_0"]):
    np.testing.assert_array_equal(np.asarray(leaf), 0.0)
  np.testing.assert_allclose(np.asarray(updates["params"]["Dense_1"]["bias"]), -0.05, rtol=1e-6)
  # Adam's moments exist for the trained leaves only.
  mu = state.inner_states["trained"].inner_state[0][0].mu
  sizes = sum(x.size for x in jax.tree.leaves(mu))
  trained = sum(x.size for g in GROUPS[1:] for x in jax.tree.leaves(LINEN["params"][g]))
  assert sizes == trained
  assert float(current_hyperparams(state)["learning_rate"]) == pytest.approx(0.1)


def test_nnx_optimizer():
  params = nnx.state(NNXModel(nnx.Rngs(0)), nnx.Param)
  x, y = jnp.ones((5, 3)), jnp.zeros((5, 2))
  loss = lambda m: ((m(x) - y) ** 2).mean()
  grads = nnx.as_pure(nnx.grad(loss)(NNXModel(nnx.Rngs(0))))
  cases = [  # (transform, expected displacement of body/kernel as a multiple of 0.1·|grad|)
      (optax.chain(sgd(0.1), scale_by_layer(discriminative_multipliers(params, ["body", "head"], 1e-3, 1.0))),
       1e-3),
      (layerwise(sgd(0.1), layer_multipliers(params, ["body", "head"], [0.0, 1.0])), 0.0),
  ]
  for tx, body_factor in cases:
    model = NNXModel(nnx.Rngs(0))
    before = jax.tree.map(np.asarray, nnx.as_pure(nnx.state(model, nnx.Param)))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    optimizer.update(model, nnx.grad(loss)(model))
    moved = jax.tree.map(lambda a, b: np.asarray(a) - b, nnx.as_pure(nnx.state(model, nnx.Param)), before)
    np.testing.assert_allclose(moved["head"]["kernel"], -0.1 * grads["head"]["kernel"], rtol=1e-5)
    np.testing.assert_allclose(moved["body"]["kernel"], -0.1 * body_factor * grads["body"]["kernel"],
                               rtol=1e-3, atol=1e-9)


def test_state_survives_a_numpy_round_trip():
  """A checkpoint is a tree of NumPy arrays: restored, the state (a partition of Adam and of frozen
  leaves, with scale_by_layer's factors) continues identically, with no retrace."""
  opt = layerwise(adam(0.01), layer_multipliers(LINEN, GROUPS, [0.0, 0.5, 1.0]))

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(p, s):
    updates, s = opt.update(jax.tree.map(jnp.sin, p), s, p)
    return optax.apply_updates(p, updates), s

  a = (LINEN, opt.init(LINEN))
  for _ in range(2):
    a = step(*a)
  b = jax.tree.map(jnp.asarray, jax.tree.map(np.asarray, a))
  chex.assert_trees_all_equal_shapes_and_dtypes(a, b)
  for _ in range(3):
    a, b = step(*a), step(*b)
  chex.assert_trees_all_equal(a, b)


def test_state_can_be_donated():
  shared = jnp.asarray(0.5)
  opt = optax.chain(sgd(jnp.asarray(0.1)), scale_by_layer({"params": shared}))

  def step(p, s):
    updates, s = opt.update(_ones(p), s, p)
    return optax.apply_updates(p, updates), s

  step = jax.jit(step, donate_argnums=(0, 1))
  params = jax.tree.map(jnp.copy, LINEN)
  state = opt.init(params)
  for _ in range(2):
    params, state = step(params, state)
  np.testing.assert_allclose(np.asarray(params["params"]["Dense_0"]["bias"]),
                             np.asarray(LINEN["params"]["Dense_0"]["bias"]) - 0.1, rtol=1e-6, atol=1e-7)
  assert float(shared) == 0.5  # the caller's array was not donated
