"""Plot of a range test: loss against log learning rate, with the suggestions marked.

This module imports nothing from lrtools at load time (the checks import it only to fail), so that
``lrtools find-lr`` can run it in its plotting worker (``lrtools/cli/_plot_worker.py``, through
``runpy.run_path``), which imports matplotlib while the main process imports JAX and compiles.
"""

from __future__ import annotations

import numpy as np

_MARKERS = {"steepest": ("o", "tab:red"), "minimum": ("s", "tab:green"), "valley": ("D", "tab:purple")}
# What is read from a result (the find-lr worker sends these, as NumPy data, in a SimpleNamespace).
_FIELDS = ("lrs", "losses", "smoothed_losses", "num_steps_run", "num_repeats", "suggestions")


def _fail(name: str, value, requirement: str) -> None:
  from lrtools._typing import fail  # imported on failure only: the worker must not import lrtools (JAX)
  fail("plot_range_test", name, value, requirement)


def _check(result, ax, suggestions) -> None:
  if not all(hasattr(result, field) for field in _FIELDS):
    _fail("result", result, "must be a RangeTestResult")
  if ax is not None and not hasattr(ax, "plot"):
    _fail("ax", ax, "must be a matplotlib Axes or None")
  names = tuple(suggestions) if isinstance(suggestions, (tuple, list)) else None
  if names is None or not all(isinstance(m, str) and m in _MARKERS for m in names):
    _fail("suggestions", suggestions, f"must be a tuple of names among {', '.join(map(repr, _MARKERS))}")


def plot_range_test(result, ax=None, suggestions=("steepest", "minimum", "valley")):
  r"""Log-x plot of a :class:`~lrtools.finder.RangeTestResult`: raw and smoothed loss, suggestions marked.

  .. math:: \{(\eta_i, L_i)\},\ \{(\eta_i, \bar L_i)\}

  With repeats, the median smoothed curve is drawn with the band between the lowest and highest repeat.

  Args:
    result: a range-test result.
    ax: a matplotlib Axes; a new figure's when ``None``.
    suggestions: a tuple of the suggestion rules to mark (each with its learning rate in the legend).

  Returns:
    The Axes.

  Example:
    >>> import numpy as np, lrtools as lrt
    >>> lrs = np.logspace(-5, 0, 60); loss = 2 - np.tanh(2 * (np.log10(lrs) + 3)) + np.exp(3 * np.log10(lrs) + 2)
    >>> res = lrt.RangeTestResult(lrs, loss, loss, 60, False)
    >>> ax = lrt.plotting.plot_range_test(res)
    >>> ax.get_xscale(), len(ax.get_legend().get_texts())
    ('log', 5)

  References:
    Smith 2017, fig. 3 (accuracy/loss against the learning rate); fastai ``lr_find``.
  """
  _check(result, ax, suggestions)
  if ax is None:
    from lrtools.plotting._axes import get_axes
    ax = get_axes(ax)
  lrs = result.lrs
  if result.num_repeats == 1:
    run = int(result.num_steps_run)
    ax.plot(lrs[:run], result.losses[:run], color="tab:blue", alpha=0.3, lw=1, label="loss")
    curve = result.smoothed_losses
    ax.plot(lrs[:run], curve[:run], color="tab:blue", lw=2, label="smoothed loss")
  else:
    low, high = result.band
    curve = result.median_losses
    ax.fill_between(lrs, low, high, color="tab:blue", alpha=0.2, label=f"band over {result.num_repeats} repeats")
    ax.plot(lrs, curve, color="tab:blue", lw=2, label="median smoothed loss")
  found = result.suggestions()
  for method in suggestions:
    lr, index = found[method]
    if index < 0:
      continue
    marker, color = _MARKERS[method]
    ax.plot([lrs[index]], [curve[index]], marker=marker, color=color, ls="none", ms=8,
            label=f"{method}: {lr:.2e}")
    if method == "minimum":  # the suggestion is a tenth of the minimum's LR: show where it lands
      ax.axvline(lr, color=color, ls=":", lw=1)
  finite = curve[np.isfinite(curve)]
  raw = np.ravel(result.losses)
  raw = raw[np.isfinite(raw)]
  if finite.size:  # keep the divergence from squashing the interesting part; show the raw dips
    low, high = min(np.min(finite), np.min(raw) if raw.size else np.inf), np.percentile(finite, 95)
    pad = 0.1 * (high - low + 1e-12)
    ax.set_ylim(low - pad, max(high, finite[0]) + pad)
  ax.set_xscale("log")
  ax.set_xlabel("learning rate")
  ax.set_ylabel("loss")
  ax.grid(True, which="both", alpha=0.3)
  ax.legend()
  return ax
