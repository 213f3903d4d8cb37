"""The LR range test against a NumPy transcription of the loop, suggestion rules, repeats and bad inputs."""

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


def mse(params, batch):
  return jnp.mean((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2)


def momentum_sgd(lr):
  return optax.sgd(lr, momentum=0.9)


def run(**kwargs):
  defaults = dict(start_lr=1e-4, end_lr=10.0, num_steps=STEPS)
  return lrt.lr_range_test(mse, PARAMS, kwargs.pop("optimizer", momentum_sgd), kwargs.pop("batches", BATCHES),
                           **{**defaults, **kwargs})


# --- the sweep -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["exponential", "linear"])
def test_sweep_values_exact(mode):
  lrs = sweep_lrs(1e-7, 10.0, 100, mode)
  i = np.arange(100)
  want = 1e-7 * (10.0 / 1e-7) ** (i / 99) if mode == "exponential" else 1e-7 + (10.0 - 1e-7) * i / 99
  np.testing.assert_allclose(lrs, want, rtol=1e-14)
  assert lrs[0] == 1e-7 and lrs[-1] == 10.0
  np.testing.assert_array_equal(run(mode=mode, start_lr=1e-7, num_steps=100).lrs, lrs)


@pytest.mark.parametrize("debias", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.05, 0.3])
def test_whole_sweep_matches_numpy_loop(debias, smoothing):
  res = run(smoothing=smoothing, debias=debias)
  losses, smoothed, num_run, diverged = ref.range_test_linear(
      np.zeros(D), 0.0, XS, YS, sweep_lrs(1e-4, 10.0, STEPS), momentum=0.9, smoothing=smoothing, debias=debias)
  assert (res.num_steps_run, res.diverged) == (num_run, diverged)
  assert diverged and num_run < STEPS  # lr = 10 diverges on this problem
  np.testing.assert_allclose(res.losses, losses, rtol=1e-10)
  np.testing.assert_allclose(res.smoothed_losses, smoothed, rtol=1e-10)
  assert np.all(np.isnan(res.losses[num_run:]))


def test_negative_losses_diverge_relative_to_the_magnitude_of_the_best():
  res = lrt.lr_range_test(lambda p, b: mse(p, b) - 10.0, PARAMS, momentum_sgd, BATCHES, start_lr=1e-4,
                          end_lr=10.0, num_steps=STEPS)
  losses, _, num_run, diverged = ref.range_test_linear(np.zeros(D), 0.0, XS, YS, sweep_lrs(1e-4, 10.0, STEPS),
                                                       momentum=0.9, offset=-10.0)
  assert res.num_steps_run == num_run > 20 and res.diverged == diverged
  np.testing.assert_allclose(res.losses, losses, rtol=1e-10)


def test_validation_mode_records_the_loss_after_each_step_on_the_fixed_batch():
  vx, vy = XS[0] * 1.5, YS[0]
  res = run(validation_batch={"x": jnp.asarray(vx), "y": jnp.asarray(vy)}, diverge_threshold=4.0)
  losses, smoothed, num_run, _ = ref.range_test_linear(np.zeros(D), 0.0, XS, YS, sweep_lrs(1e-4, 10.0, STEPS),
                                                       momentum=0.9, diverge_threshold=4.0, val=(vx, vy))
  assert res.num_steps_run == num_run
  np.testing.assert_allclose(res.losses, losses, rtol=1e-10)


def test_steps_after_divergence_are_not_computed():
  calls = []

  def counted(params, batch):
    jax.debug.callback(lambda: calls.append(1))
    return mse(params, batch)

  res = lrt.lr_range_test(counted, PARAMS, momentum_sgd, BATCHES, start_lr=1e-4, end_lr=10.0, num_steps=STEPS)
  assert res.diverged and res.num_steps_run < STEPS - 5
  assert len(calls) == res.num_steps_run


def test_non_finite_loss_stops_the_sweep():
  def blows_up(params, batch):
    return jnp.where(params["b"] > 0.2, jnp.nan, mse(params, batch))
  res = lrt.lr_range_test(blows_up, PARAMS, momentum_sgd, BATCHES, start_lr=1e-4, end_lr=10.0, num_steps=STEPS,
                          diverge_threshold=float("inf"))
  assert res.diverged and np.isnan(res.losses[res.num_steps_run - 1])
  assert np.all(np.isfinite(res.losses[:res.num_steps_run - 1]))


def test_params_are_not_modified_and_a_rerun_is_identical():
  before = jax.tree_util.tree_map(np.array, PARAMS)
  first, second = run(), run()
  jax.tree_util.tree_map(np.testing.assert_array_equal, before, jax.tree_util.tree_map(np.asarray, PARAMS))
  np.testing.assert_array_equal(first.losses, second.losses)


def test_repeated_calls_reuse_the_compiled_program():
  from lrtools.finder import _range_test
  aux = lambda p, b: (mse(p, b), None)  # noqa: E731
  kwargs = dict(start_lr=1e-4, end_lr=1.0, num_steps=STEPS, has_aux=True,
                validation_batch={"x": BATCHES["x"][0], "y": BATCHES["y"][0]})
  lrt.lr_range_test(aux, PARAMS, momentum_sgd, BATCHES, **kwargs)
  size = _range_test._device_sweep._cache_size()
  lrt.lr_range_test(aux, PARAMS, momentum_sgd, BATCHES, **{**kwargs, "start_lr": 1e-5, "end_lr": 3.0})
  assert _range_test._device_sweep._cache_size() == size
  weak = [{"x": XS[i], "y": YS[i]} for i in range(STEPS)]
  before = _range_test._chunk_sweep._cache_size()
  lrt.lr_range_test(lambda w, b: jnp.mean((b["x"][:, 0] * w - b["y"]) ** 2), 0.0, momentum_sgd, weak,
                    start_lr=1e-4, end_lr=1e-2, num_steps=STEPS, chunk_size=10)
  assert _range_test._chunk_sweep._cache_size() == before + 1  # Python-scalar params: one program


def test_an_iterable_that_is_empty_on_its_second_pass_raises():
  class OnePass:
    def __init__(self):
      self.gen = ({"x": XS[i], "y": YS[i]} for i in range(4))

    def __iter__(self):
      return iter(self.gen)

  with pytest.raises(ValueError, match="ran out after 4 batches"):
    run(batches=OnePass(), chunk_size=3, end_lr=1e-3)


def test_sweep_lrs_validates():
  for args, arg in [((1e-3, 1.0, 1), "num_steps"), ((1e-3, 1.0, 3, "cosine"), "mode"), ((1.0, 0.1, 3), "start_lr")]:
    with pytest.raises(ValueError, match=rf"`sweep_lrs\(.*{arg}=\.\.\."):
      sweep_lrs(*args)


def test_has_aux_and_lrtools_style_factories():
  res = lrt.lr_range_test(lambda p, b: (mse(p, b), {"unused": 1.0}), PARAMS, lambda lr: optax.adam(lr), BATCHES,
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


def test_function_batches_and_repeats_equal_individual_runs():
  def make_batch(key, step):
    x = jax.random.normal(key, (B, D))
    return {"x": x, "y": x @ jnp.asarray(W_TRUE) + 0.5}

  def init_fn(key):
    return {"w": 0.1 * jax.random.normal(key, (D,)), "b": jnp.zeros(())}

  key = jax.random.key(3)
  together = lrt.lr_range_test(mse, PARAMS, momentum_sgd, make_batch, start_lr=1e-4, end_lr=10.0, num_steps=STEPS,
                               num_repeats=3, key=key, init_fn=init_fn)
  assert together.losses.shape == (3, STEPS) and together.num_repeats == 3
  for r, k in enumerate(jax.random.split(key, 3)):
    alone = lrt.lr_range_test(mse, PARAMS, momentum_sgd, make_batch, start_lr=1e-4, end_lr=10.0, num_steps=STEPS,
                              key=k, init_fn=init_fn)
    np.testing.assert_allclose(together.losses[r], alone.losses, rtol=1e-10)
    assert together.num_steps_run[r] == alone.num_steps_run
    assert together.suggestion_spread("valley")["each"][r] == pytest.approx(alone.suggest("valley"), nan_ok=True)
  spread = together.suggestion_spread("valley")
  assert spread["min"] <= together.suggest("valley") * 1.0001 or spread["min"] <= spread["median"]
  assert spread["min"] <= spread["median"] <= spread["max"] and spread["each"].shape == (3,)
  low, high = together.band
  assert np.all((low <= together.median_losses + 1e-12) | np.isnan(together.median_losses))
  assert np.all((together.median_losses <= high + 1e-12) | np.isnan(together.median_losses))


def test_repeats_over_stacked_batches_visit_them_in_different_orders():
  res = run(num_repeats=2, key=jax.random.key(0), end_lr=1e-2)
  assert res.losses.shape == (2, STEPS)
  assert not np.allclose(res.losses[0], res.losses[1])


# --- suggestions against NumPy transcriptions ------------------------------------------------------------

curves = st.lists(st.floats(0.1, 10.0), min_size=2, max_size=60)
RULE_LRS = np.logspace(-6, 1, 60)
RULES = {name: jax.jit(rule) for name, rule in
         [("steepest", suggest_steepest), ("minimum", suggest_minimum), ("valley", suggest_valley)]}


@given(curves, st.integers(0, 60), st.booleans())
def test_suggestions_match_transcribed_rules(values, cut, nan_tail):
  losses = np.full(60, np.nan)  # one length, so each rule compiles once; the tail is never valid
  losses[:len(values)] = values
  run_steps = min(max(cut, 1), len(values))
  if nan_tail:
    losses[run_steps:] = np.nan
  curve = jnp.asarray(losses)
  lr, i = RULES["steepest"](jnp.asarray(RULE_LRS), curve, run_steps, 3, 2)
  want = ref.suggest_steepest(RULE_LRS, losses, run_steps, 3, 2)
  assert (int(i), np.isnan(float(lr))) == ((-1, True) if want is None else (want, False))
  lr, i = RULES["minimum"](jnp.asarray(RULE_LRS), curve, run_steps, 6, 2)
  want = ref.suggest_minimum(losses, run_steps, 6, 2)
  assert int(i) == (-1 if want is None else want)
  if want is not None:
    assert float(lr) == pytest.approx(RULE_LRS[want] / 10)
  lr, i = RULES["valley"](jnp.asarray(RULE_LRS), curve, run_steps, 6, 2)
  want = ref.suggest_valley(losses, run_steps, 6, 2)
  assert int(i) == (-1 if want is None else want)


def test_suggestions_on_flat_and_all_nan_curves():
  lrs = jnp.logspace(-6, 0, 40)
  flat = jnp.ones(40)
  assert int(suggest_valley(lrs, flat, 40)[1]) == 0
  assert int(suggest_minimum(lrs, flat, 40)[1]) == 0
  assert 0 <= int(suggest_steepest(lrs, flat, 40)[1]) < 40
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


def test_result_suggest_uses_the_conventional_windows():
  res = run()
  rebuilt = res._replace(run_suggestions=None)  # recomputed outside the sweep's program: the same answer
  for method, (lr, index) in res.suggestions().items():
    assert rebuilt.suggestions()[method] == (pytest.approx(lr), index)
  curve, n = res.smoothed_losses, res.num_steps_run
  assert res.suggest("steepest") == pytest.approx(res.lrs[ref.suggest_steepest(res.lrs, curve, n)])
  assert res.suggest("minimum") == pytest.approx(res.lrs[ref.suggest_minimum(curve, n, STEPS // 10, 5)] / 10)
  assert res.suggest("valley") == pytest.approx(res.lrs[ref.suggest_valley(curve, n, STEPS // 10, 5)])


def test_plot_marks_the_suggestions(tmp_path):
  ax = run().plot()
  assert ax.get_xscale() == "log"
  labels = [t.get_text() for t in ax.get_legend().get_texts()]
  assert labels[:2] == ["loss", "smoothed loss"] and any(label.startswith("valley: ") for label in labels)
  ax.figure.savefig(tmp_path / "rt.png")
  band_ax = run(num_repeats=2, key=jax.random.key(1)).plot()
  assert any("band over 2 repeats" in t.get_text() for t in band_ax.get_legend().get_texts())


# --- bad inputs -------------------------------------------------------------------------------------------

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
    (dict(chunk_size=0), "chunk_size"),
    (dict(chunk_size=2.5), "chunk_size"),
    (dict(batches={"x": jnp.ones((3, 2)), "y": jnp.ones((4,))}), "batches"),
    (dict(batches=[{"x": XS[0], "y": YS[0]}], num_repeats=2), "num_repeats"),
])
def test_bad_inputs_raise_naming_the_argument(kwargs, arg):
  with pytest.raises(ValueError, match=rf"`lr_range_test\(.*{arg}=\.\.\."):
    run(**kwargs)


def test_unknown_suggestion_method():
  with pytest.raises(ValueError, match=r"method=\.\.\..*got method='best'"):
    run(end_lr=1e-3).suggest("best")
