"""monitor()/monitored()/read_monitor against NumPy float64 (tests/reference.py) over real chains, under jit,
vmap and scan, inside optax wrappers; non-finite and zero-weight handling; argument errors."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrtools as lrt
from lrtools._hyperparams import path_name
from lrtools._loop import train_step
from lrtools.diagnostics import MonitorState, monitor, monitored, read_monitor
from tests import reference as ref

RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 5))
Y = RNG.integers(0, 3, size=16)
STEPS = 4


def dtype():
  return jnp.result_type(float)


class Tiny(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(3)(nn.tanh(nn.Dense(4)(x)))


MODEL = Tiny()


_PARAMS = {}


def params0():
  """The initial parameters, drawn once per dtype (``model.init`` compiles; the tests share it)."""
  key = str(dtype())
  if key not in _PARAMS:
    init = jax.jit(lambda k: MODEL.init(k, jnp.zeros((1, 5), dtype()))["params"])
    _PARAMS[key] = jax.tree.map(lambda p: p.astype(dtype()), init(jax.random.key(0)))
  return _PARAMS[key]


def batch():
  return {"x": jnp.asarray(X, dtype()), "y": jnp.asarray(Y)}


def loss_fn(params, b):
  logits = MODEL.apply({"params": params}, b["x"])
  return optax.softmax_cross_entropy_with_integer_labels(logits, b["y"]).mean()


GRAD = jax.jit(lambda p: jax.grad(loss_fn)(p, batch()))


def named(tree):
  return {path_name(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def tol():
  # float32 sums of a few dozen squares; sqrt and division add an ulp or two
  return dict(rtol=2e-6 if dtype() == jnp.float32 else 1e-12, atol=0.0)


def assert_matches(out, expected):
  assert set(expected) <= set(out), sorted(set(expected) - set(out))
  for key, value in expected.items():
    np.testing.assert_allclose(np.asarray(out[key], np.float64), value, **tol(), err_msg=key)


def run_steps(opt, inner, params, steps=STEPS):
  """``steps`` jitted steps of ``opt`` (monitored) beside ``inner`` (the same optimizer, unmonitored); yields
  (grads, updates, params before, read_monitor) per step and checks the updates pass through unchanged."""
  step = jax.jit(chex.assert_max_traces(n=1)(
      lambda p, s, si: (lambda g: (g, *opt.update(g, s, p), *inner.update(g, si, p)))(jax.grad(loss_fn)(p, batch()))))
  state, inner_state = opt.init(params), inner.init(params)
  for _ in range(steps):
    grads, updates, state, inner_updates, inner_state = step(params, state, inner_state)
    chex.assert_trees_all_equal(updates, inner_updates)
    yield grads, updates, params, read_monitor(state)
    params = optax.apply_updates(params, updates)


def test_monitored_matches_numpy_per_leaf_and_globally_over_steps():
  n = 0
  for grads, updates, params, out in run_steps(monitored(lrt.momentum(0.1, 0.9)), lrt.momentum(0.1, 0.9), params0()):
    expected = ref.monitor_reference(named(params), named(updates), named(grads))
    assert_matches(out, expected)
    assert float(out["learning_rate"]) == pytest.approx(0.1)
    assert all(np.ndim(v) == 0 for v in out.values())
    n += 1
  assert n == STEPS


def test_monitor_last_in_a_chain_matches_numpy_and_has_no_grad_keys():
  opt = optax.chain(lrt.nesterov(0.05, 0.9), monitor())
  for _, updates, params, out in run_steps(opt, lrt.nesterov(0.05, 0.9), params0()):
    assert_matches(out, ref.monitor_reference(named(params), named(updates)))
    assert not any(k.startswith("grad_norm") for k in out)


def test_read_monitor_keys_name_quantity_and_leaf_path():
  opt = monitored(lrt.sgd(0.1))
  params = params0()
  _, state = jax.jit(opt.update)(GRAD(params), opt.init(params), params)
  leaves = ["Dense_0/bias", "Dense_0/kernel", "Dense_1/bias", "Dense_1/kernel"]
  quantities = ["grad_norm", "update_norm", "update_ratio", "weight_norm"]
  assert sorted(read_monitor(state)) == sorted(
      quantities + ["learning_rate"] + [f"{q}/{leaf}" for q in quantities for leaf in leaves])
  assert isinstance(state, MonitorState) and state.count.dtype == jnp.int32 and int(state.count) == 1


@pytest.mark.parametrize("make", [
    lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(1e-2, momentum=0.9), monitor()),
    lambda: optax.chain(lrt.adam(1e-2), monitor()),
    lambda: monitored(optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1, momentum=0.9))),
    lambda: monitored(lrt.rmsprop(1e-2)),
    lambda: monitored(optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)),
], ids=["optax-chain", "lrt-adam", "monitored-optax", "monitored-lrt", "inject_hyperparams"])
def test_inside_chains_of_lrtools_and_optax_optimizers(make):
  opt = make()
  params = params0()
  state = opt.init(params)
  for _ in range(2):
    grads = GRAD(params)
    updates, state = jax.jit(opt.update)(grads, state, params)
    out = read_monitor(state)
    expected = ref.monitor_reference(named(params), named(updates),
                                     named(grads) if "grad_norm" in out else None)
    assert_matches(out, expected)
    params = optax.apply_updates(params, updates)


def test_vmap_over_traced_learning_rates_gives_one_value_per_configuration():
  rates = jnp.asarray([0.01, 0.1, 1.0], dtype())
  params = params0()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def one(lr):
    opt = monitored(lrt.momentum(lr, 0.9))
    state = opt.init(params)
    grads = jax.grad(loss_fn)(params, batch())
    updates, state = opt.update(grads, state, params)
    return updates, read_monitor(state)

  updates, out = jax.vmap(one)(rates)
  one(rates[0])  # the same shapes again: no retrace (chex counts)
  chex.assert_shape(out["update_ratio/Dense_0/kernel"], (3,))
  np.testing.assert_allclose(np.asarray(out["learning_rate"]), np.asarray(rates), rtol=1e-7)
  grads = named(GRAD(params))
  for i in range(3):
    expected = ref.monitor_reference(named(params), named(jax.tree.map(lambda u: u[i], updates)), grads)
    assert_matches({k: v[i] for k, v in out.items()}, expected)
  # the ratio scales with the rate: momentum's first step is -lr * g
  ratio = np.asarray(out["update_ratio"], np.float64)
  np.testing.assert_allclose(ratio[1:] / ratio[:-1], [10.0, 10.0], rtol=1e-5)


def test_series_from_a_scan_match_a_python_loop_and_the_loop_keeps_the_last_step():
  opt = monitored(lrt.momentum(0.05, 0.9))
  params = params0()

  def body(carry, step):
    p, s = carry
    p, s, record = train_step(loss_fn, opt, p, s, batch(), step)
    return (p, s), read_monitor(s)

  (_, last), series = jax.jit(lambda p: jax.lax.scan(body, (p, opt.init(p)), jnp.arange(STEPS)))(params)
  chex.assert_shape(series["update_ratio/Dense_1/kernel"], (STEPS,))
  loop = [out for *_, out in run_steps(opt, lrt.momentum(0.05, 0.9), params)]
  for t in range(STEPS):
    assert_matches({k: v[t] for k, v in series.items()}, {k: float(v) for k, v in loop[t].items()})
  # the state of train_loop (one compiled scan) holds the last step
  out = lrt.train_loop(loss_fn, opt, params, opt.init(params), jax.tree.map(lambda x: x[None], batch()),
                       num_steps=STEPS)
  assert int(out.opt_state.count) == STEPS
  assert_matches(read_monitor(out.opt_state), {k: float(v[-1]) for k, v in series.items()})
  chex.assert_trees_all_equal_dtypes(opt.init(params), last)  # a valid scan carry


def test_zero_weights_give_inf_and_zero_over_zero_gives_nan():
  params = {"b": jnp.zeros(3, dtype()), "frozen": jnp.zeros(2, dtype()), "w": jnp.ones(4, dtype())}
  opt = monitored(lrt.sgd(0.1))
  grads = {"b": jnp.ones(3, dtype()), "frozen": jnp.zeros(2, dtype()), "w": jnp.ones(4, dtype())}
  _, state = opt.update(grads, opt.init(params), params)
  out = read_monitor(state)
  assert np.isposinf(out["update_ratio/b"]) and np.isnan(out["update_ratio/frozen"])
  assert float(out["update_ratio/w"]) == pytest.approx(0.1, rel=1e-6)
  assert float(out["update_ratio"]) == pytest.approx(0.1 * np.sqrt(7) / 2, rel=1e-6)
  before = read_monitor(opt.init(params))  # before any update: norms 0, ratios NaN
  assert float(before["update_norm"]) == 0.0 and np.isnan(before["update_ratio"])


def test_non_finite_updates_are_recorded_as_they_are():
  params = {"w": jnp.ones(2, dtype())}
  opt = monitored(lrt.sgd(0.1))
  _, state = opt.update({"w": jnp.array([jnp.nan, 1.0], dtype())}, opt.init(params), params)
  out = read_monitor(state)
  assert np.isnan(out["grad_norm"]) and np.isnan(out["update_ratio"]) and float(out["weight_norm"]) > 0
  _, state = opt.update({"w": jnp.array([jnp.inf, 1.0], dtype())}, opt.init(params), params)
  assert np.isposinf(read_monitor(state)["update_norm"])


def test_apply_if_finite_inside_and_outside():
  params = {"w": jnp.ones(2, dtype())}
  good, bad = {"w": jnp.ones(2, dtype())}, {"w": jnp.array([jnp.nan, 1.0], dtype())}
  # monitored around apply_if_finite: the NaN gradient is recorded, the skipped step has zero updates
  opt = monitored(optax.apply_if_finite(lrt.sgd(0.1), 3))
  _, state = opt.update(bad, opt.init(params), params)
  out = read_monitor(state)
  assert np.isnan(out["grad_norm"]) and float(out["update_norm"]) == 0.0
  # monitor inside apply_if_finite: a skipped step leaves the last finite step recorded
  opt = optax.apply_if_finite(optax.chain(lrt.sgd(0.1), monitor()), 3)
  state = opt.init(params)
  _, state = opt.update(good, state, params)
  _, state = opt.update(bad, state, params)
  assert float(read_monitor(state)["update_norm"]) == pytest.approx(0.1 * np.sqrt(2), rel=1e-6)


def test_partition_branches_are_merged_with_one_learning_rate_each():
  params = {"a": jnp.full(2, 2.0, dtype()), "b": jnp.full(3, 1.0, dtype())}
  opt = optax.partition({"fast": monitored(lrt.sgd(1.0)), "slow": monitored(lrt.sgd(0.01))}, {"a": "fast", "b": "slow"})
  grads = {"a": jnp.ones(2, dtype()), "b": jnp.ones(3, dtype())}
  updates, state = opt.update(grads, opt.init(params), params)
  out = read_monitor(state)
  assert float(out["learning_rate/fast"]) == 1.0 and float(out["learning_rate/slow"]) == pytest.approx(0.01)
  assert_matches(out, ref.monitor_reference(named(params), named(updates), named(grads)))


def test_low_precision_leaves_are_summed_in_float32():
  params = {"w": jnp.full(4096, 1.0, jnp.bfloat16)}
  opt = optax.chain(lrt.sgd(1e-3), monitor())
  _, state = opt.update({"w": jnp.ones(4096, jnp.bfloat16)}, opt.init(params), params)
  out = read_monitor(state)
  assert float(out["weight_norm"]) == 64.0 and out["weight_norm"].dtype == dtype()
  assert float(out["update_ratio"]) == pytest.approx(1e-3, rel=1e-2)  # bf16 rounding of the update


def test_monitored_passes_extra_args_on():
  seen = []

  def update(updates, state, params=None, *, value=None):
    seen.append(value)
    return updates, state

  needs_value = optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update)
  params = {"w": jnp.ones(2, dtype())}
  opt = monitored(optax.chain(optax.sgd(0.1), needs_value))
  _, state = opt.update({"w": jnp.ones(2, dtype())}, opt.init(params), params, value=3.0)
  assert seen == [3.0] and "update_ratio" in read_monitor(state)


def test_count_saturates_and_a_nested_monitor_is_hidden_by_the_outer_one():
  params = {"w": jnp.ones(2, dtype())}
  opt = monitored(optax.chain(lrt.sgd(0.1), monitor()))
  state = opt.init(params)
  state = state._replace(count=jnp.asarray(2**31 - 1, jnp.int32))
  _, state = opt.update(params, state, params)
  assert int(state.count) == 2**31 - 1 and state.count.dtype == jnp.int32
  assert "grad_norm" in read_monitor(state)  # the outer monitored() one


def test_bad_inputs_raise_value_error_naming_the_argument():
  params = {"w": jnp.ones(2, dtype())}
  with pytest.raises(ValueError, match=r"`monitored\(optimizer=\.\.\.\)`"):
    monitored("sgd")
  for opt, call in ((monitor(), "monitor.update"), (monitored(lrt.sgd(0.1)), "monitored.update")):
    with pytest.raises(ValueError, match=rf"`{call}\(params=\.\.\.\)` must be given"):
      opt.update(params, opt.init(params))
  with pytest.raises(ValueError, match=r"`read_monitor\(opt_state=\.\.\.\)`"):
    read_monitor(lrt.sgd(0.1).init(params))
  twice = optax.chain(lrt.sgd(0.1), monitor(), monitor())
  _, state = twice.update(params, twice.init(params), params)
  with pytest.raises(ValueError, match=r"`read_monitor\(opt_state=\.\.\.\)` holds several monitors of the leaf 'w'"):
    read_monitor(state)
