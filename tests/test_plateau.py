"""reduce_on_plateau against a NumPy transcription of the ReduceLROnPlateau rule (fixed for negatives)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from lrtools._typing import INT32_MAX
from lrtools.optimizers import current_hyperparams, sgd
from lrtools.transforms import plateau_scale, reduce_on_plateau

LENGTH = 40
_COMPILED = {}


def _scales(metrics, mode="min", threshold_mode="rel", **hp):
  """Scale after each evaluation, from one jitted scan; the numeric hyperparameters are traced
  arguments, so each (mode, threshold_mode) compiles once for the whole module (per float dtype). The
  metrics are cast to the state's dtype: float32 by default, float64 under x64."""
  dtype = jnp.result_type(float)
  key = (mode, threshold_mode, dtype)
  if key not in _COMPILED:
    def run(metrics, hp):
      tx = reduce_on_plateau(mode=mode, threshold_mode=threshold_mode, **hp)

      def body(state, value):
        _, state = tx.update(jnp.ones(1), state, value=value)
        return state, state.scale

      return jax.lax.scan(body, tx.init(jnp.ones(1)), metrics)[1]

    _COMPILED[key] = jax.jit(run)
  full = {"factor": 0.1, "patience": 10, "threshold": 1e-4, "cooldown": 0, "min_scale": 0.0, **hp}
  return np.asarray(_COMPILED[key](jnp.asarray(metrics, dtype), full))


def _assert_scales_close(got, want):
  """Each reduction rounds ``factor`` and the product, eps/2 relative each; a scale that went through k
  ≤ LENGTH reductions is within k·eps of the exact product (clipping at min_scale only removes error)."""
  chex.assert_trees_all_close(got, want.astype(got.dtype), rtol=LENGTH * np.finfo(got.dtype).eps, atol=0.0)


_ties = st.sampled_from([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
_non_finite = st.sampled_from([np.nan, np.inf, -np.inf])
# XLA flushes subnormals to zero, so metrics (and threshold·|metric|) stay well clear of them.
_metric = st.one_of(_ties, st.floats(-10, 10, allow_nan=False).map(lambda x: 0.0 if abs(x) < 1e-200 else x),
                    _non_finite)


@given(metrics=st.lists(_metric, min_size=LENGTH, max_size=LENGTH),
       factor=st.sampled_from([0.0, 0.1, 0.5, 0.9]),
       patience=st.integers(0, 4),
       threshold=st.sampled_from([0.0, 1e-4, 0.05, 0.5]),
       threshold_mode=st.sampled_from(["rel", "abs"]),
       mode=st.sampled_from(["min", "max"]),
       cooldown=st.integers(0, 3),
       min_scale=st.sampled_from([0.0, 1e-3, 0.2]))
@pytest.mark.x64  # a metric within an ulp of best − τ|best| is decided differently in float32
def test_matches_reference(metrics, factor, patience, threshold, threshold_mode, mode, cooldown,
                           min_scale):
  hp = dict(factor=factor, patience=patience, threshold=threshold, cooldown=cooldown, min_scale=min_scale)
  got = _scales(metrics, mode, threshold_mode, **hp)
  want = ref.reduce_on_plateau(metrics, threshold_mode=threshold_mode, mode=mode, **hp)
  _assert_scales_close(got, want)


# Multiples of 1/8 in [-16, 16] with dyadic thresholds and factors: best − τ|best|, the mean-free
# comparisons and the scales are exact in float32, so the float32 decisions equal the float64 ones.
@given(metrics=st.lists(st.integers(-128, 128).map(lambda i: i / 8) | _non_finite,
                        min_size=LENGTH, max_size=LENGTH),
       factor=st.sampled_from([0.0, 0.25, 0.5]),
       patience=st.integers(0, 4),
       threshold=st.sampled_from([0.0, 0.25, 0.5]),
       threshold_mode=st.sampled_from(["rel", "abs"]),
       mode=st.sampled_from(["min", "max"]),
       cooldown=st.integers(0, 3),
       min_scale=st.sampled_from([0.0, 2.0**-10, 0.25]))
def test_default_dtype_decides_exactly_on_a_dyadic_grid(metrics, factor, patience, threshold,
                                                        threshold_mode, mode, cooldown, min_scale):
  hp = dict(factor=factor, patience=patience, threshold=threshold, cooldown=cooldown, min_scale=min_scale)
  got = _scales(metrics, mode, threshold_mode, **hp)
  chex.assert_trees_all_equal(got, ref.reduce_on_plateau(metrics, threshold_mode=threshold_mode, mode=mode,
                                                         **hp).astype(got.dtype))


@pytest.mark.x64
@pytest.mark.parametrize("mode", ["min", "max"])
def test_random_walks_with_negative_values(mode):
  rng = np.random.default_rng(1)
  for _ in range(5):
    metrics = np.cumsum(rng.normal(0.0, 1.0, LENGTH)) - 5.0  # mostly negative, wandering
    got = _scales(metrics, mode, "rel", patience=2, factor=0.5, cooldown=1)
    want = ref.reduce_on_plateau(metrics, mode=mode, patience=2, factor=0.5, cooldown=1)
    _assert_scales_close(got, want)


def test_negative_plateau_is_detected():
  # A loss stuck just above −1: the rule best·(1 − threshold) would call −0.99995 an improvement on
  # −1 at every step and never reduce; the |best| rule sees the plateau.
  metrics = [-1.0] + [-0.99995] * (LENGTH - 1)
  scales = _scales(metrics, patience=3, threshold=1e-4)
  assert scales[3] == 1.0 and scales[4] == pytest.approx(0.1)
  _assert_scales_close(scales, ref.reduce_on_plateau(metrics, patience=3))


def test_nan_metric_counts_as_bad():
  scales = _scales([1.0, np.nan, np.nan, 0.5] + [0.5] * (LENGTH - 4), patience=1, factor=0.5)
  assert scales[1] == 1.0 and scales[2] == 0.5 and scales[3] == 0.5


@pytest.mark.parametrize("mode,poison", [("min", -np.inf), ("max", np.inf), ("min", np.nan)])
def test_non_finite_metric_never_becomes_best(mode, poison):
  """One −inf loss (or +inf accuracy) used to become best for good: nothing improved on it, so the
  scale was cut every patience + 1 evaluations while the loss kept improving. It is a bad evaluation."""
  sign = 1.0 if mode == "min" else -1.0
  metrics = np.concatenate([[sign * 4.0, poison], sign * (3.0 - np.arange(LENGTH - 2) / 8)])  # improving
  tx = reduce_on_plateau(patience=2, factor=0.5, mode=mode)
  state = tx.init(jnp.ones(1))
  for m in metrics:
    _, state = tx.update(jnp.ones(1), state, value=m)
    assert np.isfinite(float(state.best))
  assert float(state.scale) == 1.0 and float(state.best) == metrics[-1]
  np.testing.assert_array_equal(_scales(metrics, mode, patience=2, factor=0.5), 1.0)


@pytest.mark.parametrize("poison", [None, np.nan, np.inf, -np.inf])
def test_accumulation_averages_the_metric(poison):
  """Every third update evaluates the mean of three metrics. A non-finite value makes its window's mean
  non-finite: that evaluation is bad (best stays finite) and the next window starts afresh."""
  rng = np.random.default_rng(2)
  metrics = rng.normal(size=36)
  if poison is not None:
    metrics[4] = poison  # inside the second window
  tx = reduce_on_plateau(patience=1, factor=0.5, accumulation_size=3)
  state = tx.init(jnp.ones(1))
  scales = []
  for m in metrics:
    _, state = tx.update(jnp.ones(1), state, value=m)
    scales.append(float(state.scale))
    assert not np.isnan(float(state.best)) and float(state.best) > -np.inf  # +inf until evaluated
  want = ref.reduce_on_plateau(metrics.reshape(-1, 3).mean(axis=1), patience=1, factor=0.5)
  scales = np.asarray(scales)
  _assert_scales_close(scales[2::3], want)  # an evaluation on every third update
  _assert_scales_close(scales[0::3], np.concatenate([[1.0], want[:-1]]))
  _assert_scales_close(scales[1::3], np.concatenate([[1.0], want[:-1]]))


def test_scales_the_updates_in_a_chain():
  opt = optax.chain(sgd(0.1), reduce_on_plateau(patience=0, factor=0.5))
  params = {"w": jnp.ones(2, jnp.float32)}
  state = opt.init(params)
  for loss in [1.0, 1.0]:
    updates, state = opt.update({"w": jnp.ones(2, jnp.float32)}, state, params, value=loss)
  assert updates["w"].dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(updates["w"]), -0.05)
  hp = current_hyperparams(state)
  assert float(hp["plateau_scale"]) == 0.5 and float(plateau_scale(state)) == 0.5
  with pytest.raises(ValueError, match=r"^`plateau_scale\(opt_state=\.\.\.\)` found no ReduceOnPlateauState"):
    plateau_scale(sgd(0.1).init(params))


def test_vmap_over_factor_and_patience():
  metrics = jnp.asarray([3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])

  def run(factor, patience):
    tx = reduce_on_plateau(factor=factor, patience=patience)
    state = tx.init(jnp.ones(1))
    state = jax.lax.fori_loop(0, 8, lambda i, s: tx.update(jnp.ones(1), s, value=metrics[i])[1], state)
    return state.scale

  got = jax.vmap(run)(jnp.array([0.5, 0.1, 0.5]), jnp.array([1, 2, 6]))
  for i, (f, p) in enumerate([(0.5, 1), (0.1, 2), (0.5, 6)]):
    assert float(got[i]) == pytest.approx(ref.reduce_on_plateau(metrics, factor=f, patience=p)[-1])


def test_state_survives_a_numpy_round_trip():
  """A checkpoint is a tree of NumPy arrays: restored, the state continues identically, no retrace."""
  tx = reduce_on_plateau(patience=1, cooldown=1, accumulation_size=2)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(s, loss):
    return tx.update(jnp.ones(1), s, value=loss)[1]

  state = tx.init(jnp.ones(1))
  for m in [1.0, 2.0, 0.5]:  # mid-window: accumulated and num_accumulated are in flight
    state = step(state, m)
  restored = jax.tree.map(jnp.asarray, jax.tree.map(np.asarray, state))
  chex.assert_trees_all_equal_shapes_and_dtypes(restored, state)
  for m in [3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]:
    state, restored = step(state, m), step(restored, m)
    chex.assert_trees_all_equal(state, restored)
  assert float(state.scale) < 1.0  # the continuation went through a reduction


# Counters at the int32 limit: patience up to 2**31 − 1 is accepted, so num_bad must not wrap.

def _at(tx, best, accumulated=0.0, **counts):
  """A state with best and accumulated in the state's float dtype and the given int32 counters."""
  floats = {"best": best, "accumulated": accumulated}
  return tx.init(jnp.ones(1))._replace(**{k: jnp.asarray(v, jnp.result_type(float)) for k, v in floats.items()},
                                       **{k: jnp.asarray(v, jnp.int32) for k, v in counts.items()})


def test_bad_count_saturates_with_the_largest_patience():
  tx = reduce_on_plateau(patience=INT32_MAX)
  state = _at(tx, best=1.0, num_bad=INT32_MAX - 2, count=INT32_MAX - 1)
  for _ in range(4):  # num_bad + 1 used to wrap to −2**31 here
    _, state = tx.update(jnp.ones(1), state, value=1.0)
  assert int(state.num_bad) == INT32_MAX and float(state.scale) == 1.0  # never more than the patience
  assert int(state.count) == INT32_MAX


def test_largest_cooldown_counts_down():
  tx = reduce_on_plateau(patience=0, factor=0.5, cooldown=INT32_MAX)
  state = tx.init(jnp.ones(1))
  counters = []
  for m in [1.0, 1.0, 1.0, 1.0]:
    _, state = tx.update(jnp.ones(1), state, value=m)
    counters.append((int(state.cooldown_counter), int(state.num_bad), float(state.scale)))
  assert counters == [(0, 0, 1.0), (INT32_MAX, 0, 0.5), (INT32_MAX - 1, 0, 0.5), (INT32_MAX - 2, 0, 0.5)]


def test_window_evaluates_at_the_largest_accumulation_size():
  tx = reduce_on_plateau(patience=0, factor=0.5, accumulation_size=INT32_MAX)
  state = _at(tx, best=1.0, accumulated=2.0 * (INT32_MAX - 1), num_accumulated=INT32_MAX - 1)
  _, state = tx.update(jnp.ones(1), state, value=2.0)  # the window is full: its mean 2 is a bad evaluation
  assert int(state.num_accumulated) == 0 and float(state.scale) == 0.5


@pytest.mark.parametrize("kwargs,arg", [
    ({"factor": 1.0}, "factor"), ({"factor": -0.1}, "factor"), ({"patience": -1}, "patience"),
    ({"patience": 2.5}, "patience"), ({"patience": 2**31}, "patience"), ({"threshold": -1e-4}, "threshold"),
    ({"threshold_mode": "relative"}, "threshold_mode"), ({"mode": "avg"}, "mode"),
    ({"cooldown": -1}, "cooldown"), ({"cooldown": 2**31}, "cooldown"), ({"min_scale": 1.5}, "min_scale"),
    ({"min_scale": -0.1}, "min_scale"), ({"accumulation_size": 0}, "accumulation_size"),
])
def test_bad_arguments(kwargs, arg):
  with pytest.raises(ValueError, match=rf"^`reduce_on_plateau\({arg}=\.\.\.\)` .+, got {arg}="):
    reduce_on_plateau(**kwargs)


# Generated bad inputs: bools as numbers, strings/None/complex, vectors as scalars, ints above int32.
_not_a_number = st.one_of(st.booleans(), st.text(max_size=3), st.none(),
                          st.complex_numbers(min_magnitude=0.1, max_magnitude=0.5).filter(lambda z: z.imag != 0),
                          st.lists(st.floats(0.0, 0.5), min_size=1, max_size=3).map(np.asarray))
_not_a_count = st.one_of(_not_a_number, st.integers(min_value=2**31), st.integers(max_value=-1),
                         st.floats(0.1, 10.0).filter(lambda f: f != round(f)))
_not_a_name = st.one_of(st.booleans(), st.none(), st.integers(), st.binary(max_size=3),
                        st.lists(st.sampled_from(["min", "max", "rel", "abs"]), min_size=1, max_size=2))


@given(case=st.one_of(
    st.tuples(st.sampled_from(["factor", "threshold", "min_scale"]), _not_a_number),
    st.tuples(st.sampled_from(["patience", "cooldown", "accumulation_size"]), _not_a_count),
    st.tuples(st.sampled_from(["mode", "threshold_mode"]), _not_a_name)))
def test_bad_arguments_are_named(case):
  name, value = case
  with pytest.raises(ValueError, match=rf"^`reduce_on_plateau\({name}=\.\.\.\)` .+, got {name}="):
    reduce_on_plateau(**{name: value})


@given(value=_not_a_number)
def test_bad_metric_is_named(value):
  tx = reduce_on_plateau()
  with pytest.raises(ValueError, match=r"^`reduce_on_plateau.update\(value=\.\.\.\)` .+, got value="):
    tx.update(jnp.ones(1), tx.init(jnp.ones(1)), value=value)


def test_state_can_be_donated():
  opt = optax.chain(sgd(0.1), reduce_on_plateau(patience=0))

  def step(p, s, loss):
    updates, s = opt.update(jnp.ones_like(p), s, p, value=loss)
    return optax.apply_updates(p, updates), s

  step = jax.jit(step, donate_argnums=(0, 1))
  params, state = jnp.ones(2), opt.init(jnp.ones(2))
  for loss in (1.0, 1.0, 1.0):
    params, state = step(params, state, loss)
  # three steps of −0.1·scale, each rounded (with the scale's own rounding) in the params' dtype
  chex.assert_trees_all_close(params, jnp.full(2, 1 - 0.1 * (1 + 0.1 + 0.01), params.dtype),
                              rtol=8 * np.finfo(params.dtype).eps)
