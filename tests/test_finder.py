"""The LR range test against a NumPy transcription of the loop, suggestion rules, repeats and bad inputs."""

import re

import chex
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lrtools as lrt
import reference as ref
from lrtools.finder import suggest_minimum, suggest_steepest, suggest_valley, sweep_lrs

matplotlib.use("Agg")

RNG = np.random.default_rng(0)
D, B, STEPS = 5, 16, 60
XS = RNG.normal(size=(STEPS, B, D))
W_TRUE = RNG.normal(size=D)
YS = XS @ W_TRUE + 0.5 + 0.1 * RNG.normal(size=(STEPS, B))
PARAMS = {"w": jnp.zeros(D), "b": jnp.zeros(())}
BATCHES = {"x": jnp.asarray(XS), "y": jnp.asarray(YS)}
EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
  """The dtype of a sweep compared with the float64 reference: float32, or float64 with x64 on for the test.
  (A fixture, not a parametrize mark: conftest adds the ``x64`` fixture to every parametrized variant of a
  function if one variant is marked.)"""
  if request.param == np.float64:
    request.getfixturevalue("x64")
  return request.param


def mse(params, batch):
  return jnp.mean((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2)


def momentum_sgd(lr):
  return optax.sgd(lr, momentum=0.9)


def run(**kwargs):
  defaults = dict(start_lr=1e-4, end_lr=10.0, num_steps=STEPS)
  return lrt.lr_range_test(mse, PARAMS, kwargs.pop("optimizer", momentum_sgd), kwargs.pop("batches", BATCHES),
                           **{**defaults, **kwargs})


def problem(dtype):
  """Parameters and batches in ``dtype``, and the data the reference should see: float32 inputs are rounded
  to float32 first, so that a float32 comparison measures the sweep's arithmetic, not the data's rounding."""
  xs, ys = XS.astype(dtype), YS.astype(dtype)
  params = {"w": jnp.zeros(D, dtype), "b": jnp.zeros((), dtype)}
  return params, {"x": jnp.asarray(xs), "y": jnp.asarray(ys)}, xs.astype(np.float64), ys.astype(np.float64)


def assert_sweep_matches(res, want, dtype, targets, offset=0.0):
  """``res`` against the float64 reference ``want``: the same stop, and the same curves to 1e-10 in float64;
  in float32 to a relative error derived from the computation. The loss is a mean of squared residuals
  r = x·w + b − y whose float32 terms are of the size of the targets, so each residual is off by a few
  eps·rms(y) and the loss by about 2·eps·rms(y)·sqrt(L) (relative: 2·eps·rms(y)/sqrt(L)); twice that, at
  the smallest loss of the run, leaves room for the rounding the parameters carry from step to step. A loss
  shifted by ``offset`` is off by that relative error of L = |loss − offset| ≤ |loss| + |offset|: rtol·|offset|
  absolute (the shifted loss crosses zero, where no relative bound holds)."""
  losses, smoothed, num_run, diverged = want
  assert (res.num_steps_run, res.diverged) == (num_run, diverged)
  if dtype == np.float64:
    rtol = 1e-10
  else:
    rtol = 4 * EPS32 * np.sqrt(np.mean(np.square(targets))) / np.sqrt(np.nanmin(losses[:num_run] - offset))
  chex.assert_trees_all_close(res.losses, losses, rtol=rtol, atol=rtol * abs(offset))
  chex.assert_trees_all_close(res.smoothed_losses, smoothed, rtol=rtol, atol=rtol * abs(offset))


# --- the sweep -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["exponential", "linear"])
def test_sweep_values_exact(mode):
  lrs = sweep_lrs(1e-7, 10.0, 100, mode)
  i = np.arange(100)
  want = 1e-7 * (10.0 / 1e-7) ** (i / 99) if mode == "exponential" else 1e-7 + (10.0 - 1e-7) * i / 99
  np.testing.assert_allclose(lrs, want, rtol=1e-14)
  assert lrs[0] == 1e-7 and lrs[-1] == 10.0
  np.testing.assert_array_equal(run(mode=mode, start_lr=1e-7, num_steps=100).lrs, lrs)


def test_sweep_over_the_whole_float64_range_is_finite():
  # (end / start) ** fraction overflowed: 1e-300 → 1e300 gave [1e-300, inf, inf, inf, 1e300].
  lrs = sweep_lrs(1e-300, 1e300, 5)
  np.testing.assert_allclose(lrs, [1e-300, 1e-150, 1.0, 1e150, 1e300], rtol=1e-12)


@pytest.mark.parametrize("debias", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.05, 0.3])
def test_whole_sweep_matches_numpy_loop(dtype, debias, smoothing):
  params, batches, xs, ys = problem(dtype)
  res = lrt.lr_range_test(mse, params, momentum_sgd, batches, start_lr=1e-4, end_lr=10.0, num_steps=STEPS,
                          smoothing=smoothing, debias=debias)
  want = ref.range_test_linear(np.zeros(D), 0.0, xs, ys, sweep_lrs(1e-4, 10.0, STEPS), momentum=0.9,
                               smoothing=smoothing, debias=debias)
  assert want[3] and want[2] < STEPS  # lr = 10 diverges on this problem
  assert_sweep_matches(res, want, dtype, ys)
  assert np.all(np.isnan(res.losses[want[2]:])) and res.stop_reason == "diverged"
  chex.assert_type(res.lrs, np.float64)  # the rates reported are the float64 sweep


def test_negative_losses_diverge_relative_to_the_magnitude_of_the_best(dtype):
  params, batches, xs, ys = problem(dtype)
  res = lrt.lr_range_test(lambda p, b: mse(p, b) - 10.0, params, momentum_sgd, batches, start_lr=1e-4,
                          end_lr=10.0, num_steps=STEPS)
  want = ref.range_test_linear(np.zeros(D), 0.0, xs, ys, sweep_lrs(1e-4, 10.0, STEPS), momentum=0.9, offset=-10.0)
  assert want[2] > 20
  assert_sweep_matches(res, want, dtype, ys, offset=-10.0)


def test_validation_mode_records_the_loss_after_each_step_on_the_fixed_batch(dtype):
  params, batches, xs, ys = problem(dtype)
  vx, vy = xs[0] * 1.5, ys[0]
  res = lrt.lr_range_test(mse, params, momentum_sgd, batches, start_lr=1e-4, end_lr=10.0, num_steps=STEPS,
                          validation_batch={"x": jnp.asarray(vx, dtype), "y": jnp.asarray(vy, dtype)},
                          diverge_threshold=4.0)
  want = ref.range_test_linear(np.zeros(D), 0.0, xs, ys, sweep_lrs(1e-4, 10.0, STEPS), momentum=0.9,
                               diverge_threshold=4.0, val=(vx, vy))
  assert_sweep_matches(res, want, dtype, vy)


def test_steps_after_divergence_are_not_computed():
  calls = []

  def counted(params, batch):
    jax.debug.callback(lambda: calls.append(1))
    return mse(params, batch)

  res = lrt.lr_range_test(counted, PARAMS, momentum_sgd, BATCHES, start_lr=1e-4, end_lr=10.0, num_steps=STEPS)
  assert res.diverged and res.num_steps_run < STEPS - 5
  assert len(calls) == res.num_steps_run


def test_non_finite_loss_stops_the_sweep_and_says_so():
  def blows_up(params, batch):
    return jnp.where(params["b"] > 0.2, jnp.nan, mse(params, batch))
  res = lrt.lr_range_test(blows_up, PARAMS, momentum_sgd, BATCHES, start_lr=1e-4, end_lr=10.0, num_steps=STEPS,
                          diverge_threshold=float("inf"))
  last = res.num_steps_run - 1
  assert res.diverged and np.isnan(res.losses[last]) and 10 < last < STEPS - 1
  assert np.all(np.isfinite(res.losses[:last]))
  assert res.stop_reason == f"non-finite loss at step {last}"


def test_stop_reason_completed_and_per_repeat():
  assert run(end_lr=1e-3).stop_reason == "completed"

  def init_fn(key):  # half the repeats start where the loss is NaN
    return {"w": jnp.zeros(D), "b": jax.random.uniform(key)}

  def nan_above_half(params, batch):
    return jnp.where(params["b"] > 0.5, jnp.nan, mse(params, batch))

  key = jax.random.key(5)
  kwargs = dict(start_lr=1e-4, end_lr=1e-3, num_steps=STEPS, init_fn=init_fn)
  together = lrt.lr_range_test(nan_above_half, PARAMS, momentum_sgd, BATCHES, num_repeats=4, key=key, **kwargs)
  alone = [lrt.lr_range_test(nan_above_half, PARAMS, momentum_sgd, BATCHES, key=k, **kwargs).stop_reason
           for k in jax.random.split(key, 4)]
  assert together.stop_reason == tuple(alone)
  assert set(alone) == {"completed", "non-finite loss at step 0"}  # this key gives both kinds


def test_nan_in_array_data_warns_with_the_count_of_the_whole_data():
  xs = XS.copy()
  xs[7, 0, 0] = np.nan
  xs[50, 3, 1] = np.inf  # never reached: array data are checked whole
  with pytest.warns(RuntimeWarning, match=r"batches=\.\.\.\)`: the data hold 2 non-finite values"):
    res = run(batches={"x": jnp.asarray(xs), "y": BATCHES["y"]})
  assert res.stop_reason == "non-finite loss at step 7"


def test_nan_in_function_batches_warns_with_the_count_of_the_batches_drawn():
  def make_batch(key, step):
    x = jnp.where(step == 4, jnp.nan, jax.random.normal(key, (B, D)))
    return {"x": x, "y": x @ jnp.asarray(W_TRUE, x.dtype)}  # batch 4: B·D + B non-finite values

  with pytest.warns(RuntimeWarning, match=rf"drawn from the function held {3 * (B * D + B)} non-finite"):
    res = lrt.lr_range_test(mse, PARAMS, momentum_sgd, make_batch, start_lr=1e-4, end_lr=1e-3, num_steps=STEPS,
                            num_repeats=3)
  assert res.stop_reason == ("non-finite loss at step 4",) * 3


def test_nan_in_iterable_batches_warns_with_the_count_of_the_batches_taken():
  batches = [{"x": XS[i], "y": YS[i]} for i in range(STEPS)]
  batches[7] = {"x": np.where(np.arange(D) == 2, np.nan, XS[7]), "y": YS[7]}  # B NaNs in batch 7
  with pytest.warns(RuntimeWarning, match=rf"taken from the iterable held {B} non-finite"):
    res = run(batches=batches, chunk_size=5, end_lr=1e-3)
  assert res.stop_reason == "non-finite loss at step 7"


def test_clean_data_do_not_warn(recwarn):
  run(end_lr=1e-3)
  run(batches=[{"x": XS[i], "y": YS[i]} for i in range(STEPS)], end_lr=1e-3)
  assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_params_are_not_modified_and_a_rerun_is_identical():
  before = jax.tree_util.tree_map(np.array, PARAMS)
  first, second = run(), run()
  jax.tree_util.tree_map(np.testing.assert_array_equal, before, jax.tree_util.tree_map(np.asarray, PARAMS))
  np.testing.assert_array_equal(first.losses, second.losses)


def test_repeated_calls_reuse_the_compiled_program():
  # Traced twice per compilation (the step's gradient and the validation loss): a third trace is a recompile.
  aux = chex.assert_max_traces(lambda p, b: (mse(p, b), None), n=2)
  kwargs = dict(start_lr=1e-4, end_lr=1.0, num_steps=STEPS, has_aux=True,
                validation_batch={"x": BATCHES["x"][0], "y": BATCHES["y"][0]})
  lrt.lr_range_test(aux, PARAMS, momentum_sgd, BATCHES, **kwargs)
  lrt.lr_range_test(aux, PARAMS, momentum_sgd, BATCHES, **{**kwargs, "start_lr": 1e-5, "end_lr": 3.0,
                                                            "smoothing": 0.1, "diverge_threshold": 3.0})
  weak = [{"x": XS[i], "y": YS[i]} for i in range(STEPS)]
  scalar = chex.assert_max_traces(lambda w, b: jnp.mean((b["x"][:, 0] * w - b["y"]) ** 2), n=1)
  lrt.lr_range_test(scalar, 0.0, momentum_sgd, weak, start_lr=1e-4, end_lr=1e-2, num_steps=STEPS,
                    chunk_size=10)  # Python-scalar params, six chunks: one program


def test_an_iterable_that_is_empty_on_its_second_pass_raises():
  class OnePass:
    def __init__(self):
      self.gen = ({"x": XS[i], "y": YS[i]} for i in range(4))

    def __iter__(self):
      return iter(self.gen)

  with pytest.raises(ValueError, match="ran out after 4 batches"):
    run(batches=OnePass(), chunk_size=3, end_lr=1e-3)


def test_has_aux_and_lrtools_style_factories():
  res = lrt.lr_range_test(lambda p, b: (mse(p, b), {"unused": 1.0}), PARAMS, lrt.adam, BATCHES,
                          start_lr=1e-4, end_lr=10.0, num_steps=STEPS, has_aux=True)
  assert res.num_steps_run > 10 and np.isfinite(res.suggest("valley"))


def test_iterable_batches_equal_stacked_batches_and_are_cycled():
  stacked = run()
  as_list = [{"x": XS[i], "y": YS[i]} for i in range(STEPS)]
  fed = run(batches=as_list, chunk_size=7)
  np.testing.assert_allclose(fed.losses, stacked.losses, rtol=1e-12)
  assert fed.num_steps_run == stacked.num_steps_run
  short = run(batches=as_list[:10], chunk_size=4, end_lr=1e-3)  # a list is cycled, like stacked arrays
  np.testing.assert_allclose(short.losses, run(batches={"x": BATCHES["x"][:10], "y": BATCHES["y"][:10]},
                                               end_lr=1e-3).losses, rtol=1e-12)
  progress = []
  run(batches=iter(as_list), chunk_size=25, end_lr=1e-3, progress=lambda done, n: progress.append((done, n)))
  assert progress == [(25, STEPS), (50, STEPS), (60, STEPS)]
  with pytest.raises(ValueError, match="ran out after 10 batches"):
    run(batches=iter(as_list[:10]), end_lr=1e-3)


def test_a_chunk_size_above_num_steps_is_capped():
  # The last chunk was padded to chunk_size: 2**31 − 1 built a list of two billion batches.
  as_list = [{"x": XS[i], "y": YS[i]} for i in range(STEPS)]
  np.testing.assert_array_equal(run(batches=as_list, chunk_size=2**31 - 1, end_lr=1e-3).losses,
                                run(batches=as_list, chunk_size=STEPS, end_lr=1e-3).losses)


def median_curve(curves):
  """The median over repeats at each step, NaN where fewer than half of the repeats still run."""
  out = np.full(curves.shape[1], np.nan)
  for j, column in enumerate(curves.T):
    live = column[np.isfinite(column)]
    if len(live) and 2 * len(live) >= len(column):
      out[j] = np.median(live)
  return out


def test_function_batches_and_repeats_equal_individual_runs():
  def make_batch(key, step):
    x = jax.random.normal(key, (B, D))
    return {"x": x, "y": x @ jnp.asarray(W_TRUE, x.dtype) + 0.5}

  def init_fn(key):
    return {"w": 0.1 * jax.random.normal(key, (D,)), "b": jnp.zeros(())}

  key = jax.random.key(0)  # three distinct suggestions in float32 and float64: median, min, max all differ
  together = lrt.lr_range_test(mse, PARAMS, momentum_sgd, make_batch, start_lr=1e-4, end_lr=10.0, num_steps=STEPS,
                               num_repeats=3, key=key, init_fn=init_fn)
  assert together.losses.shape == (3, STEPS) and together.num_repeats == 3
  for r, k in enumerate(jax.random.split(key, 3)):
    alone = lrt.lr_range_test(mse, PARAMS, momentum_sgd, make_batch, start_lr=1e-4, end_lr=10.0, num_steps=STEPS,
                              key=k, init_fn=init_fn)
    np.testing.assert_allclose(together.losses[r], alone.losses, rtol=1e-10)
    assert together.num_steps_run[r] == alone.num_steps_run
    assert together.suggestion_spread("valley")["each"][r] == pytest.approx(alone.suggest("valley"), nan_ok=True)
  for method in ("steepest", "minimum", "valley"):
    spread = together.suggestion_spread(method)
    each = spread["each"]
    assert each.shape == (3,) and np.all(np.isfinite(each))
    # One definition: the median over repeats of each repeat's suggestion (in log LR), whatever reads it.
    want = float(np.exp(np.median(np.log(each))))
    assert spread["median"] == pytest.approx(want, rel=1e-12) and together.suggest(method) == spread["median"]
    assert together.suggestions()[method][0] == spread["median"]
    assert (spread["min"], spread["max"]) == (each.min(), each.max())
    assert spread["decades"] == pytest.approx(np.log10(each.max() / each.min()))
  # The plotted median curve and band are over the repeats' lag-free curves.
  chex.assert_trees_all_close(together.median_losses, median_curve(together.centred_losses), rtol=0.0, atol=0.0)
  low, high = together.band
  assert np.all((low <= together.median_losses) | np.isnan(together.median_losses))
  assert np.all((together.median_losses <= high) | np.isnan(together.median_losses))


def test_repeats_over_stacked_batches_visit_them_in_different_orders():
  res = run(num_repeats=2, key=jax.random.key(0), end_lr=1e-2)
  assert res.losses.shape == (2, STEPS)
  assert not np.allclose(res.losses[0], res.losses[1])
  raw = run(num_repeats=2, key=jax.random.PRNGKey(0), end_lr=1e-2)  # a raw uint32 key is a key too
  assert raw.losses.shape == (2, STEPS) and raw.stop_reason == ("completed", "completed")


@pytest.mark.x64
def test_a_float64_sweep_accepts_what_float32_cannot_represent():
  params, batches, _, _ = problem(np.float64)
  res = lrt.lr_range_test(mse, params, momentum_sgd, batches, start_lr=1e-300, end_lr=1e300, num_steps=STEPS)
  assert np.all(np.isfinite(res.lrs)) and res.diverged
  with pytest.raises(ValueError, match=r"start_lr=1e-300, end_lr=1e\+300"):
    lrt.lr_range_test(mse, problem(np.float32)[0], momentum_sgd, batches, start_lr=1e-300, end_lr=1e300)


# --- suggestions against NumPy transcriptions ------------------------------------------------------------

# Losses exactly representable in float32, so that both legs compare the same curve (a float64 curve rounded
# to float32 would tie or swap neighbours, and the exact rules would then rightly disagree).
curves = st.lists(st.floats(0.125, 8.0, width=32), min_size=2, max_size=60)
RULE_LRS = np.logspace(-6, 1, 60)
RULES = {name: jax.jit(rule) for name, rule in
         [("steepest", suggest_steepest), ("minimum", suggest_minimum), ("valley", suggest_valley)]}


def assert_steepest_index(lrs, losses, run_steps, skip_start, skip_end, index, dtype):
  """``index`` is a steepest point of the reference slopes, tie-aware: the rule computes its slopes in
  ``dtype`` (log-rates rounded there: a relative error up to about 64·eps of each slope, as the log-rates are
  up to ~16 with neighbours ~0.5 apart), and the reference's own ``np.gradient`` (its non-uniform formula)
  leaves a few float64 eps·max|L|/spacing even on a flat curve; so any index whose reference slope is within
  those errors of the minimum is an equally right answer; any other index fails."""
  found = ref.steepest_slopes(lrs, losses, run_steps, skip_start, skip_end)
  if found is None:
    assert index == -1
    return
  lo, slopes = found
  assert lo <= index < lo + len(slopes), (index, lo, len(slopes))
  window = np.asarray(losses, np.float64)[lo:lo + len(slopes)]
  spacing = np.min(np.diff(np.log(np.asarray(lrs, np.float64)[lo:lo + len(slopes)])))
  tol = (2 * 64 * float(np.finfo(dtype).eps) * np.max(np.abs(slopes))
         + 8 * float(np.finfo(np.float64).eps) * np.max(np.abs(window)) / spacing)
  assert slopes[index - lo] <= slopes.min() + tol, (index, lo + int(np.argmin(slopes)), slopes)


@given(curves, st.integers(0, 60), st.booleans())
def test_suggestions_match_transcribed_rules(values, cut, nan_tail):
  losses = np.full(60, np.nan)  # one length, so each rule compiles once; the tail is never valid
  losses[:len(values)] = values
  run_steps = min(max(cut, 1), len(values))
  if nan_tail:
    losses[run_steps:] = np.nan
  curve, lrs = jnp.asarray(losses), jnp.asarray(RULE_LRS)
  lr, i = RULES["steepest"](lrs, curve, run_steps, 3, 2)
  assert_steepest_index(RULE_LRS, losses, run_steps, 3, 2, int(i), curve.dtype)
  assert np.isnan(float(lr)) == (int(i) == -1)
  lr, i = RULES["minimum"](lrs, curve, run_steps, 6, 2)
  want = ref.suggest_minimum(losses, run_steps, 6, 2)
  assert int(i) == (-1 if want is None else want)
  if want is not None:
    assert float(lr) == pytest.approx(RULE_LRS[want] / 10, rel=4 * float(np.finfo(curve.dtype).eps))
  lr, i = RULES["valley"](lrs, curve, run_steps, 6, 2)
  want = ref.suggest_valley(losses, run_steps, 6, 2)
  assert int(i) == (-1 if want is None else want)


def test_the_tie_aware_steepest_check_rejects_a_wrong_index():
  lrs = np.logspace(-6, 0, 41)
  losses = 2 - np.tanh(3 * (np.log10(lrs) + 3))  # one clear steepest point, at 1e-3 (index 20)
  want = ref.suggest_steepest(lrs, losses, 41)
  assert want == 20
  assert_steepest_index(lrs, losses, 41, 10, 5, want, np.float32)
  for wrong in (want - 1, want + 1, -1, 5):
    with pytest.raises(AssertionError):
      assert_steepest_index(lrs, losses, 41, 10, 5, wrong, np.float32)


def test_suggestions_on_flat_and_all_nan_curves():
  lrs = jnp.logspace(-6, 0, 40)
  flat = jnp.ones(40)
  assert int(suggest_valley(lrs, flat, 40)[1]) == 0
  assert int(suggest_minimum(lrs, flat, 40)[1]) == 0
  # Every slope is exactly 0: the first point of the window (skip_start = 10), as argmin picks the first.
  # (Not the reference's index: np.gradient's non-uniform formula leaves ±1e-17 of noise on a flat curve.)
  index = int(suggest_steepest(lrs, flat, 40)[1])
  assert index == 10
  assert_steepest_index(np.asarray(lrs), np.ones(40), 40, 10, 5, index, np.float32)
  for rule in (suggest_steepest, suggest_minimum, suggest_valley):
    lr, i = rule(lrs, jnp.full(40, jnp.nan), 40)
    assert np.isnan(float(lr)) and int(i) == -1


def test_suggestions_are_jittable_and_vmappable():
  lrs = jnp.logspace(-6, 0, 40)
  losses = jnp.stack([2 - jnp.tanh(jnp.log10(lrs) + c) for c in (2.0, 3.0, 4.0)])
  for rule in (suggest_steepest, suggest_minimum, suggest_valley):
    batched = jax.jit(jax.vmap(rule, in_axes=(None, 0, None)))(lrs, losses, 40)
    for row, lr in zip(losses, batched[0]):
      assert float(lr) == pytest.approx(float(rule(lrs, row, 40)[0]))


def test_result_suggest_recorded_curve_uses_the_conventional_windows():
  """``curve="recorded"``: the rules on the sweep's (lagged) moving average, as torch-lr-finder and fastai."""
  res = run()
  rebuilt = res._replace(run_suggestions=None)  # recomputed outside the sweep's program: the same answer
  for method, (lr, index) in res.suggestions("recorded").items():
    assert rebuilt.suggestions("recorded")[method] == (pytest.approx(lr), index)
  curve, n = res.smoothed_losses, res.num_steps_run
  index = res.suggestions("recorded")["steepest"][1]
  assert_steepest_index(res.lrs, curve, n, 10, 5, index, curve.dtype)
  assert res.suggest("steepest", curve="recorded") == pytest.approx(res.lrs[index])
  minimum = ref.suggest_minimum(curve, n, STEPS // 10, 5)
  assert res.suggest("minimum", curve="recorded") == pytest.approx(res.lrs[minimum] / 10)
  assert res.suggest("valley", curve="recorded") == pytest.approx(res.lrs[ref.suggest_valley(curve, n, STEPS // 10, 5)])


@pytest.mark.parametrize("smoothing", [0.05, 0.2, 0.0])
def test_result_suggestions_are_the_rules_on_the_lag_free_curve(smoothing):
  res = run()._replace(smoothing=smoothing)  # the window follows the result's smoothing weight
  want_curve, want = ref.lag_free_suggestions(res.lrs, res.losses, res.num_steps_run, smoothing)
  rtol = 1e-12 if res.losses.dtype == np.float64 else 2e-5
  np.testing.assert_allclose(res.centred_losses, want_curve, rtol=rtol, atol=rtol)
  found = res.suggestions()
  for method, index in want.items():
    lr = res.lrs[index] / (10 if method == "minimum" else 1)
    if method == "steepest":  # ties between equal slopes in float32: check the slope, not the index
      assert_steepest_index(res.lrs, res.centred_losses, res.num_steps_run, 10, 5, found[method][1],
                            res.centred_losses.dtype)
    else:
      assert found[method] == (pytest.approx(lr), index), method


def test_plot_marks_the_suggestions(tmp_path):
  res = run()
  ax = res.plot()
  assert ax.get_xscale() == "log"
  labels = [t.get_text() for t in ax.get_legend().get_texts()]
  assert labels[:2] == ["loss", "smoothed loss (centred, no lag)"]
  # Each suggestion is marked at its own learning rate (minimum's: a tenth of the minimum's), on the curve.
  for method, (lr, _) in res.suggestions().items():
    label = next(label for label in labels if label.startswith(f"{method}: "))
    assert label == f"{method}: {lr:.2e}"
    line = next(line for line in ax.get_lines() if line.get_label() == label)
    assert line.get_xdata()[0] == pytest.approx(lr)
    curve = res.centred_losses
    ok = np.isfinite(curve)
    assert line.get_ydata()[0] == pytest.approx(np.interp(np.log(lr), np.log(res.lrs[ok]), curve[ok]))
  stop = next(label for label in labels if label.startswith("stop: "))
  assert stop == f"stop: {res.stop_line()}" and res.stop_line() in ax.get_title()
  ax.figure.savefig(tmp_path / "rt.png")
  band_ax = run(num_repeats=2, key=jax.random.key(1)).plot()
  assert any("band over 2 repeats" in t.get_text() for t in band_ax.get_legend().get_texts())


# --- bad inputs -------------------------------------------------------------------------------------------

def not_a_transformation(lr):
  return optax.sgd  # the factory, not a transformation


@pytest.mark.parametrize("kwargs,arg", [
    (dict(start_lr=1.0, end_lr=1.0), "start_lr"),
    (dict(start_lr=2.0, end_lr=1.0), "start_lr"),
    (dict(start_lr=-1.0), "start_lr"),
    (dict(num_steps=1), "num_steps"),
    (dict(num_steps=10.5), "num_steps"),
    (dict(mode="cubic"), "mode"),
    (dict(smoothing=1.0), "smoothing"),
    (dict(smoothing=-0.1), "smoothing"),
    (dict(diverge_threshold=1.0), "diverge_threshold"),
    (dict(num_repeats=0), "num_repeats"),
    (dict(num_repeats=10**6), "num_repeats"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(chunk_size=2.5), "chunk_size"),
    (dict(chunk_size=2**31), "chunk_size"),
    (dict(batches={"x": jnp.ones((3, 2)), "y": jnp.ones((4,))}), "batches"),
    (dict(batches=None), "batches"),
    (dict(batches="data.npz"), "batches"),
    (dict(batches=3.0), "batches"),
    (dict(batches=jnp.ones(())), "batches"),
    (dict(batches={"x": [[1.0, 2.0]], "y": [1.0]}), "batches"),
    (dict(batches={}), "batches"),
    (dict(batches=[{"x": XS[0], "y": YS[0]}], num_repeats=2), "num_repeats"),
    (dict(batches=[{"x": XS[0], "y": YS[0]}], init_fn=lambda k: PARAMS), "init_fn"),
    (dict(progress=True), "progress"),
    (dict(progress="tqdm"), "progress"),
    (dict(key=0), "key"),
    (dict(key=True), "key"),
    (dict(key=jnp.zeros(2)), "key"),
    (dict(key=jnp.zeros(3, jnp.uint32)), "key"),
    (dict(key=jax.random.split(jax.random.key(0), 2)), "key"),
    (dict(init_fn="random"), "init_fn"),
    (dict(validation_loss_fn=mse), "validation_loss_fn"),
    (dict(validation_loss_fn=1.0, validation_batch={"x": XS[0], "y": YS[0]}), "validation_loss_fn"),
    (dict(validation_batch="val"), "validation_batch"),
    (dict(optimizer=not_a_transformation), "optimizer"),
    (dict(optimizer=lambda: optax.sgd(0.1)), "optimizer"),
    (dict(optimizer=optax.sgd(0.1)), "optimizer"),
    (dict(has_aux="False"), "has_aux"),
    (dict(has_aux=0), "has_aux"),
    (dict(debias=None), "debias"),
])
def test_bad_inputs_raise_naming_the_argument(kwargs, arg):
  with pytest.raises(ValueError, match=rf"`lr_range_test\(.*{arg}=\.\.\."):
    run(**kwargs)


@pytest.mark.parametrize("start_lr,end_lr", [
    (1e-300, 1e300),  # 0 and inf in float32: the sweep ran, rates 0 … inf, a NaN suggestion
    (1e-40, 1.0),  # subnormal in float32
    (1e-3, 1e39),  # inf in float32
    (1.0, 1.0 + 1e-9),  # equal in float32
])
def test_a_range_not_representable_in_float32_names_both_values(start_lr, end_lr):
  params32 = problem(np.float32)[0]  # the sweep's dtype follows the parameters (float32 in every leg here)
  echo = re.escape(f"got start_lr={start_lr!r}, end_lr={end_lr!r}")
  with pytest.raises(ValueError, match=r"`lr_range_test\(start_lr=\.\.\., end_lr=\.\.\.\)` must be normal float32 "
                                       rf"numbers.*{echo}"):
    lrt.lr_range_test(mse, params32, momentum_sgd, BATCHES, start_lr=start_lr, end_lr=end_lr)


@pytest.mark.parametrize("params", [{"w": jnp.zeros(D, jnp.int32)}, {}, {"w": "zeros"}, [True]])
def test_params_must_be_floating_point_arrays(params):
  with pytest.raises(ValueError, match=r"`lr_range_test\(params=\.\.\.\)`"):
    lrt.lr_range_test(mse, params, momentum_sgd, BATCHES)


NUMBERS = ("start_lr", "end_lr", "smoothing", "diverge_threshold")
INTEGERS = ("num_steps", "num_repeats", "chunk_size")
FLAGS = ("has_aux", "debias")
CALLABLES = ("init_fn", "validation_loss_fn", "progress")
not_numbers = st.one_of(st.booleans(), st.text(max_size=3), st.none(), st.just([0.1, 0.2]),
                        st.just(np.ones(2)), st.complex_numbers(allow_nan=False).filter(lambda z: z.imag != 0))
not_int32 = st.one_of(st.booleans(), st.integers(2**31, 2**70), st.floats(1.5, 99.5).filter(lambda v: v % 1),
                      st.text(max_size=3), st.just(np.arange(3)))
not_flags = st.one_of(st.text(max_size=5), st.none(), st.integers(0, 1), st.floats(0, 1), st.just(np.ones(1)))
not_callables = st.one_of(st.integers(), st.text(min_size=1, max_size=3), st.just([mse]))
bad_argument = st.one_of(st.tuples(st.sampled_from(NUMBERS), not_numbers),
                         st.tuples(st.sampled_from(INTEGERS), not_int32),
                         st.tuples(st.sampled_from(FLAGS), not_flags),
                         st.tuples(st.sampled_from(CALLABLES), not_callables),
                         st.tuples(st.just("key"), st.one_of(st.integers(), st.floats(), st.booleans(), st.text())))


@given(bad_argument)
def test_generated_bad_inputs_raise_naming_the_argument(name_value):
  name, value = name_value
  with pytest.raises(ValueError, match=rf"`lr_range_test\({name}=\.\.\."):
    run(**{name: value})


SWEEP_ARGS = dict(start_lr=1e-3, end_lr=1.0, num_steps=5, mode="exponential")


@given(st.sampled_from(list(SWEEP_ARGS)),
       st.one_of(st.booleans(), st.none(), st.just([1e-3, 1.0]), st.just(np.ones(2)), st.text(max_size=3)))
def test_sweep_lrs_rejects_generated_non_values(name, value):
  with pytest.raises(ValueError, match=rf"`sweep_lrs\(.*{name}=\.\.\."):
    sweep_lrs(**{**SWEEP_ARGS, name: value})


@pytest.mark.parametrize("name,value", [("start_lr", 0.0), ("start_lr", 2.0), ("end_lr", -1.0), ("num_steps", 1),
                                        ("num_steps", 2**31), ("num_steps", 4.5), ("mode", "cosine")])
def test_sweep_lrs_rejects_out_of_domain_values(name, value):
  with pytest.raises(ValueError, match=rf"`sweep_lrs\(.*{name}=\.\.\."):
    sweep_lrs(**{**SWEEP_ARGS, name: value})


RESULT = lrt.RangeTestResult(np.logspace(-4, 0, 20), np.linspace(2, 1, 20), np.linspace(2, 1, 20), 20, False)


@pytest.mark.parametrize("method", ["best", True, None, ["valley"], 1])
def test_result_methods_validate(method):
  with pytest.raises(ValueError, match=r"`RangeTestResult.suggest\(method=\.\.\.\)`"):
    RESULT.suggest(method)
  with pytest.raises(ValueError, match=r"`RangeTestResult.suggestion_spread\(method=\.\.\.\)`"):
    RESULT.suggestion_spread(method)


@pytest.mark.parametrize("suggestions", ["valley", ["best"], None, ("valley", 1)])
def test_result_plot_validates(suggestions):
  with pytest.raises(ValueError, match=r"suggestions=\.\.\."):
    RESULT.plot(suggestions=suggestions)
