"""The suggestion a user can trust: the lag-free curve, one definition with repeats, the agreement figure,
the summary, and the plot drawn by the find-lr worker."""

import math

import chex
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

matplotlib.use("Agg")

import lrtools as lrt  # noqa: E402
import reference as ref  # noqa: E402
from lrtools.cli import _plot_worker  # noqa: E402
from lrtools.finder._suggest import centred_smoothing, lag_free_suggestions, suggest_steepest  # noqa: E402

LRS = np.logspace(-6, 1, 100)
# One compiled program for every generated case (a fixed length, traced run and smoothing).
SMOOTH_AND_SUGGEST = jax.jit(lambda lrs, losses, run, w: (centred_smoothing(losses, run, w),
                                                           lag_free_suggestions(lrs, losses, run, w)))


def tanh_curve(centre_decade=-2.0, noise=0.03, seed=0):
  """A range-test-like curve: flat, a drop centred at 10**centre_decade (where it falls fastest), noise."""
  rng = np.random.default_rng(seed)
  return 2 - np.tanh(2 * (np.log10(LRS) - centre_decade)) + noise * rng.standard_normal(LRS.size)


def v_curve(seed=0):
  """A drop centred at 1e-2, then a rise past 1e-1 (divergence): a clear steep region."""
  return tanh_curve(seed=seed) + np.exp(3 * (np.log10(LRS) + 0.5))


def ema(losses, w):
  """torch-lr-finder's moving average (starts at the first loss)."""
  out = np.empty_like(losses)
  out[0] = losses[0]
  for i in range(1, len(losses)):
    out[i] = w * losses[i] + (1 - w) * out[i - 1]
  return out


@pytest.mark.parametrize("seed", range(5))
def test_the_lag_free_steepest_has_no_delay_and_the_moving_average_does(seed):
  losses = tanh_curve(seed=seed)
  lag_free = float(lag_free_suggestions(jnp.asarray(LRS), jnp.asarray(losses), 100)["steepest"][0])
  lagged = float(suggest_steepest(jnp.asarray(LRS), jnp.asarray(ema(losses, 0.05)), 100)[0])
  # The drop is centred at 1e-2: within 2 steps (0.14 decades) without lag; the EMA's is 0.4-0.6 decades right.
  assert abs(math.log10(lag_free) + 2) < 0.15, lag_free
  assert math.log10(lagged) + 2 > 0.3, lagged


def test_a_diverging_tail_does_not_drag_the_curve_before_it():
  losses = tanh_curve(noise=0.0)
  losses[80:] = 10.0 ** np.arange(1, 21)  # an explosion after step 80
  curve = np.asarray(centred_smoothing(jnp.asarray(losses), 100))
  cap = losses[:80].max()
  assert np.all(curve <= cap + 1e-5)  # capped at the highest loss before the lowest


@pytest.mark.x64
@given(values=st.lists(st.floats(-5, 5, allow_subnormal=False), min_size=30, max_size=30),
       run=st.integers(0, 30), smoothing=st.sampled_from([0.0, 0.05, 0.1, 0.25, 0.5, 0.9]),
       nan_at=st.integers(0, 35))
def test_centred_smoothing_and_suggestions_match_the_reference(values, run, smoothing, nan_at):
  losses = np.array(values, np.float64)
  if nan_at < len(losses):
    losses[nan_at:] = np.nan
  lrs = np.logspace(-4, 0, len(losses))
  run = min(run, len(losses))
  want_curve, want = ref.lag_free_suggestions(lrs, losses, run, smoothing)
  got_curve, got = SMOOTH_AND_SUGGEST(jnp.asarray(lrs), jnp.asarray(losses), run, smoothing)
  np.testing.assert_allclose(np.asarray(got_curve), want_curve, rtol=1e-12, atol=1e-12)
  # The rules compare values: a near tie in the curve (equal means, computed two ways) has no single answer.
  finite = np.sort(want_curve[np.isfinite(want_curve)])
  assume(np.all(np.diff(finite) > 1e-9))
  for method in ("minimum", "valley"):
    assert int(got[method][1]) == (-1 if want[method] is None else want[method]), method


def test_centred_smoothing_is_jittable_vmappable_and_compiles_once():
  losses = jnp.stack([jnp.asarray(tanh_curve(seed=s)) for s in range(3)])

  @jax.jit
  @chex.assert_max_traces(n=1)
  def smooth(rows, runs, w):
    return jax.vmap(centred_smoothing, in_axes=(0, 0, None))(rows, runs, w)

  for w in (0.05, 0.1, 0.3):  # a traced smoothing weight: no recompilation
    out = smooth(losses, jnp.array([100, 90, 50]), jnp.float32(w))
    for row, run, got in zip(losses, (100, 90, 50), out):
      np.testing.assert_allclose(got, centred_smoothing(row, run, w), rtol=1e-6)
  assert np.all(np.isnan(np.asarray(out[2, 50:])))


def result_with_repeats(centres, seed=0):
  losses = np.stack([tanh_curve(c, seed=seed + k) for k, c in enumerate(centres)])
  return lrt.RangeTestResult(LRS, losses, losses, np.full(len(centres), 100), np.zeros(len(centres), bool))


def test_with_repeats_the_suggestion_is_the_median_of_the_repeats_everywhere():
  res = result_with_repeats([-3.0, -2.0])  # an even count: the geometric mean of the two
  for method in ("steepest", "minimum", "valley"):
    each = res.suggestion_spread(method)["each"]
    want = math.sqrt(each[0] * each[1])
    assert res.suggest(method) == pytest.approx(want, rel=1e-12)
    assert res.suggestion_spread(method)["median"] == res.suggest(method)
    assert res.suggestions()[method][0] == res.suggest(method)
    assert f"{method:<9} {want:.3g}" in res.summary()
  assert res.agreement()["repeats"] == pytest.approx(1.0, abs=0.15)  # the drops are a decade apart


def test_agreement_warns_in_plain_words_beyond_a_decade():
  clear = lrt.RangeTestResult(LRS, v_curve(), v_curve(), 100, False)
  assert clear.agreement()["warning"] is None and clear.agreement()["decades"] < 1.0
  assert "warning" not in clear.summary()
  spread = result_with_repeats([-5.0, -2.0, 0.0])  # three repeats whose drops are decades apart
  agreement = spread.agreement()
  assert agreement["decades"] > 1.0 and agreement["repeats"] > 1.0
  assert "no clear steep region: widen the range or use more steps / repeats" in agreement["warning"]
  assert f"warning: {agreement['warning']}" in str(spread)


def test_summary_names_the_steps_run_and_the_stop_reason():
  losses = tanh_curve()
  losses[69:] = np.nan  # step 69 (the 70th) gave a NaN loss
  res = lrt.RangeTestResult(LRS, losses.copy(), losses.copy(), 70, True)
  assert str(res).splitlines()[0] == "range test: 70/100 steps (non-finite loss at step 69)"
  losses[69] = 5.0
  res = lrt.RangeTestResult(LRS, losses, losses, 70, True)
  assert str(res).splitlines()[0] == "range test: 70/100 steps (diverged)"
  many = lrt.RangeTestResult(LRS, np.stack([losses, tanh_curve()]), np.stack([losses, tanh_curve()]),
                             np.array([70, 100]), np.array([True, False]))
  assert many.stop_line() == "70..100/100 steps (1 diverged; 1 completed)"


@pytest.mark.parametrize("call", ["suggest", "suggestions", "suggestion_spread"])
def test_an_unknown_curve_is_refused_naming_it(call):
  res = lrt.RangeTestResult(LRS, tanh_curve(), tanh_curve(), 100, False)
  with pytest.raises(ValueError, match=rf"`RangeTestResult.{call}\(curve=\.\.\.\)`"):
    getattr(res, call)(curve="ema") if call == "suggestions" else getattr(res, call)("valley", curve="ema")


def test_the_recorded_curve_is_the_lagged_comparison():
  losses = tanh_curve()
  res = lrt.RangeTestResult(LRS, losses, ema(losses, 0.05), 100, False)
  assert math.log10(res.suggest("steepest", curve="recorded")) > math.log10(res.suggest("steepest")) + 0.3


def test_the_worker_draws_what_the_result_draws(tmp_path):
  res = result_with_repeats([-2.2, -2.0, -1.8])
  direct = lrt.plotting.plot_range_test(res)
  via_payload = lrt.plotting.plot_range_test(_plot_worker._as_result(_plot_worker.payload(res)))
  labels = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in (direct, via_payload)]
  assert labels[0] == labels[1] and direct.get_title() == via_payload.get_title()
  assert "band over 3 repeats" in labels[0] and res.stop_line() in direct.get_title()
  worker = _plot_worker.start()
  _plot_worker.draw(res, str(tmp_path / "w.png"), "title", worker)
  assert worker is None or worker.returncode == 0
  assert (tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"


def test_suggestions_computed_in_the_sweeps_program_are_used_as_they_are():
  """``sweep_suggestions`` (what the sweep's compiled program may return) gives the same answers as the
  result computing them afterwards; a result whose smoothing was changed recomputes them."""
  from lrtools.finder._suggest import sweep_suggestions
  losses = np.stack([v_curve(seed=s) for s in range(3)])
  recorded = np.stack([ema(row, 0.05) for row in losses])
  runs = np.array([100, 90, 95])
  computed = jax.jit(jax.vmap(sweep_suggestions, in_axes=(None, 0, 0, 0, None)))(
      jnp.asarray(LRS), jnp.asarray(losses), jnp.asarray(recorded), jnp.asarray(runs), jnp.float32(0.05))
  with_them = lrt.RangeTestResult.from_states(LRS, losses, recorded, runs, np.zeros(3, bool), computed, 0.05)
  without = with_them._replace(run_suggestions=None)
  for curve in ("centred", "recorded"):
    for method, (lr, index) in without.suggestions(curve).items():
      assert with_them.suggestions(curve)[method] == (pytest.approx(lr, rel=1e-6), index)
  np.testing.assert_allclose(with_them.centred_losses, without.centred_losses, rtol=1e-6)
  wider = with_them._replace(smoothing=0.02)
  np.testing.assert_allclose(wider.centred_losses, without._replace(smoothing=0.02).centred_losses, rtol=1e-6)
  assert not np.allclose(wider.centred_losses, with_them.centred_losses, equal_nan=True)
