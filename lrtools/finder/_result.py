"""RangeTestResult: the recorded curves of a range test, their suggestions, and the band over repeats."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from lrtools._typing import check_one_of
from lrtools.finder._suggest import METHODS, suggest_all, suggest_all_batched


def _quiet(reduce, values, **kwargs):
  """A NaN-ignoring reduction that gives NaN, without a warning, where every value is NaN."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    return reduce(values, **kwargs)


class RangeTestResult(NamedTuple):
  """What :func:`lr_range_test` recorded (NumPy arrays; one row per repeat when ``num_repeats > 1``).

  Attributes:
    lrs: the learning rate of each step, ``(n,)``.
    losses: the recorded loss of each step, NaN after the sweep stopped: ``(n,)`` or ``(k, n)``.
    smoothed_losses: the smoothed losses, same shape.
    num_steps_run: steps computed: an int, or ``(k,)``.
    diverged: whether the sweep stopped on divergence or a non-finite loss: a bool, or ``(k,)``.
    run_suggestions: each run's ``{method: (lr, index)}`` (arrays of ``(k,)`` with repeats), computed by
      the sweep's own compiled program; ``None`` when the result was built otherwise.
  """
  lrs: np.ndarray
  losses: np.ndarray
  smoothed_losses: np.ndarray
  num_steps_run: int | np.ndarray
  diverged: bool | np.ndarray
  run_suggestions: dict | None = None

  @classmethod
  def from_states(cls, lrs, losses, smoothed, steps, diverged, suggestions=None) -> "RangeTestResult":
    steps, diverged = np.asarray(steps), np.asarray(diverged)
    if steps.ndim == 0:
      steps, diverged = int(steps), bool(diverged)
    if suggestions is not None:
      suggestions = {m: (np.asarray(lr), np.asarray(i)) for m, (lr, i) in suggestions.items()}
    return cls(np.asarray(lrs), np.asarray(losses), np.asarray(smoothed), steps, diverged, suggestions)

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

  @property
  def median_losses(self) -> np.ndarray:
    """Median smoothed curve over repeats (NaN where fewer than half of the repeats were still running)."""
    curves = np.atleast_2d(self.smoothed_losses)
    running = np.isfinite(curves).sum(axis=0)
    median = _quiet(np.nanmedian, curves, axis=0)
    return np.where((running > 0) & (running * 2 >= curves.shape[0]), median, np.nan)

  @property
  def band(self) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest smoothed loss over repeats at each step (over the repeats still running)."""
    curves = np.atleast_2d(self.smoothed_losses)
    return _quiet(np.nanmin, curves, axis=0), _quiet(np.nanmax, curves, axis=0)

  def _curve(self) -> tuple[np.ndarray, int]:
    if self.num_repeats == 1:
      return self.smoothed_losses, int(self.num_steps_run)
    median = self.median_losses
    return median, int(np.isfinite(median).sum())

  def suggestions(self) -> dict:
    """``{method: (lr, index)}`` for every rule, from the (median) smoothed curve; index −1 and lr NaN
    where the rule has no valid point. One compiled call computes all three."""
    if self.num_repeats == 1 and self.run_suggestions is not None:
      found = self.run_suggestions
    else:
      curve, run = self._curve()
      found = suggest_all(jnp.asarray(self.lrs), jnp.asarray(curve), run)
    return {m: (float(lr), int(i)) for m, (lr, i) in found.items()}

  def suggest(self, method: str = "valley") -> float:
    r"""The suggested learning rate from the smoothed curve (the median curve over repeats).

    ``"steepest"``: most negative slope against :math:`\log\eta`, skipping the first 10 and last 5 points
    (torch-lr-finder's window; torch-lr-finder takes the slope against the step index, the same point for an
    exponential sweep only); ``"minimum"``: the LR of the minimum divided by 10; ``"valley"``: fastai's longest
    decreasing stretch, about its middle. ``minimum`` and ``valley`` skip the first ``n // 10`` and last 5
    points as fastai does. NaN when the sweep stopped too early for the rule's window.
    See :mod:`lrtools.finder._suggest` for the exact rules.
    """
    check_one_of("RangeTestResult.suggest", "method", method, METHODS)
    return self.suggestions()[method][0]

  def suggestion_spread(self, method: str = "valley") -> dict:
    """Each repeat's own suggestion, with their median, min and max (the spread across seeds)."""
    check_one_of("RangeTestResult.suggestion_spread", "method", method, METHODS)
    if self.run_suggestions is not None:
      each = np.atleast_1d(self.run_suggestions[method][0])
    else:
      curves = np.atleast_2d(self.smoothed_losses)
      runs = np.atleast_1d(self.num_steps_run)
      each = np.asarray(suggest_all_batched(jnp.asarray(self.lrs), jnp.asarray(curves), jnp.asarray(runs))[method][0])
    return {"each": each, "median": float(_quiet(np.nanmedian, each)), "min": float(_quiet(np.nanmin, each)),
            "max": float(_quiet(np.nanmax, each))}

  def plot(self, ax=None, suggestions=METHODS):
    """Log-x plot of raw and smoothed losses with the suggestions marked; see ``plotting.plot_range_test``."""
    from lrtools.plotting import plot_range_test
    return plot_range_test(self, ax=ax, suggestions=suggestions)
