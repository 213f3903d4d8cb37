"""Sanity checks on a real small model on digits: chance-level initial loss, regularization raising the loss,
a 20-example subset overfit to 100 %; failures are caught; NumPy references for the losses."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrtools as lrt
from lrtools import models
from lrtools.data import load_digits
from lrtools.diagnostics import (InitialLossResult, OverfitResult, RegularizationResult, SanityReport,
                                 initial_loss_check, overfit_check, regularization_check, sanity_check)
from lrtools.diagnostics._sanity import l2_penalty, multiclass_svm_loss
from tests import reference as ref

DS = load_digits()
X, Y = DS.x_train[:300], DS.y_train[:300]
MODEL = models.MLP(hidden=(32,), num_classes=10)


def small_init(seed=0):
  """Flax's initialization with the output layer scaled down (CS231n: small random weights give equal
  scores, so the initial loss is chance level)."""
  params = models.init_params(MODEL, jax.random.key(seed), X[:1])
  return {**params, "Dense_1": {**params["Dense_1"], "kernel": params["Dense_1"]["kernel"] * 0.01}}


def scores(params, x=X):
  return np.asarray(MODEL.apply({"params": params}, x), np.float64)


@pytest.fixture(scope="module")
def report():
  return sanity_check(MODEL, small_init(), X, Y, num_classes=10)


def test_sanity_check_on_digits(report):
  assert isinstance(report, SanityReport) and report.passed, str(report)
  first = report.initial_loss
  assert isinstance(first, InitialLossResult)
  assert first.expected == pytest.approx(np.log(10), rel=1e-12)
  assert abs(first.measured - np.log(10)) < 0.05
  assert first.measured == pytest.approx(ref.softmax_cross_entropy(scores(small_init()), Y), rel=1e-5)
  reg = report.regularization
  assert isinstance(reg, RegularizationResult) and reg.passed
  np.testing.assert_allclose(reg.strengths, [0.0, 1e-3, 1e-2, 1e-1, 1.0])
  # The data loss plus λ · ½ Σ‖W‖² over the two kernels, recomputed with NumPy.
  p = small_init()
  half_sq = 0.5 * sum(np.sum(np.asarray(p[k]["kernel"], np.float64) ** 2) for k in ("Dense_0", "Dense_1"))
  np.testing.assert_allclose(reg.losses, first.measured + reg.strengths * half_sq, rtol=1e-5)
  fit = report.overfit
  assert isinstance(fit, OverfitResult) and fit.passed
  assert fit.accuracy == 1.0 and fit.losses.shape == (201,)
  assert fit.final_loss < 0.05 * fit.losses[0]
  np.testing.assert_allclose(fit.losses[0], ref.softmax_cross_entropy(scores(small_init(), X[:20]), Y[:20]),
                             rtol=1e-5)
  lines = str(report).splitlines()
  assert lines[0] == "sanity checks: passed" and len(lines) == 4
  assert "expected 2.3026" in lines[1] and "accuracy 100%" in lines[3]


def test_the_multiclass_svm_initial_loss_is_c_minus_one():
  batch = {"x": jnp.asarray(X), "y": jnp.asarray(Y)}

  def svm(p, b):
    return multiclass_svm_loss(MODEL.apply({"params": p}, b["x"]), b["y"]).mean()
  p = small_init()
  result = initial_loss_check(svm, p, batch, num_classes=10, loss="svm")
  assert result.expected == 9.0 and result.passed
  assert result.measured == pytest.approx(ref.multiclass_svm(scores(p), Y), rel=1e-5)
  # Larger scores: the NumPy reference still agrees, the check fails.
  wide = {**p, "Dense_1": {**p["Dense_1"], "kernel": p["Dense_1"]["kernel"] * 1000}}
  result = initial_loss_check(svm, wide, batch, num_classes=10, loss="svm")
  assert result.measured == pytest.approx(ref.multiclass_svm(scores(wide), Y), rel=1e-5)
  assert not result.passed


def test_failures_are_caught():
  batch = {"x": jnp.asarray(X), "y": jnp.asarray(Y)}
  data = models.cross_entropy_loss(MODEL)
  p = small_init()
  summed = lambda q, b: data(q, b) * len(Y)  # noqa: E731  a sum where a mean belongs
  assert not initial_loss_check(summed, p, batch, num_classes=10).passed
  assert not initial_loss_check(lambda q, b: data(q, b) * jnp.nan, p, batch, num_classes=10).passed
  wrong_sign = regularization_check(lambda q, b, s: data(q, b) - s * l2_penalty(q), p, batch)
  unused = regularization_check(lambda q, b, s: data(q, b) + 0 * s, p, batch)
  assert not wrong_sign.passed and not unused.passed
  subset = {"x": batch["x"][:20], "y": batch["y"][:20]}
  frozen = overfit_check(data, p, subset, optimizer=optax.sgd(0.0), num_steps=5)
  assert not frozen.passed and frozen.accuracy is None
  assert frozen.final_loss == pytest.approx(frozen.losses[0], rel=1e-6)


def test_nnx_model_through_an_apply_function():
  from flax import nnx
  graphdef, state = nnx.split(nnx.Linear(64, 10, kernel_init=nnx.initializers.normal(1e-3), rngs=nnx.Rngs(0)))
  result = sanity_check(lambda s, x: nnx.merge(graphdef, s)(x), state, X, Y, num_classes=10,
                        optimizer=lrt.adam(0.1), num_steps=100)
  assert result.passed, str(result)


@pytest.mark.parametrize("call, kwargs, name", [
    ("sanity", dict(model=3), "model"),
    ("sanity", dict(num_classes=1), "num_classes"),
    ("sanity", dict(num_classes=True), "num_classes"),
    ("sanity", dict(loss="hinge"), "loss"),
    ("sanity", dict(y=Y[:10]), "y"),
    ("sanity", dict(y=Y.astype(np.float32)), "y"),
    ("sanity", dict(y=Y + 10), "y"),
    ("sanity", dict(x="pixels"), "x"),
    ("sanity", dict(num_examples=301), "num_examples"),
    ("sanity", dict(num_steps=0), "num_steps"),
    ("sanity", dict(tolerance=0.0), "tolerance"),
    ("sanity", dict(strengths=(1.0, 0.1)), "strengths"),
    ("initial", dict(tolerance=-1.0), "tolerance"),
    ("initial", dict(loss_fn="ce"), "loss_fn"),
    ("regularization", dict(strengths=(0.1,)), "strengths"),
    ("regularization", dict(strengths=(-1.0, 1.0)), "strengths"),
    ("regularization", dict(strengths=(0.0, np.inf)), "strengths"),
    ("regularization", dict(strengths="0,1"), "strengths"),
    ("overfit", dict(optimizer="adam"), "optimizer"),
    ("overfit", dict(num_steps=1.5), "num_steps"),
    ("overfit", dict(accuracy_fn=1), "accuracy_fn"),
    ("overfit", dict(loss_threshold=0.0), "loss_threshold"),
    ("overfit", dict(accuracy_fn=lambda p, b: jnp.ones(2)), "accuracy_fn"),
    ("initial", dict(loss_fn=lambda p, b: b["x"].sum(axis=1)), "loss_fn"),
    ("regularization", dict(loss_fn=lambda p, b, s: b["x"].sum() * jnp.ones(2)), "loss_fn"),
])
def test_bad_inputs_raise_naming_the_argument(call, kwargs, name):
  data = models.cross_entropy_loss(MODEL)
  batch = {"x": X[:4], "y": Y[:4]}
  if call == "sanity":
    args = dict(model=MODEL, params={}, x=X, y=Y, num_classes=10)
    args.update(kwargs)
    fn = lambda: sanity_check(args.pop("model"), args.pop("params"), args.pop("x"), args.pop("y"), **args)  # noqa: E731
    label = "sanity_check"
  elif call == "initial":
    args = {"loss_fn": data, "num_classes": 10, **kwargs}
    fn = lambda: initial_loss_check(args.pop("loss_fn"), {}, batch, **args)  # noqa: E731
    label = "initial_loss_check"
  elif call == "regularization":
    args = {"loss_fn": lambda p, b, s: s, **kwargs}
    fn = lambda: regularization_check(args.pop("loss_fn"), {}, batch, **args)  # noqa: E731
    label = "regularization_check"
  else:
    args = {"optimizer": optax.sgd(0.1), "num_steps": 2, **kwargs}
    fn = lambda: overfit_check(lambda w, b: jnp.sum(w ** 2), jnp.ones(2), batch, **args)  # noqa: E731
    label = "overfit_check"
  with pytest.raises(ValueError, match=rf"`{label}\({name}=\.\.\.\)`"):
    fn()
