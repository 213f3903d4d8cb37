"""Sanity checks before training (CS231n "babysitting"): the initial loss, regularization raising the loss,
and overfitting a tiny subset; :func:`sanity_check` runs all three on a classifier and its data.

Each check evaluates one jitted program and returns a NamedTuple of host numbers. A non-finite loss never
passes a check: it is reported as it is (NaN or inf) with ``passed=False``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrtools._loop import train_loop
from lrtools._typing import check_callable, check_integer, check_one_of, check_positive, concrete, fail

_LOSSES = ("softmax", "svm")


class InitialLossResult(NamedTuple):
  """Attributes: ``measured`` loss at initialization; ``expected`` (ln C, or C − 1 for the SVM);
  ``passed`` when ``|measured − expected| ≤ tolerance · expected``; ``tolerance`` (relative)."""
  measured: float
  expected: float
  passed: bool
  tolerance: float


class RegularizationResult(NamedTuple):
  """Attributes: the ``strengths`` tried (increasing), the ``losses`` at each, ``passed`` when the losses
  are finite, never decrease, and the largest strength's exceeds the smallest's."""
  strengths: np.ndarray
  losses: np.ndarray
  passed: bool


class OverfitResult(NamedTuple):
  """Attributes: ``losses``, the curve (the loss before each step, then after the last: ``num_steps + 1``
  values); ``final_loss``; ``accuracy`` on the subset after training (``None`` without ``accuracy_fn``);
  ``passed`` (accuracy 100 % with ``accuracy_fn``, else ``final_loss ≤ loss_threshold``)."""
  losses: np.ndarray
  final_loss: float
  accuracy: float | None
  passed: bool


class SanityReport(NamedTuple):
  """The three checks of :func:`sanity_check`; ``passed`` when all pass; ``str(report)`` is a short report."""
  initial_loss: InitialLossResult
  regularization: RegularizationResult
  overfit: OverfitResult
  passed: bool

  def __str__(self) -> str:
    ok = lambda passed: "ok" if passed else "FAILED"  # noqa: E731
    i, r, o = self.initial_loss, self.regularization, self.overfit
    acc = "" if o.accuracy is None else f", training accuracy {100 * o.accuracy:.0f}%"
    return "\n".join([
        f"sanity checks: {'passed' if self.passed else 'FAILED'}",
        f"  initial loss    {i.measured:.4f}, expected {i.expected:.4f} (±{100 * i.tolerance:g}%)  {ok(i.passed)}",
        f"  regularization  loss {r.losses[0]:.6g} at strength {r.strengths[0]:g} -> {r.losses[-1]:.6g} at "
        f"{r.strengths[-1]:g} ({len(r.losses)} strengths)  {ok(r.passed)}",
        f"  overfit subset  loss {o.losses[0]:.4g} -> {o.final_loss:.4g} in {len(o.losses) - 1} steps{acc}  "
        f"{ok(o.passed)}"])


def expected_initial_loss(num_classes: int, loss: str = "softmax") -> float:
  """ln C for softmax cross-entropy (uniform probabilities); C − 1 for the multiclass SVM with margin 1
  (all scores equal: every wrong class costs the margin)."""
  return math.log(num_classes) if loss == "softmax" else float(num_classes - 1)


def _scalar(call: str, name: str, fn: Callable, value: Any) -> float:
  """``value`` (what ``fn`` returned) as a float, or the one error form when it is not a real scalar."""
  v = np.asarray(jax.device_get(value))
  if v.shape != () or not (np.issubdtype(v.dtype, np.number) or v.dtype == bool):
    fail(call, name, fn, f"must return a real scalar, got shape {v.shape} and dtype {v.dtype}")
  return float(v)


def initial_loss_check(loss_fn: Callable, params: Any, batch: Any, *, num_classes: int, loss: str = "softmax",
                       tolerance: float = 0.1) -> InitialLossResult:
  r"""Checks that the loss at initialization is the chance-level loss (regularization off).

  .. math:: L_0 \approx \ln C\ \text{(softmax)},\qquad L_0 \approx C - 1\ \text{(multiclass SVM, margin 1)}

  With small random weights all scores are about equal, so each class has probability 1/C.

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar`` data loss (no regularization), jittable.
    params: the freshly initialized parameters.
    batch: the batch the loss is evaluated on.
    num_classes: C, an integer ≥ 2.
    loss: ``"softmax"`` (cross-entropy) or ``"svm"`` (multiclass hinge, margin 1).
    tolerance: relative tolerance, positive: passes when :math:`|L_0 - E| \le` ``tolerance`` · E.

  Returns:
    An :class:`InitialLossResult` ``(measured, expected, passed, tolerance)``.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from lrtools.diagnostics import initial_loss_check
    >>> ce = lambda w, b: optax.softmax_cross_entropy_with_integer_labels(b["x"] @ w, b["y"]).mean()
    >>> batch = {"x": jnp.ones((4, 3)), "y": jnp.array([0, 1, 2, 3])}
    >>> r = initial_loss_check(ce, jnp.full((3, 10), 1e-3), batch, num_classes=10)
    >>> round(r.measured, 4), round(r.expected, 4), r.passed
    (2.3026, 2.3026, True)

  References:
    CS231n "Neural Networks Part 3: look for correct loss at chance performance".
  """
  call = "initial_loss_check"
  check_callable(call, "loss_fn", loss_fn)
  check_integer(call, "num_classes", num_classes, 2)
  check_one_of(call, "loss", loss, _LOSSES)
  _check_host_positive(call, "tolerance", tolerance)
  measured = _scalar(call, "loss_fn", loss_fn, jax.jit(loss_fn)(params, batch))
  expected = expected_initial_loss(int(num_classes), loss)
  passed = bool(np.isfinite(measured) and abs(measured - expected) <= float(tolerance) * expected)
  return InitialLossResult(measured, expected, passed, float(tolerance))


def regularization_check(loss_fn: Callable, params: Any, batch: Any, *,
                         strengths: Sequence[float] = (0.0, 1e-3, 1e-2, 1e-1, 1.0)) -> RegularizationResult:
  r"""Checks that raising the regularization strength raises the loss.

  .. math:: \lambda_1 < \dots < \lambda_k \implies L(\theta; \lambda_1) \le \dots \le L(\theta; \lambda_k),
            \quad L(\theta; \lambda_1) < L(\theta; \lambda_k)

  Equal neighbours are allowed: with small initial weights a weak penalty may be below the loss's float
  resolution. A loss that falls, or does not move at all, fails (the penalty has the wrong sign or is unused).

  Args:
    loss_fn: ``loss_fn(params, batch, strength) -> scalar``, jittable in ``strength`` (all strengths are
      evaluated in one ``vmap``).
    params: the parameters (non-zero where regularized).
    batch: the batch.
    strengths: at least two finite, non-negative, strictly increasing strengths.

  Returns:
    A :class:`RegularizationResult` ``(strengths, losses, passed)``.

  Example:
    >>> import jax.numpy as jnp
    >>> from lrtools.diagnostics import regularization_check
    >>> loss = lambda w, b, s: jnp.mean((b @ w) ** 2) + s * 0.5 * jnp.sum(w ** 2)
    >>> r = regularization_check(loss, jnp.ones(3), jnp.eye(3), strengths=(0.0, 0.1, 1.0))
    >>> r.losses.round(3).tolist(), r.passed
    ([1.0, 1.15, 2.5], True)

  References:
    CS231n "Neural Networks Part 3: increasing the regularization strength should increase the loss".
  """
  call = "regularization_check"
  check_callable(call, "loss_fn", loss_fn)
  s = _check_strengths(call, strengths)
  values = jnp.asarray(s, jnp.result_type(float))
  losses = np.asarray(jax.jit(jax.vmap(lambda v: loss_fn(params, batch, v)))(values))
  if losses.shape != values.shape or not np.issubdtype(losses.dtype, np.floating):
    fail(call, "loss_fn", loss_fn, "must return a real scalar for each strength")
  losses = losses.astype(np.float64)
  # Non-decreasing, not strictly increasing: with small weights the first penalties may fall below the
  # loss's float resolution; the largest strength must still show.
  passed = bool(np.all(np.isfinite(losses)) and np.all(np.diff(losses) >= 0) and losses[-1] > losses[0])
  return RegularizationResult(np.asarray(s, np.float64), losses, passed)


def overfit_check(loss_fn: Callable, params: Any, batch: Any, *, optimizer: optax.GradientTransformation,
                  num_steps: int = 200, accuracy_fn: Callable | None = None,
                  loss_threshold: float = 1e-2) -> OverfitResult:
  r"""Trains on one tiny batch (e.g. 20 examples, no regularization) with the shared compiled loop and
  checks that it is memorized.

  .. math:: \theta_{t+1} = \theta_t + u_t(\nabla L(\theta_t; B)),\quad
            \text{pass} \iff \text{acc}(\theta_T; B) = 1\ \text{(or } L(\theta_T; B) \le \text{threshold)}

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar`` data loss, jittable.
    params: the starting parameters.
    batch: the tiny batch, used at every step.
    optimizer: an ``optax.GradientTransformation`` (your step, e.g. ``lrtools.adam(1e-2)``).
    num_steps: training steps, a positive integer.
    accuracy_fn: optional ``accuracy_fn(params, batch) -> fraction correct``: passes at 100 %.
    loss_threshold: without ``accuracy_fn``, passes when the final loss is at most this (positive).

  Returns:
    An :class:`OverfitResult` ``(losses, final_loss, accuracy, passed)``; ``losses`` is the curve.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from lrtools.diagnostics import overfit_check
    >>> loss = lambda w, b: jnp.mean((b["x"] @ w - b["y"]) ** 2)
    >>> batch = {"x": jnp.eye(3), "y": jnp.array([1.0, 2.0, 3.0])}
    >>> r = overfit_check(loss, jnp.zeros(3), batch, optimizer=optax.sgd(1.0), num_steps=50)
    >>> r.passed, len(r.losses), round(r.final_loss, 6)
    (True, 51, 0.0)

  References:
    CS231n "Neural Networks Part 3: overfit a tiny subset of data".
  """
  call = "overfit_check"
  check_callable(call, "loss_fn", loss_fn)
  if not isinstance(optimizer, optax.GradientTransformation):
    fail(call, "optimizer", optimizer, "must be an optax.GradientTransformation (e.g. lrtools.adam(1e-2))")
  check_integer(call, "num_steps", num_steps, 1)
  if accuracy_fn is not None:
    check_callable(call, "accuracy_fn", accuracy_fn)
  _check_host_positive(call, "loss_threshold", loss_threshold)

  @jax.jit
  def run(params, batch):
    stacked = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], batch)  # one batch, cycled
    # The recorded rate is not reported: NaN avoids requiring the optimizer to expose it.
    out = train_loop(loss_fn, optimizer, params, optimizer.init(params), stacked, num_steps=int(num_steps),
                     learning_rate=jnp.nan)
    accuracy = accuracy_fn(out.params, batch) if accuracy_fn is not None else jnp.nan
    return out.records.loss, loss_fn(out.params, batch), accuracy

  curve, final, accuracy = run(params, batch)
  losses = np.append(np.asarray(curve, np.float64), _scalar(call, "loss_fn", loss_fn, final))
  final_loss = float(losses[-1])
  acc = None if accuracy_fn is None else _scalar(call, "accuracy_fn", accuracy_fn, accuracy)
  finite = bool(np.all(np.isfinite(losses)))
  passed = finite and (acc >= 1.0 if acc is not None else final_loss <= float(loss_threshold))
  return OverfitResult(losses, final_loss, acc, passed)


def _check_strengths(call: str, strengths: Any) -> np.ndarray:
  s = concrete(strengths)
  if s is None or s.ndim != 1 or s.size < 2 or not np.issubdtype(s.dtype, np.number) or s.dtype == bool:
    fail(call, "strengths", strengths, "must be a 1-D sequence of at least two numbers")
  if not (np.all(np.isfinite(s)) and np.all(s >= 0) and np.all(np.diff(s) > 0)):
    fail(call, "strengths", strengths, "must be finite, non-negative and strictly increasing")
  return s


def _check_host_positive(call: str, name: str, value: Any) -> None:
  check_positive(call, name, value)
  if concrete(value) is None:
    fail(call, name, value, "must be concrete (the checks run on the host)")


def multiclass_svm_loss(scores: jax.Array, labels: jax.Array) -> jax.Array:
  r"""Per-example multiclass SVM loss with margin 1 (Weston–Watkins, CS231n):
  :math:`L_i = \sum_{j \ne y_i} \max(0, s_j - s_{y_i} + 1)`."""
  correct = jnp.take_along_axis(scores, labels[:, None], axis=-1)
  margins = jnp.maximum(0, scores - correct + jnp.ones((), scores.dtype))
  return jnp.sum(margins, axis=-1) - jnp.ones((), scores.dtype)  # the j = y_i term is exactly the margin 1


def _data_loss(apply_fn: Callable, loss: str) -> Callable:
  def data_loss(params, batch):
    scores = apply_fn(params, batch["x"])
    if loss == "softmax":
      return optax.softmax_cross_entropy_with_integer_labels(scores, batch["y"]).mean()
    return multiclass_svm_loss(scores, batch["y"]).mean()
  return data_loss


def l2_penalty(params: Any) -> jax.Array:
  r""":math:`\tfrac12 \sum \|W\|^2` over the weight leaves (rank ≥ 2: kernels, not biases), or over every
  leaf when none has rank 2 or more."""
  leaves = jax.tree_util.tree_leaves(params)
  weights = [w for w in leaves if jnp.ndim(w) >= 2] or leaves
  return sum(jnp.sum(jnp.square(w)) for w in weights) / 2


def _apply_fn(call: str, model: Any) -> Callable:
  import flax.linen as nn
  if isinstance(model, nn.Module):
    return lambda params, x: model.apply({"params": params}, x)
  check_callable(call, "model", model)
  return model


def _check_data(call: str, x: Any, y: Any, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  xs, ys = concrete(x), concrete(y)
  if xs is None or xs.ndim < 1 or xs.shape[0] < 1 or not np.issubdtype(xs.dtype, np.number) or xs.dtype == bool:
    fail(call, "x", x, "must be a concrete array of real numbers with a leading batch axis")
  if ys is None or ys.ndim != 1 or not np.issubdtype(ys.dtype, np.integer):
    fail(call, "y", y, "must be a 1-D array of integer labels")
  if len(ys) != len(xs):
    fail(call, "y", y, f"must hold one label per example of x ({len(xs)})")
  if np.any(ys < 0) or np.any(ys >= num_classes):
    fail(call, "y", y, f"must hold labels in [0, num_classes={num_classes})")
  return xs, ys


def sanity_check(model: Any, params: Any, x: Any, y: Any, *, num_classes: int,
                 optimizer: optax.GradientTransformation | None = None, loss: str = "softmax",
                 tolerance: float = 0.1, strengths: Sequence[float] = (0.0, 1e-3, 1e-2, 1e-1, 1.0),
                 num_examples: int = 20, num_steps: int = 200) -> SanityReport:
  r"""Runs the three CS231n sanity checks on a classifier and its data; ``print(report)`` summarizes them.

  1. :func:`initial_loss_check` of the data loss on ``(x, y)`` (chance level: ln C, or C − 1 for the SVM);
  2. :func:`regularization_check` of the data loss plus :math:`\lambda \cdot \tfrac12 \sum \|W\|^2` (weights of
     rank ≥ 2) on ``(x, y)``;
  3. :func:`overfit_check` on the first ``num_examples`` examples, without regularization: passes at 100 %
     training accuracy.

  .. math:: L(\theta; \lambda) = \frac1N \sum_i \ell(f_\theta(x_i), y_i) + \frac\lambda2 \sum_W \|W\|^2

  Args:
    model: a ``flax.linen`` Module (``model.apply({"params": params}, x)``) or ``apply_fn(params, x) ->
      scores``, e.g. for NNX ``lambda state, x: nnx.merge(graphdef, state)(x)`` with ``params=state``.
    params: the freshly initialized parameters.
    x: inputs with a leading batch axis (concrete).
    y: integer labels in ``[0, num_classes)``, one per example.
    num_classes: C, an integer ≥ 2.
    optimizer: the step of the overfit check; default ``lrtools.adam(1e-2)``.
    loss: ``"softmax"`` (cross-entropy) or ``"svm"`` (multiclass hinge, margin 1).
    tolerance: relative tolerance of the initial-loss check.
    strengths: regularization strengths, strictly increasing.
    num_examples: size of the subset to overfit, at most ``len(x)``.
    num_steps: training steps of the overfit check.

  Returns:
    A :class:`SanityReport` ``(initial_loss, regularization, overfit, passed)``.

  Example:
    >>> import jax, jax.numpy as jnp, numpy as np, flax.linen as nn
    >>> from lrtools.diagnostics import sanity_check
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(40, 8)).astype(np.float32), np.arange(40, dtype=np.int32) % 4
    >>> model = nn.Dense(4, kernel_init=nn.initializers.normal(1e-3))
    >>> params = model.init(jax.random.key(0), x)["params"]
    >>> report = sanity_check(model, params, x, y, num_classes=4, num_examples=8, num_steps=100)
    >>> report.passed, round(report.initial_loss.expected, 4)
    (True, 1.3863)
    >>> print(report)  # doctest: +ELLIPSIS
    sanity checks: passed
      initial loss    1.386..., expected 1.3863 (±10%)  ok
      regularization  loss 1.38662 at strength 0 -> 1.38664 at 1 (5 strengths)  ok
      overfit subset  loss 1.38... -> 0.2... in 100 steps, training accuracy 100%  ok

  References:
    CS231n "Neural Networks Part 3: before learning: sanity checks tips/tricks".
  """
  call = "sanity_check"
  apply_fn = _apply_fn(call, model)
  check_integer(call, "num_classes", num_classes, 2)
  check_one_of(call, "loss", loss, _LOSSES)
  check_integer(call, "num_examples", num_examples, 1)
  check_integer(call, "num_steps", num_steps, 1)
  _check_host_positive(call, "tolerance", tolerance)
  _check_strengths(call, strengths)
  xs, ys = _check_data(call, x, y, int(num_classes))
  if num_examples > len(xs):
    fail(call, "num_examples", num_examples, f"must be at most the number of examples ({len(xs)})")
  if optimizer is None:
    from lrtools.optimizers import adam
    optimizer = adam(1e-2)
  data_loss = _data_loss(apply_fn, loss)
  batch = {"x": jnp.asarray(xs), "y": jnp.asarray(ys)}
  first = initial_loss_check(data_loss, params, batch, num_classes=num_classes, loss=loss, tolerance=tolerance)
  reg = regularization_check(lambda p, b, s: data_loss(p, b) + s * l2_penalty(p), params, batch,
                             strengths=strengths)
  subset = {"x": batch["x"][:num_examples], "y": batch["y"][:num_examples]}
  accuracy = lambda p, b: jnp.mean(jnp.argmax(apply_fn(p, b["x"]), axis=-1) == b["y"])  # noqa: E731
  fit = overfit_check(data_loss, params, subset, optimizer=optimizer, num_steps=num_steps, accuracy_fn=accuracy)
  return SanityReport(first, reg, fit, first.passed and reg.passed and fit.passed)
