"""Schedules against the independent references, optax, properties, tracers and bad inputs."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import lrtools as lrt
import reference as ref

N = 10_000
STEPS = np.arange(N)


def tol() -> float:
  """Relative tolerance of a comparison in the running default dtype: float64 under x64, else float32."""
  return 1e-12 if jax.config.jax_enable_x64 else 4e-6

# (name, factory, kwargs, reference(ts, **kwargs)); every family, with boundaries inside the first 10^4 steps.
CASES = [
    ("constant", lrt.constant_schedule, dict(value=0.3), lambda ts, value: ref.constant(ts, value)),
    ("step", lrt.step_decay_schedule, dict(init_value=0.1, step_size=700, factor=0.5, min_value=0.002),
     ref.step_decay),
    ("multistep", lrt.multistep_schedule, dict(init_value=0.1, milestones=[0, 1000, 3333, 7000], factor=0.3),
     ref.multistep),
    ("exponential", lrt.exponential_decay_schedule, dict(init_value=0.1, rate=3e-4), ref.exponential_decay),
    ("inverse_time", lrt.inverse_time_decay_schedule, dict(init_value=0.1, rate=1e-3), ref.inverse_time_decay),
    ("polynomial", lrt.polynomial_decay_schedule, dict(init_value=0.1, end_value=0.001, decay_steps=7777,
                                                       power=2.0), ref.polynomial_decay),
    ("cosine", lrt.cosine_decay_schedule, dict(init_value=0.1, decay_steps=8001, end_value=0.001),
     ref.cosine_decay),
    ("triangular", lrt.cyclical_schedule, dict(base_value=0.001, max_value=0.1, step_size_up=250,
                                               step_size_down=None, mode="triangular", gamma=1.0),
     lambda ts, step_size_down, **kw: ref.cyclic_lr(ts, kw["base_value"], kw["max_value"], kw["step_size_up"],
                                                    kw["step_size_up"], kw["mode"], kw["gamma"])),
    ("triangular2_asym", lrt.cyclical_schedule, dict(base_value=0.001, max_value=0.1, step_size_up=130,
                                                     step_size_down=370, mode="triangular2", gamma=1.0),
     lambda ts, **kw: ref.cyclic_lr(ts, *kw.values())),
    ("exp_range", lrt.cyclical_schedule, dict(base_value=0.001, max_value=0.1, step_size_up=300,
                                              step_size_down=200, mode="exp_range", gamma=0.9997),
     lambda ts, **kw: ref.cyclic_lr(ts, *kw.values())),
    ("cyclical_momentum", lrt.cyclical_momentum_schedule, dict(base_momentum=0.8, max_momentum=0.95,
                                                               step_size_up=333, step_size_down=111,
                                                               mode="triangular", gamma=1.0),
     lambda ts, **kw: ref.cyclic_lr(ts, *kw.values(), momentum=True)),
    ("wsd_1-sqrt", lrt.wsd_schedule, dict(peak_value=0.1, total_steps=9000, warmup_steps=500, decay_steps=None,
                                          init_value=0.0, end_value=0.0, warmup_shape="linear",
                                          decay_shape="1-sqrt"), ref.wsd),
    ("wsd_cosine_warm_square", lrt.wsd_schedule, dict(peak_value=0.1, total_steps=8000, warmup_steps=777,
                                                      decay_steps=3001, init_value=1e-3, end_value=1e-4,
                                                      warmup_shape="cosine", decay_shape="square"), ref.wsd),
    ("wsd_linear_cosine", lrt.wsd_schedule, dict(peak_value=0.1, total_steps=N - 1, warmup_steps=0,
                                                 decay_steps=N - 1, init_value=0.0, end_value=0.01,
                                                 warmup_shape="linear", decay_shape="cosine"), ref.wsd),
    ("one_cycle_cos", lrt.one_cycle_schedule, dict(total_steps=N, max_value=0.1, pct_start=0.3, div_factor=25.0,
                                                   final_div_factor=1e4, anneal="cos", three_phase=False),
     lambda ts, total_steps, max_value, pct_start, div_factor, final_div_factor, anneal, three_phase:
     ref.one_cycle(ts, total_steps, max_value / div_factor, max_value, max_value / div_factor / final_div_factor,
                   pct_start, anneal, three_phase)),
    ("one_cycle_linear_3", lrt.one_cycle_schedule, dict(total_steps=N - 3, max_value=0.1, pct_start=0.37,
                                                        div_factor=10.0, final_div_factor=100.0, anneal="linear",
                                                        three_phase=True),
     lambda ts, total_steps, max_value, pct_start, div_factor, final_div_factor, anneal, three_phase:
     ref.one_cycle(ts, total_steps, max_value / div_factor, max_value, max_value / div_factor / final_div_factor,
                   pct_start, anneal, three_phase)),
    ("one_cycle_momentum", lrt.one_cycle_momentum_schedule, dict(total_steps=N, base_momentum=0.85,
                                                                 max_momentum=0.95, pct_start=0.25, anneal="cos",
                                                                 three_phase=True),
     lambda ts, total_steps, base_momentum, max_momentum, pct_start, anneal, three_phase:
     ref.one_cycle(ts, total_steps, max_momentum, base_momentum, max_momentum, pct_start, anneal, three_phase,
                   second_start=max_momentum)),
    ("sgdr", lrt.sgdr_schedule, dict(max_value=0.1, cycle_steps=100, cycle_mult=2.0, min_value=0.001,
                                     max_decay=0.8, min_decay=0.9), ref.sgdr),
    ("sgdr_real_mult", lrt.sgdr_schedule, dict(max_value=0.1, cycle_steps=37, cycle_mult=1.5, min_value=0.0,
                                               max_decay=1.0, min_decay=1.0), ref.sgdr),
    ("sgdr_mult1", lrt.sgdr_schedule, dict(max_value=0.1, cycle_steps=300, cycle_mult=1.0, min_value=0.01,
                                           max_decay=0.95, min_decay=1.0), ref.sgdr),
]
IDS = [c[0] for c in CASES]


def _build(factory, kwargs):
  """wsd_schedule's shape and value arguments after total/warmup/decay are keyword-only."""
  if factory is lrt.wsd_schedule:
    positional = ["peak_value", "total_steps", "warmup_steps", "decay_steps"]
    return factory(*[kwargs[k] for k in positional], **{k: v for k, v in kwargs.items() if k not in positional})
  return factory(**kwargs)


@pytest.mark.x64
@pytest.mark.parametrize("name,factory,kwargs,reference", CASES, ids=IDS)
def test_matches_reference_float64(name, factory, kwargs, reference):
  got = np.asarray(jax.jit(_build(factory, kwargs))(jnp.asarray(STEPS)))
  assert got.dtype == np.float64
  np.testing.assert_allclose(got, reference(STEPS, **kwargs), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name,factory,kwargs,reference", CASES, ids=IDS)
def test_matches_reference_float32(name, factory, kwargs, reference):
  """float32 in, float32 out; the tolerance is far below one step's change, so off-by-one would fail."""
  f32 = {k: (np.float32(v) if isinstance(v, float) else v) for k, v in kwargs.items()}
  got = np.asarray(jax.jit(_build(factory, f32))(jnp.asarray(STEPS, jnp.int32)))
  assert got.dtype == np.float32
  want = reference(STEPS, **{k: (float(v) if isinstance(v, np.float32) else v) for k, v in f32.items()})
  np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6 * np.abs(want).max())


def test_smith_paper_formula_equals_symmetric_triangular():
  sched = lrt.cyclical_schedule(0.001, 0.006, step_size_up=2000)
  np.testing.assert_allclose(sched(jnp.arange(N)), ref.clr_smith(STEPS, 0.001, 0.006, 2000), rtol=tol())


F64 = pytest.param(np.float64, marks=pytest.mark.x64)


@pytest.mark.parametrize("dtype", [np.float32, F64])
@pytest.mark.parametrize("cycle_steps,cycle_mult", [(7, 1.0), (10, 2.0), (3, 3.0), (1, 2.0), (5, 4.0), (9, 9.0)])
def test_sgdr_restarts_exact_up_to_1e7(dtype, cycle_steps, cycle_mult):
  """At every restart S_i <= 10^7 the value is the cycle's maximum; one step before, near its minimum."""
  starts, lengths, length, start = [], [], cycle_steps, 0
  while start <= 10**7:
    starts.append(start)
    lengths.append(length)
    start, length = start + length, length * int(cycle_mult)
  starts = np.array(starts, np.int64)
  index = np.arange(len(starts))
  decay = dtype(max(0.5, 1e-20 ** (1 / len(starts))))  # distinguishes cycles without underflowing
  sched = jax.jit(lrt.sgdr_schedule(dtype(1.0), cycle_steps, dtype(cycle_mult), min_value=dtype(0.0),
                                    max_decay=decay))
  rtol = 1e-4 if dtype == np.float32 else 1e-9
  at_restart = np.asarray(sched(jnp.asarray(starts, jnp.int32)))
  np.testing.assert_allclose(at_restart, float(decay) ** index, rtol=rtol)
  before = np.asarray(sched(jnp.asarray(starts[1:] - 1, jnp.int32)))
  prev_length = np.array(lengths[:-1], np.float64)
  want = float(decay) ** index[:-1] * 0.5 * (1 + np.cos(np.pi * (prev_length - 1) / prev_length))
  np.testing.assert_allclose(before, want, rtol=rtol, atol=1e-6)


def test_sgdr_every_step_up_to_1e7_float32():
  ts = np.arange(10**7)
  kwargs = dict(max_value=1.0, cycle_steps=10, cycle_mult=2.0, min_value=0.0, max_decay=1.0, min_decay=1.0)
  got = np.asarray(jax.jit(lrt.sgdr_schedule(**{k: np.float32(v) for k, v in kwargs.items()}))(
      jnp.asarray(ts, jnp.int32)))
  want = ref.sgdr(ts, **kwargs)
  # Within a cycle one step changes the value by up to pi/T_i; a misplaced restart changes it by ~1.
  assert np.abs(got - want).max() < 1e-4


@pytest.mark.parametrize("dtype", [np.float32, F64])
def test_cyclical_and_one_cycle_phase_changes_exact_at_large_steps(dtype):
  up, down = 3, 7
  ts = np.concatenate([k * (up + down) + np.arange(-2, up + 3) for k in (999_998, 999_999, 1_000_000)])
  sched = lrt.cyclical_schedule(dtype(0.0), dtype(1.0), up, down)
  want = ref.cyclic_lr(ts, 0.0, 1.0, up, down, "triangular", 1.0)
  np.testing.assert_allclose(sched(jnp.asarray(ts, jnp.int32)), want, atol=1e-6)
  total = 10**7
  cycle = lrt.one_cycle_schedule(total, dtype(1.0), pct_start=dtype(0.25), anneal="linear")
  edges = np.array([0, 1, 2_499_998, 2_499_999, 2_500_000, 2_500_001, total - 2, total - 1, total, total + 5])
  want = ref.one_cycle(edges, total, 1 / 25, 1.0, 1 / 25 / 1e4, 0.25, "linear", False)
  # atol: float32 resolves a 10^7-step anneal to ~1e-7 of its range; the phase ends themselves are exact.
  np.testing.assert_allclose(cycle(jnp.asarray(edges, jnp.int32)), want, rtol=1e-5, atol=3e-8)


def test_warmup_matches_reference():
  inner = dict(init_value=0.1, decay_steps=5000, end_value=0.001)
  got = lrt.warmup_schedule(lrt.cosine_decay_schedule(**inner), warmup_steps=500, init_value=1e-4)(STEPS)
  want = ref.warmup(STEPS, lambda ts: ref.cosine_decay(ts, **inner), 500, 1e-4)
  np.testing.assert_allclose(got, want, rtol=tol(), atol=tol() * 0.1)
  zero = lrt.warmup_schedule(lrt.cosine_decay_schedule(**inner), warmup_steps=0)(STEPS)
  np.testing.assert_allclose(zero, ref.cosine_decay(STEPS, **inner), rtol=tol(), atol=tol() * 0.1)


# --- optax, where the semantics are the same -------------------------------------------------------------

# Built inside the test: a schedule's dtype is fixed at construction, so it must be made under x64.
OPTAX_PAIRS = [
    lambda: (lrt.exponential_decay_schedule(0.1, 3e-4), optax.exponential_decay(0.1, 1, np.exp(-3e-4))),
    lambda: (lrt.cosine_decay_schedule(0.1, 8001, 0.001), optax.cosine_decay_schedule(0.1, 8001, alpha=0.01)),
    lambda: (lrt.polynomial_decay_schedule(0.1, 0.001, 7777, 2.0), optax.polynomial_schedule(0.1, 0.001, 2.0, 7777)),
    lambda: (lrt.multistep_schedule(0.1, [1000, 3333], 0.3),
     optax.piecewise_constant_schedule(0.1, {1000: 0.3, 3333: 0.3})),
    lambda: (lrt.step_decay_schedule(0.1, 700, 0.5), optax.exponential_decay(0.1, 700, 0.5, staircase=True)),
    lambda: (lrt.join_schedules([lrt.constant_schedule(0.1), lrt.cosine_decay_schedule(0.1, 3000)], [1234]),
     optax.join_schedules([optax.constant_schedule(0.1), optax.cosine_decay_schedule(0.1, 3000)], [1234])),
    lambda: (lrt.warmup_schedule(lrt.cosine_decay_schedule(0.1, 5000, 0.001), 500),
     optax.warmup_cosine_decay_schedule(0.0, 0.1, 500, 5500, 0.001)),
]


@pytest.mark.x64
@pytest.mark.skipif(jax.config.jax_numpy_dtype_promotion == "strict",
                    reason="optax's schedules promote an integer count to float implicitly")
@pytest.mark.parametrize("pair", OPTAX_PAIRS, ids=[f"pair{i}" for i in range(len(OPTAX_PAIRS))])
def test_agrees_with_optax(pair):
  """Same semantics, compared in float64 (in float32 optax's ``decay_rate ** (t/T)`` drifts by 5e-4 relative
  over 10^4 steps from rounding ``e^{-k}``; lrtools' float32 accuracy is checked against the references)."""
  ours, theirs = pair()
  chex.assert_trees_all_close(ours(jnp.asarray(STEPS)), jax.vmap(theirs)(jnp.asarray(STEPS)), rtol=1e-9,
                              atol=1e-12)


# --- properties ------------------------------------------------------------------------------------------

pos_steps = st.integers(1, 60)
values = st.floats(1e-5, 1.0)
CYCLE_T = jnp.arange(4 * 120)
ONE_CYCLE_T = jnp.arange(5003)


# Hyperparameters are traced arguments, so each property compiles once for all hypothesis examples.
@functools.partial(jax.jit, static_argnames="mode")
def _cyclical_values(low, high, up, down, gamma, mode):
  return lrt.cyclical_schedule(low, high, up, down, mode=mode, gamma=gamma)(CYCLE_T)


@functools.partial(jax.jit, static_argnames=("anneal", "three_phase"))
def _one_cycle_values(total, peak, pct, div, final_div, anneal, three_phase):
  return lrt.one_cycle_schedule(total, peak, pct, div, final_div, anneal, three_phase)(ONE_CYCLE_T)


@given(values, values, pos_steps, pos_steps, st.sampled_from(lrt.schedules._cyclical.CYCLICAL_MODES),
       st.floats(0.9, 1.0))
def test_cyclical_bounds_and_period(a, b, up, down, mode, gamma):
  low, high = min(a, b), max(a, b)
  v = np.asarray(_cyclical_values(low, high, up, down, gamma, mode))[:4 * (up + down)]
  assert np.all(v >= low - tol()) and np.all(v <= high + tol())
  peak = high - low if mode != "exp_range" else (high - low) * gamma ** up
  assert v[0] == pytest.approx(low, rel=tol()) and v[up] == pytest.approx(low + peak, rel=tol())
  if mode == "triangular":
    np.testing.assert_allclose(v[up + down:], v[:-(up + down)], rtol=tol())
  if mode != "exp_range":  # exp_range's amplitude decays every step, so its rise need not be monotone
    assert np.all(np.diff(v[:up + 1]) >= -tol())
  assert np.all(np.diff(v[up:up + down + 1]) <= tol())


@given(st.integers(10, 5000), values, st.floats(0.05, 0.45), st.floats(1.0, 100.0), st.floats(1.0, 1e4),
       st.sampled_from(["cos", "linear"]), st.booleans())
def test_one_cycle_endpoints_and_monotone_phases(total, peak, pct, div, final_div, anneal, three_phase):
  assume(pct * total > 1)  # otherwise the warmup phase has no step (a ValueError, tested below)
  lrt.one_cycle_schedule(total, peak, pct, div, final_div, anneal, three_phase)  # concrete checks pass
  v = np.asarray(_one_cycle_values(total, peak, pct, div, final_div, anneal, three_phase))[:total + 3]
  assert v[0] == pytest.approx(peak / div, rel=tol())
  assert v[total - 1] == pytest.approx(peak / (div * final_div), rel=tol())
  np.testing.assert_allclose(v[total:], v[total - 1], rtol=tol())
  assert np.all(v <= peak * (1 + tol())) and np.all(v >= peak / (div * final_div) * (1 - tol()))
  rise_end = int(np.floor(pct * total - 1))
  assert np.all(np.diff(v[:rise_end + 1]) >= -tol())
  assert np.all(np.diff(v[rise_end + 1:total]) <= tol())


@given(values, st.floats(0.0, 1.0), st.integers(1, 50), st.sampled_from([1.0, 1.5, 2.0, 3.0]),
       st.floats(0.1, 1.0), st.floats(0.1, 1.0))
def test_sgdr_bounds(high, frac, cycle_steps, mult, max_decay, min_decay):
  low = high * frac
  v = np.asarray(lrt.sgdr_schedule(high, cycle_steps, mult, low, max_decay, min_decay)(jnp.arange(2000)))
  assert np.all(v <= high * (1 + tol())) and np.all(v >= 0)
  assert v[0] == pytest.approx(high)
  np.testing.assert_allclose(v, ref.sgdr(range(2000), high, cycle_steps, mult, low, max_decay, min_decay),
                             rtol=tol(), atol=tol() * high)


@given(values, values, st.integers(1, 100), st.floats(0.1, 1.0))
def test_step_decay_within_bounds_and_monotone(a, b, step, factor):
  low, high = min(a, b), max(a, b)
  v = np.asarray(lrt.step_decay_schedule(high, step, factor, low)(jnp.arange(1000)))
  assert np.all(v <= high) and np.all(v >= low) and np.all(np.diff(v) <= 0)


# --- tracers: vmap over every argument, and no recompilation ---------------------------------------------

# (factory, base kwargs, argument, values to vmap over)
VMAP_CASES = [
    (lrt.constant_schedule, dict(value=0.1), "value", [0.1, 0.2, 0.5]),
    *[(lrt.step_decay_schedule, dict(init_value=0.1, step_size=7, factor=0.5, min_value=0.001), arg, vals)
      for arg, vals in [("init_value", [0.1, 0.3]), ("step_size", [3, 7, 11]), ("factor", [0.2, 0.9]),
                        ("min_value", [0.0, 0.01])]],
    *[(lrt.multistep_schedule, dict(init_value=0.1, milestones=[5, 20], factor=0.1), arg, vals)
      for arg, vals in [("init_value", [0.1, 0.3]), ("milestones", [[5, 20], [1, 30], [0, 2]]),
                        ("factor", [0.1, 0.5])]],
    *[(lrt.exponential_decay_schedule, dict(init_value=0.1, rate=0.01), arg, vals)
      for arg, vals in [("init_value", [0.1, 0.3]), ("rate", [0.0, 0.01, 0.1])]],
    *[(lrt.inverse_time_decay_schedule, dict(init_value=0.1, rate=0.01), arg, vals)
      for arg, vals in [("init_value", [0.1, 0.3]), ("rate", [0.0, 0.01, 0.1])]],
    *[(lrt.polynomial_decay_schedule, dict(init_value=0.1, end_value=0.01, decay_steps=30, power=2.0), arg, vals)
      for arg, vals in [("init_value", [0.1, 0.3]), ("end_value", [0.0, 0.05]), ("decay_steps", [10, 30, 45]),
                        ("power", [0.5, 1.0, 3.0])]],
    *[(lrt.cosine_decay_schedule, dict(init_value=0.1, decay_steps=30, end_value=0.01), arg, vals)
      for arg, vals in [("init_value", [0.1, 0.3]), ("decay_steps", [10, 30, 45]), ("end_value", [0.0, 0.05])]],
    *[(lrt.cyclical_schedule, dict(base_value=0.01, max_value=0.1, step_size_up=5, step_size_down=7,
                                   mode="exp_range", gamma=0.99), arg, vals)
      for arg, vals in [("base_value", [0.0, 0.01]), ("max_value", [0.1, 0.5]), ("step_size_up", [2, 5, 9]),
                        ("step_size_down", [1, 7]), ("gamma", [0.9, 1.0])]],
    (lrt.cyclical_schedule, dict(base_value=0.01, max_value=0.1, step_size_up=5, mode="triangular2"),
     "step_size_up", [2, 5, 9]),
    *[(lrt.cyclical_momentum_schedule, dict(base_momentum=0.8, max_momentum=0.95, step_size_up=5), arg, vals)
      for arg, vals in [("base_momentum", [0.8, 0.85]), ("max_momentum", [0.9, 0.99]), ("step_size_up", [3, 6])]],
    *[(lrt.one_cycle_schedule, dict(total_steps=50, max_value=0.1, pct_start=0.3, div_factor=25.0,
                                    final_div_factor=1e4), arg, vals)
      for arg, vals in [("total_steps", [20, 50, 61]), ("max_value", [0.1, 1.0]), ("pct_start", [0.2, 0.45]),
                        ("div_factor", [10.0, 25.0]), ("final_div_factor", [10.0, 1e4])]],
    (lrt.one_cycle_schedule, dict(total_steps=50, max_value=0.1, three_phase=True), "total_steps", [20, 50, 61]),
    *[(lrt.one_cycle_momentum_schedule, dict(total_steps=50), arg, vals)
      for arg, vals in [("total_steps", [20, 50]), ("base_momentum", [0.8, 0.85]), ("max_momentum", [0.9, 0.95]),
                        ("pct_start", [0.2, 0.4])]],
    *[(lrt.sgdr_schedule, dict(max_value=0.1, cycle_steps=4, cycle_mult=2.0, min_value=0.001, max_decay=0.9,
                               min_decay=0.9), arg, vals)
      for arg, vals in [("max_value", [0.1, 0.2]), ("cycle_steps", [2, 4, 7]), ("cycle_mult", [1.0, 1.5, 2.0, 3.0]),
                        ("min_value", [0.0, 0.01]), ("max_decay", [0.5, 1.0]), ("min_decay", [0.5, 1.0])]],
]
T_SMALL = jnp.arange(64)


def _case_id(case):
  return f"{case[0].__name__}-{case[2]}"


@pytest.mark.parametrize("factory,kwargs,arg,vals", VMAP_CASES, ids=[_case_id(c) for c in VMAP_CASES])
def test_vmap_over_argument_equals_one_schedule_per_value(factory, kwargs, arg, vals):
  batched = jax.vmap(lambda v: factory(**{**kwargs, arg: v})(T_SMALL))(jnp.asarray(vals))
  for row, v in zip(batched, vals):
    np.testing.assert_allclose(row, factory(**{**kwargs, arg: v})(T_SMALL), rtol=tol(), atol=tol() * 1e-3)


def test_warmup_and_join_accept_traced_steps():
  inner = lrt.cosine_decay_schedule(0.1, 20)
  warm = jax.vmap(lambda w: lrt.warmup_schedule(inner, w, init_value=0.01)(T_SMALL))(jnp.array([0, 5, 9]))
  for row, w in zip(warm, [0, 5, 9]):
    np.testing.assert_allclose(row, lrt.warmup_schedule(inner, w, init_value=0.01)(T_SMALL), rtol=tol())
  parts = [lrt.constant_schedule(0.1), inner, lrt.constant_schedule(0.001)]
  joined = jax.vmap(lambda b: lrt.join_schedules(parts, b)(T_SMALL))(jnp.array([[3, 30], [10, 11]]))
  for row, b in zip(joined, [[3, 30], [10, 11]]):
    np.testing.assert_allclose(row, lrt.join_schedules(parts, b)(T_SMALL), rtol=tol())


@pytest.mark.parametrize("factory,kwargs,arg,vals", VMAP_CASES[::3], ids=[_case_id(c) for c in VMAP_CASES[::3]])
def test_jit_does_not_recompile_when_a_hyperparameter_changes(factory, kwargs, arg, vals):
  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(value, count):
    return factory(**{**kwargs, arg: value})(count)

  for v in vals:
    np.testing.assert_allclose(run(jnp.asarray(v), T_SMALL), factory(**{**kwargs, arg: v})(T_SMALL),
                               rtol=tol(), atol=tol() * 1e-3)


def test_dtype_follows_inputs():
  assert lrt.sgdr_schedule(0.1, 10)(3).dtype == jnp.result_type(float)  # float32, float64 under x64
  assert lrt.sgdr_schedule(np.float32(0.1), 10)(3).dtype == jnp.float32
  assert lrt.cyclical_schedule(jnp.float32(0.0), jnp.float32(1.0), 10)(jnp.int32(3)).dtype == jnp.float32
  assert lrt.one_cycle_schedule(100, jnp.bfloat16(0.1), pct_start=jnp.bfloat16(0.25), div_factor=jnp.bfloat16(25),
                                final_div_factor=jnp.bfloat16(1e4))(3).dtype == jnp.bfloat16


# --- bad inputs -------------------------------------------------------------------------------------------

BAD = [
    (lrt.constant_schedule, dict(value=float("nan")), "value"),
    (lrt.step_decay_schedule, dict(init_value=-0.1, step_size=10), "init_value"),
    (lrt.step_decay_schedule, dict(init_value=0.1, step_size=0), "step_size"),
    (lrt.step_decay_schedule, dict(init_value=0.1, step_size=-3), "step_size"),
    (lrt.step_decay_schedule, dict(init_value=0.1, step_size=10, factor=0.0), "factor"),
    (lrt.step_decay_schedule, dict(init_value=0.1, step_size=10, factor=1.5), "factor"),
    (lrt.step_decay_schedule, dict(init_value=0.1, step_size=10, min_value=0.5), "min_value"),
    (lrt.multistep_schedule, dict(init_value=0.1, milestones=[30, 10]), "milestones"),
    (lrt.multistep_schedule, dict(init_value=0.1, milestones=[10, 10]), "milestones"),
    (lrt.multistep_schedule, dict(init_value=0.1, milestones=[-1, 10]), "milestones"),
    (lrt.multistep_schedule, dict(init_value=0.1, milestones=[10], factor=-0.1), "factor"),
    (lrt.exponential_decay_schedule, dict(init_value=0.1, rate=-0.1), "rate"),
    (lrt.exponential_decay_schedule, dict(init_value=float("inf"), rate=0.1), "init_value"),
    (lrt.inverse_time_decay_schedule, dict(init_value=0.1, rate=-1.0), "rate"),
    (lrt.polynomial_decay_schedule, dict(init_value=0.1, end_value=0.0, decay_steps=0), "decay_steps"),
    (lrt.polynomial_decay_schedule, dict(init_value=0.1, end_value=0.0, decay_steps=10, power=0.0), "power"),
    (lrt.polynomial_decay_schedule, dict(init_value=0.1, end_value=-1.0, decay_steps=10), "end_value"),
    (lrt.cosine_decay_schedule, dict(init_value=0.1, decay_steps=0), "decay_steps"),
    (lrt.cosine_decay_schedule, dict(init_value=0.1, decay_steps=10, end_value=0.2), "end_value"),
    (lrt.cyclical_schedule, dict(base_value=0.2, max_value=0.1, step_size_up=10), "base_value"),
    (lrt.cyclical_schedule, dict(base_value=0.01, max_value=0.1, step_size_up=0), "step_size_up"),
    (lrt.cyclical_schedule, dict(base_value=0.01, max_value=0.1, step_size_up=5, step_size_down=-1), "step_size_down"),
    (lrt.cyclical_schedule, dict(base_value=0.01, max_value=0.1, step_size_up=5, mode="sawtooth"), "mode"),
    (lrt.cyclical_schedule, dict(base_value=0.01, max_value=0.1, step_size_up=5, mode="exp_range", gamma=1.5),
     "gamma"),
    (lrt.cyclical_schedule, dict(base_value=0.01, max_value=0.1, step_size_up=5, mode="exp_range", gamma=0.0),
     "gamma"),
    (lrt.cyclical_momentum_schedule, dict(base_momentum=0.95, max_momentum=0.85, step_size_up=5), "base_momentum"),
    (lrt.cyclical_momentum_schedule, dict(base_momentum=0.85, max_momentum=1.2, step_size_up=5), "max_momentum"),
    (lrt.one_cycle_schedule, dict(total_steps=0, max_value=0.1), "total_steps"),
    (lrt.one_cycle_schedule, dict(total_steps=100, max_value=-0.1), "max_value"),
    (lrt.one_cycle_schedule, dict(total_steps=100, max_value=0.1, pct_start=1.0), "pct_start"),
    (lrt.one_cycle_schedule, dict(total_steps=100, max_value=0.1, pct_start=0.0), "pct_start"),
    (lrt.one_cycle_schedule, dict(total_steps=3, max_value=0.1, pct_start=0.3), "pct_start"),
    (lrt.one_cycle_schedule, dict(total_steps=100, max_value=0.1, pct_start=0.6, three_phase=True), "pct_start"),
    (lrt.one_cycle_schedule, dict(total_steps=100, max_value=0.1, div_factor=0.5), "div_factor"),
    (lrt.one_cycle_schedule, dict(total_steps=100, max_value=0.1, final_div_factor=0.0), "final_div_factor"),
    (lrt.one_cycle_schedule, dict(total_steps=100, max_value=0.1, anneal="cosine"), "anneal"),
    (lrt.one_cycle_momentum_schedule, dict(total_steps=100, base_momentum=0.95, max_momentum=0.9), "base_momentum"),
    (lrt.one_cycle_momentum_schedule, dict(total_steps=100, anneal="exp"), "anneal"),
    (lrt.sgdr_schedule, dict(max_value=0.1, cycle_steps=0), "cycle_steps"),
    (lrt.sgdr_schedule, dict(max_value=0.1, cycle_steps=10, cycle_mult=0.5), "cycle_mult"),
    (lrt.sgdr_schedule, dict(max_value=0.1, cycle_steps=10, min_value=0.2), "min_value"),
    (lrt.sgdr_schedule, dict(max_value=-0.1, cycle_steps=10), "max_value"),
    (lrt.sgdr_schedule, dict(max_value=0.1, cycle_steps=10, max_decay=0.0), "max_decay"),
    (lrt.sgdr_schedule, dict(max_value=0.1, cycle_steps=10, min_decay=1.1), "min_decay"),
    (lrt.warmup_schedule, dict(schedule=0.1, warmup_steps=10), "schedule"),
    (lrt.warmup_schedule, dict(schedule=lrt.constant_schedule(0.1), warmup_steps=-1), "warmup_steps"),
    (lrt.join_schedules, dict(schedules=[lrt.constant_schedule(0.1)] * 2, boundaries=[10, 20]), "boundaries"),
    (lrt.join_schedules, dict(schedules=[lrt.constant_schedule(0.1)] * 3, boundaries=[20, 10]), "boundaries"),
    (lrt.join_schedules, dict(schedules=[], boundaries=[]), "schedules"),
]


@pytest.mark.parametrize("factory,kwargs,arg", BAD, ids=[f"{f.__name__}-{a}" for f, _, a in BAD])
def test_bad_input_raises_naming_the_argument(factory, kwargs, arg):
  with pytest.raises(ValueError, match=rf"`{factory.__name__}\(.*{arg}=\.\.\..*got .*{arg}="):
    factory(**kwargs)


def test_tracers_skip_construction_checks():
  # A traced value cannot be checked at construction; building under jit must still work.
  out = jax.jit(lambda c: lrt.sgdr_schedule(0.1, c)(jnp.arange(3)))(jnp.int32(2))
  assert out.shape == (3,)


# --- generated bad inputs: every argument of every schedule ----------------------------------------------

VALID = {  # one valid call per factory; each argument is replaced in turn by a generated bad value
    lrt.constant_schedule: dict(value=0.1),
    lrt.step_decay_schedule: dict(init_value=0.1, step_size=10, factor=0.5, min_value=0.0),
    lrt.multistep_schedule: dict(init_value=0.1, milestones=[10, 20], factor=0.1),
    lrt.exponential_decay_schedule: dict(init_value=0.1, rate=0.01),
    lrt.inverse_time_decay_schedule: dict(init_value=0.1, rate=0.01),
    lrt.polynomial_decay_schedule: dict(init_value=0.1, end_value=0.0, decay_steps=100, power=1.0),
    lrt.cosine_decay_schedule: dict(init_value=0.1, decay_steps=100, end_value=0.0),
    lrt.cyclical_schedule: dict(base_value=0.01, max_value=0.1, step_size_up=10, step_size_down=5,
                                mode="exp_range", gamma=0.99),
    lrt.cyclical_momentum_schedule: dict(base_momentum=0.85, max_momentum=0.95, step_size_up=10, step_size_down=5,
                                         mode="triangular", gamma=1.0),
    lrt.one_cycle_schedule: dict(total_steps=100, max_value=0.1, pct_start=0.3, div_factor=25.0,
                                 final_div_factor=1e4, anneal="cos", three_phase=False),
    lrt.one_cycle_momentum_schedule: dict(total_steps=100, base_momentum=0.85, max_momentum=0.95, pct_start=0.3,
                                          anneal="cos", three_phase=False),
    lrt.sgdr_schedule: dict(max_value=0.1, cycle_steps=10, cycle_mult=2.0, min_value=0.0, max_decay=1.0,
                            min_decay=1.0),
    lrt.wsd_schedule: dict(peak_value=0.1, total_steps=100, warmup_steps=10, decay_steps=20, init_value=0.0,
                           end_value=0.0, warmup_shape="linear", decay_shape="1-sqrt"),
    lrt.warmup_schedule: dict(schedule=lrt.constant_schedule(0.1), warmup_steps=10, init_value=0.0),
    lrt.join_schedules: dict(schedules=[lrt.constant_schedule(0.1)] * 2, boundaries=[10]),
}
STEP_ARGS = {"step_size", "decay_steps", "step_size_up", "step_size_down", "total_steps", "cycle_steps",
             "warmup_steps"}
SEQUENCE_ARGS = {"milestones", "boundaries"}
STRING_ARGS = {"mode", "anneal", "warmup_shape", "decay_shape"}
FLAG_ARGS = {"three_phase"}
CALLABLE_ARGS = {"schedule", "schedules"}

NOT_A_REAL_SCALAR = st.one_of(
    st.booleans(), st.sampled_from([np.bool_(True), np.array(False)]),  # bools are not numbers
    st.text(max_size=4), st.none(),  # strings and None are not numbers
    st.lists(st.floats(0.01, 0.5), min_size=2, max_size=3),  # vectors are not scalars
    st.builds(np.full, st.sampled_from([(2,), (1,), (1, 1)]), st.floats(0.01, 0.5)),
    st.complex_numbers(min_magnitude=0.1, max_magnitude=0.5).filter(lambda z: z.imag != 0),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
)
NOT_A_STEP_COUNT = st.one_of(
    NOT_A_REAL_SCALAR, st.integers(2**31, 2**70),  # integers that overflow int32
    st.integers(max_value=-1), st.floats(0.1, 1e6).filter(lambda x: x != round(x)),  # negative, fractional
)
NOT_STEPS = st.one_of(
    st.lists(st.integers(2**31, 2**40), min_size=1, max_size=1), st.just([[1, 2]]), st.just([5, 5]),
    st.just([3, 2]), st.lists(st.booleans(), min_size=1, max_size=1), st.just(["a"]), st.just([0.5]),
)
NOT_A_FLAG = st.one_of(st.text(max_size=5), st.none(), st.integers(0, 1), st.floats(0, 1))
NOT_A_NAME = st.one_of(st.text(max_size=8).filter(lambda s: s not in ("triangular", "triangular2", "exp_range",
                                                                      "cos", "linear", "1-sqrt", "cosine",
                                                                      "square")),
                       st.none(), st.integers(), st.booleans())
BAD_CASES = [(f, a) for f, kwargs in VALID.items() for a in kwargs]


def _bad_values(arg):
  if arg in ("step_size_down", "decay_steps"):  # None is their documented default
    return NOT_A_STEP_COUNT.filter(lambda v: v is not None)
  if arg in STEP_ARGS:
    return NOT_A_STEP_COUNT
  if arg in SEQUENCE_ARGS:
    return NOT_STEPS
  if arg in FLAG_ARGS:
    return NOT_A_FLAG
  if arg in STRING_ARGS:
    return NOT_A_NAME
  if arg in CALLABLE_ARGS:
    return st.one_of(st.floats(0.1, 1.0), st.text(max_size=3), st.none())
  return NOT_A_REAL_SCALAR


@pytest.mark.parametrize("factory,arg", BAD_CASES, ids=[f"{f.__name__}-{a}" for f, a in BAD_CASES])
@given(data=st.data())
def test_generated_bad_inputs_raise_naming_the_call_and_argument(factory, arg, data):
  value = data.draw(_bad_values(arg), label=arg)
  kwargs = {**VALID[factory], arg: value}
  if factory is lrt.step_decay_schedule and arg == "init_value":
    kwargs["min_value"] = 0.0
  with pytest.raises(ValueError, match=rf"`{factory.__name__}\(.*{arg}=\.\.\..*got .*{arg}="):
    _build(factory, kwargs)


def test_valid_calls_build():
  for factory, kwargs in VALID.items():
    assert np.all(np.isfinite(np.asarray(_build(factory, kwargs)(jnp.arange(5)))))


def test_a_shape_one_tracer_is_rejected_and_a_scalar_tracer_inside_vmap_is_fine():
  with pytest.raises(ValueError, match=r"`sgdr_schedule\(max_value=\.\.\.\)` must be a scalar"):
    jax.jit(lambda v: lrt.sgdr_schedule(v, 10)(3))(jnp.ones(1))
  out = jax.vmap(lambda v: lrt.sgdr_schedule(v, 10)(3))(jnp.array([0.1, 0.2]))
  assert out.shape == (2,)
