"""Per-layer multipliers, group assignment, discriminative spread and freezing."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

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


def test_group_errors():
  with pytest.raises(ValueError, match="matches no group"):
    assign_groups(LINEN, ["Dense_0", "Dense_1"])
  with pytest.raises(ValueError, match=r"pattern 'Dense_9' matches no parameter"):
    assign_groups(LINEN, ["Dense_9", ".*"])
  with pytest.raises(ValueError, match="receive no parameter"):
    assign_groups(LINEN, [".*", "Dense_0"])
  with pytest.raises(ValueError, match=r"`assign_groups\(syntax=\.\.\.\)`"):
    assign_groups(LINEN, GROUPS, syntax="sql")
  with pytest.raises(ValueError, match="one factor per group"):
    layer_multipliers(LINEN, GROUPS, [1.0, 0.5])
  with pytest.raises(ValueError, match=r"`layer_multipliers\(factors=\.\.\.\)` must be non-negative"):
    layer_multipliers(LINEN, GROUPS, [1.0, -0.5, 1.0])


def test_multiplier_errors():
  with pytest.raises(ValueError, match="no multiplier for the parameter 'params/Dense_2/bias'"):
    scale_by_layer({"params": {"Dense_0": 1.0, "Dense_1": 1.0}}).init(LINEN)
  with pytest.raises(ValueError, match=r"match no parameter: \['params/Dense_7'\]"):
    scale_by_layer({"params": {"Dense_0": 1.0, "Dense_1": 1.0, "Dense_2": 1.0, "Dense_7": 1.0}}).init(LINEN)
  with pytest.raises(ValueError, match=r"`scale_by_layer\(multipliers=\.\.\.\)` must be non-negative"):
    scale_by_layer({"a": -1.0})
  with pytest.raises(ValueError, match="must be finite"):
    scale_by_layer(lambda path, p: float("nan")).init(LINEN)


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
