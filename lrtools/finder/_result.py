"""RangeTestResult: the recorded curves of a range test, their suggestions, and the band over repeats."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrtools._typing import check_one_of
from lrtools.finder._suggest import METHODS, smooth_and_suggest_batched, suggest_all_batched

CURVES = ("centred", "recorded")
AGREEMENT_DECADES = 1.0  # beyond this spread (rules or repeats), the summary warns


def _log_median(values) -> float:
  r"""The median of the positive finite values in :math:`\log`: for an even count, the geometric mean of the
  two middle ones; NaN when there is none."""
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values) & (values > 0)]
  return float(np.exp(np.median(np.log(values)))) if values.size else float("nan")


def _quiet(reduce, values, **kwargs):
  """A NaN-ignoring reduction that gives NaN, without a warning, where every value is NaN."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    return reduce(values, **kwargs)


class RangeTestResult(NamedTuple):
  r"""What :func:`lr_range_test` recorded (NumPy arrays; one row per repeat when ``num_repeats > 1``).

  Attributes:
    lrs: the learning rate of each step, ``(n,)``.
    losses: the recorded loss of each step, NaN after the sweep stopped: ``(n,)`` or ``(k, n)``.
    smoothed_losses: the smoothed losses, same shape.
    num_steps_run: steps computed: an int, or ``(k,)``.
    diverged: whether the sweep stopped on divergence or a non-finite loss: a bool, or ``(k,)``.
    run_suggestions: what the sweep's own compiled program computed: each run's ``{method: (lr, index)}``
      on the recorded (lagged) curve, or :func:`~lrtools.finder._suggest.sweep_suggestions`' ``{"centred":
      (curves, suggestions), "recorded": suggestions}`` (arrays with a leading ``(k,)`` with repeats);
      ``None`` when the result was built otherwise (then computed here, in one small compiled call).
    smoothing: the weight :math:`w` of the sweep's moving average; the lag-free curve the suggestions come
      from (:attr:`centred_losses`) averages windows of the same span.

  The suggestion, one definition everywhere (``suggest``, ``suggestion_spread``, ``summary``, the CLI and
  the plot): each repeat's rule on its own lag-free curve, then the **median over repeats** (in
  :math:`\log\eta`: the geometric mean of the two middle ones for an even count; repeats where the rule
  found no point are left out). With one repeat it is the rule on the curve.
  """
  lrs: np.ndarray
  losses: np.ndarray
  smoothed_losses: np.ndarray
  num_steps_run: int | np.ndarray
  diverged: bool | np.ndarray
  run_suggestions: dict | None = None
  smoothing: float = 0.05

  @classmethod
  def from_states(cls, lrs, losses, smoothed, steps, diverged, suggestions=None,
                  smoothing: float = 0.05) -> "RangeTestResult":
    steps, diverged = np.asarray(steps), np.asarray(diverged)
    if steps.ndim == 0:
      steps, diverged = int(steps), bool(diverged)
    if suggestions is not None:  # {method: (lr, index)}, or sweep_suggestions' {"centred": ..., "recorded": ...}
      suggestions = jax.tree_util.tree_map(np.asarray, suggestions)
    return cls(np.asarray(lrs), np.asarray(losses), np.asarray(smoothed), steps, diverged, suggestions,
               float(smoothing))

  @property
  def stop_reason(self) -> str | tuple[str, ...]:
    """Why each sweep stopped: ``"completed"`` (every step ran), ``"diverged"`` (the smoothed loss passed
    the threshold) or ``"non-finite loss at step i"`` (``i`` counted from 0); a tuple with repeats.

    Example:
      >>> import numpy as np, lrtools as lrt
      >>> lrs = np.logspace(-3, 0, 4)
      >>> lrt.RangeTestResult(lrs, np.array([1.0, 0.5, np.nan, np.nan]), np.ones(4), 3, True).stop_reason
      'non-finite loss at step 2'
    """
    losses = np.atleast_2d(self.losses)
    runs, diverged = np.atleast_1d(self.num_steps_run), np.atleast_1d(self.diverged)

    def reason(row, run, stopped):
      if not stopped:
        return "completed"
      return "diverged" if run < 1 or np.isfinite(row[run - 1]) else f"non-finite loss at step {run - 1}"

    reasons = tuple(reason(row, int(run), bool(stopped)) for row, run, stopped in zip(losses, runs, diverged))
    return reasons[0] if self.losses.ndim == 1 else reasons

  @property
  def num_repeats(self) -> int:
    return 1 if self.losses.ndim == 1 else self.losses.shape[0]

  def _per_repeat(self, curve: str = "centred") -> tuple[np.ndarray, dict]:
    """``(curves (k, n), {method: (lrs (k,), indices (k,))})`` for ``curve`` (one compiled call)."""
    losses, runs = np.atleast_2d(self.losses), np.atleast_1d(self.num_steps_run)
    computed = self.run_suggestions
    nested = computed is not None and "centred" in computed  # from sweep_suggestions
    if curve == "recorded":
      curves = np.atleast_2d(self.smoothed_losses)
      if computed is not None:
        found = computed["recorded"] if nested else computed
      else:
        found = suggest_all_batched(jnp.asarray(self.lrs), jnp.asarray(curves), jnp.asarray(runs))
    elif nested and np.allclose(computed["smoothing"], self.smoothing, rtol=1e-6, atol=0):  # made for this w
      curves, found = computed["centred"]
    else:
      raw = jnp.asarray(losses)
      curves, found = smooth_and_suggest_batched(jnp.asarray(self.lrs), raw, jnp.asarray(runs),
                                                 jnp.asarray(self.smoothing, raw.dtype))
    found = {m: (np.atleast_1d(np.asarray(lr, np.float64)), np.atleast_1d(np.asarray(i)))
             for m, (lr, i) in found.items()}
    return np.atleast_2d(np.asarray(curves)), found

  @property
  def centred_losses(self) -> np.ndarray:
    """The lag-free smoothed losses the suggestions come from (:func:`~lrtools.finder._suggest.centred_smoothing`
    of the raw losses, a centred window of the moving average's span), same shape as ``losses``."""
    curves = self._per_repeat()[0]
    return curves[0] if self.losses.ndim == 1 else curves

  @property
  def median_losses(self) -> np.ndarray:
    """Median lag-free curve (:attr:`centred_losses`) over repeats (NaN where fewer than half of the repeats
    were still running)."""
    curves = np.atleast_2d(self.centred_losses)
    running = np.isfinite(curves).sum(axis=0)
    median = _quiet(np.nanmedian, curves, axis=0)
    return np.where((running > 0) & (running * 2 >= curves.shape[0]), median, np.nan)

  @property
  def band(self) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest lag-free curve over repeats at each step (over the repeats still running)."""
    curves = np.atleast_2d(self.centred_losses)
    return _quiet(np.nanmin, curves, axis=0), _quiet(np.nanmax, curves, axis=0)

  def suggestions(self, curve: str = "centred") -> dict:
    r"""``{method: (lr, index)}`` for every rule, by the class's one definition (each repeat's rule, the
    median over repeats). ``index`` is the point the rule picked (the minimum itself for ``"minimum"``,
    whose lr is a tenth of it); with repeats, the swept point nearest that in :math:`\log\eta`. NaN and −1
    where no repeat has a valid point. ``curve="recorded"`` applies the rules to the sweep's recorded
    moving average instead (torch-lr-finder's form, fastai's with ``debias=True``: lagged, for comparison)."""
    check_one_of("RangeTestResult.suggestions", "curve", curve, CURVES)
    found = self._per_repeat(curve)[1]
    out = {}
    for method, (lrs, indices) in found.items():
      if lrs.size == 1:
        out[method] = (float(lrs[0]), int(indices[0]))
        continue
      lr = _log_median(lrs)
      if np.isnan(lr):
        out[method] = (lr, -1)
        continue
      target = lr * 10 if method == "minimum" else lr
      out[method] = (lr, int(np.argmin(np.abs(np.log(self.lrs) - np.log(target)))))
    return {m: out[m] for m in METHODS}

  def suggest(self, method: str = "valley", curve: str = "centred") -> float:
    r"""The suggested learning rate: rule ``method`` on each repeat's lag-free curve, median over repeats.

    ``"steepest"``: most negative slope against :math:`\log\eta`, skipping the first 10 and last 5 points
    (torch-lr-finder's window; torch-lr-finder takes the slope against the step index, the same point for an
    exponential sweep only); ``"minimum"``: the LR of the minimum divided by 10; ``"valley"``: fastai's longest
    decreasing stretch, about its middle. ``minimum`` and ``valley`` skip the first ``n // 10`` and last 5
    points as fastai does. NaN when the sweep stopped too early for the rule's window. The curve is
    :attr:`centred_losses` (no delay); ``curve="recorded"`` gives the lagged moving average's answer.
    See :mod:`lrtools.finder._suggest` for the exact rules.
    """
    check_one_of("RangeTestResult.suggest", "method", method, METHODS)
    check_one_of("RangeTestResult.suggest", "curve", curve, CURVES)
    return self.suggestions(curve)[method][0]

  def suggestion_spread(self, method: str = "valley", curve: str = "centred") -> dict:
    r"""Each repeat's own suggestion (``each``), their ``median`` (= :meth:`suggest`), ``min``, ``max``
    and ``decades`` = :math:`\log_{10}(\max/\min)`."""
    check_one_of("RangeTestResult.suggestion_spread", "method", method, METHODS)
    check_one_of("RangeTestResult.suggestion_spread", "curve", curve, CURVES)
    each = self._per_repeat(curve)[1][method][0]
    low, high = float(_quiet(np.nanmin, each)), float(_quiet(np.nanmax, each))
    return {"each": each, "median": _log_median(each), "min": low, "max": high,
            "decades": float(np.log10(high / low)) if low > 0 else float("nan")}

  def agreement(self) -> dict:
    """How far apart the suggestions are, in decades of learning rate: ``rules`` (the three rules'
    suggestions), ``repeats`` (the widest spread of one rule over repeats, 0 with one), ``decades`` (the
    larger), and ``warning``: a sentence when that exceeds about one decade, else ``None``."""
    found = {m: lr for m, (lr, _) in self.suggestions().items() if np.isfinite(lr) and lr > 0}
    low, high = (min(found, key=found.get), max(found, key=found.get)) if found else (None, None)
    rules = float(np.log10(found[high] / found[low])) if len(found) > 1 else 0.0
    spreads = [self.suggestion_spread(m)["decades"] for m in METHODS] if self.num_repeats > 1 else [0.0]
    repeats = float(_quiet(np.nanmax, np.array(spreads))) if np.isfinite(spreads).any() else 0.0
    decades = max(rules, repeats)
    warning = None
    if decades > AGREEMENT_DECADES:
      if rules >= repeats:
        where = f"the rules disagree by {rules:.1f} decades ({low} {found[low]:.3g} .. {high} {found[high]:.3g})"
      else:
        where = f"the repeats disagree by {repeats:.1f} decades"
      warning = f"{where}: the curve has no clear steep region: widen the range or use more steps / repeats"
    return {"rules": rules, "repeats": repeats, "decades": decades, "warning": warning}

  def stop_line(self) -> str:
    """Steps run and why the sweep stopped, e.g. ``"95/100 steps (diverged)"``; per reason with repeats."""
    n = self.lrs.shape[0]
    if self.num_repeats == 1:
      return f"{int(self.num_steps_run)}/{n} steps ({self.stop_reason})"
    runs = np.atleast_1d(self.num_steps_run)
    reasons = list(self.stop_reason)
    counted = "; ".join(f"{reasons.count(r)} {r}" for r in dict.fromkeys(reasons))
    steps = f"{runs.min()}" if runs.min() == runs.max() else f"{runs.min()}..{runs.max()}"
    return f"{steps}/{n} steps ({counted})"

  def summary(self) -> str:
    """The result in a few lines: steps run and stop reason, each suggestion (with its spread over
    repeats), the agreement in decades and its warning.

    Example:
      >>> import numpy as np, lrtools as lrt
      >>> lrs = np.logspace(-4, 0, 40); loss = 2 - np.tanh(3 * (np.log10(lrs) + 2))
      >>> print(lrt.RangeTestResult(lrs, loss, loss, 40, False).summary())
      range test: 40/40 steps (completed)
        steepest  0.0113
        minimum   0.0307
        valley    0.0113
        agreement: the suggestions span 0.4 decades
    """
    lines = [f"range test: {self.stop_line()}"]
    found = self.suggestions()
    for method in METHODS:
      line = f"  {method:<9} {found[method][0]:.3g}"
      if self.num_repeats > 1:
        spread = self.suggestion_spread(method)
        line += f"   (over {self.num_repeats} repeats: {spread['min']:.3g} .. {spread['max']:.3g})"
      lines.append(line)
    agreement = self.agreement()
    lines.append(f"  agreement: the suggestions span {agreement['decades']:.1f} decades")
    if agreement["warning"]:
      lines.append(f"  warning: {agreement['warning']}")
    return "\n".join(lines)

  def __str__(self) -> str:
    return self.summary()

  def plot(self, ax=None, suggestions=METHODS):
    """Log-x plot of raw and smoothed losses with the suggestions marked; see ``plotting.plot_range_test``."""
    from lrtools.plotting import plot_range_test
    return plot_range_test(self, ax=ax, suggestions=suggestions)
