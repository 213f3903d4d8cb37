"""Plot of a range test: loss against log learning rate, with the suggestions marked.

This module imports nothing from lrtools at load time (the checks import it only to fail), so that
``lrtools find-lr`` can run it in its plotting worker (``lrtools/cli/_plot_worker.py``, through
``runpy.run_path``), which imports matplotlib while the main process imports JAX and compiles.
"""

from __future__ import annotations

import numpy as np

_MARKERS = {"steepest": ("o", "tab:red"), "minimum": ("s", "tab:green"), "valley": ("D", "tab:purple")}
# What is read from a result (the find-lr worker sends these, as NumPy data, in a SimpleNamespace).
_FIELDS = ("lrs", "losses", "num_steps_run", "num_repeats", "suggestions", "centred_losses", "median_losses",
           "band", "stop_line", "agreement")


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


def _on_curve(lrs, curve, lr) -> float:
  """The curve's value at ``lr``, interpolated in :math:`\\log\\eta` between its finite points."""
  ok = np.isfinite(curve)
  return float(np.interp(np.log(lr), np.log(lrs[ok]), curve[ok])) if ok.any() else float("nan")


def title_line(result) -> str:
  """The plot's subtitle: steps run, why the sweep stopped, and how far apart the suggestions are."""
  agreement = result.agreement()
  line = f"{result.stop_line()}; suggestions within {agreement['decades']:.1f} decades"
  return line + (": no clear steep region" if agreement["warning"] else "")


def plot_range_test(result, ax=None, suggestions=("steepest", "minimum", "valley")):
  r"""Log-x plot of a :class:`~lrtools.finder.RangeTestResult`: raw and lag-free loss, suggestions marked.

  .. math:: \{(\eta_i, L_i)\},\ \{(\eta_i, \tilde L_i)\}

  The smoothed curve is the one the suggestions come from, the centred (lag-free) window of
  :func:`~lrtools.finder._suggest.centred_smoothing`, drawn at the learning rate its window is centred on.
  Each suggestion is marked on that curve at its own learning rate (``minimum``'s a tenth of the
  minimum's, with an arrow from the minimum). With repeats, the median curve is drawn with the band between
  the lowest and highest repeat. A dashed line marks where the sweep stopped; the title says how many steps
  ran, why it stopped and how far apart (in decades) the suggestions are.

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
    >>> ax.get_xscale(), len(ax.get_legend().get_texts()), ax.get_title()
    ('log', 6, '60/60 steps (completed); suggestions within 0.3 decades')

  References:
    Smith 2017, fig. 3 (accuracy/loss against the learning rate); fastai ``lr_find``.
  """
  _check(result, ax, suggestions)
  if ax is None:
    from lrtools.plotting._axes import get_axes
    ax = get_axes(ax)
  lrs = np.asarray(result.lrs)
  runs = np.atleast_1d(result.num_steps_run)
  raw_rows = np.atleast_2d(result.losses)
  if result.num_repeats == 1:
    run = int(runs[0])
    curve = np.asarray(result.centred_losses)
    ax.plot(lrs[:run], raw_rows[0][:run], color="tab:blue", alpha=0.3, lw=1, label="loss")
    ax.plot(lrs[:run], curve[:run], color="tab:blue", lw=2, label="smoothed loss (centred, no lag)")
  else:
    low, high = result.band
    curve = np.asarray(result.median_losses)
    for row, run in zip(raw_rows, runs):
      ax.plot(lrs[:run], row[:run], color="tab:blue", alpha=0.08, lw=0.8)
    ax.fill_between(lrs, low, high, color="tab:blue", alpha=0.2, label=f"band over {result.num_repeats} repeats")
    ax.plot(lrs, curve, color="tab:blue", lw=2, label="median smoothed loss (centred, no lag)")
  found = result.suggestions()
  for method in suggestions:
    lr, index = found[method]
    if index < 0 or not np.isfinite(lr):
      continue
    marker, color = _MARKERS[method]
    y = _on_curve(lrs, curve, lr)
    ax.plot([lr], [y], marker=marker, color=color, ls="none", ms=9, mec="black", mew=0.8, zorder=5,
            label=f"{method}: {lr:.2e}")
    if method == "minimum":  # the suggestion is a tenth of the minimum's LR: point from one to the other
      at_min = _on_curve(lrs, curve, lrs[index])
      ax.plot([lrs[index]], [at_min], marker=marker, color=color, mfc="none", ls="none", ms=9, zorder=5)
      ax.annotate("", xy=(lr, y), xytext=(lrs[index], at_min),
                  arrowprops={"arrowstyle": "->", "color": color, "lw": 1})
  last = int(runs.max()) - 1
  ax.axvline(lrs[last], color="black", ls="--", lw=1, label=f"stop: {result.stop_line()}")
  finite = curve[np.isfinite(curve)]
  raw = np.concatenate([row[:run] for row, run in zip(raw_rows, runs)])
  raw = raw[np.isfinite(raw)]
  if finite.size:  # keep the divergence from squashing the interesting part; show the raw dips
    low, high = min(np.min(finite), np.min(raw) if raw.size else np.inf), np.percentile(finite, 95)
    pad = 0.1 * (high - low + 1e-12)
    ax.set_ylim(low - pad, max(high, finite[0]) + pad)
  ax.set_xscale("log")
  ax.set_xlabel("learning rate")
  ax.set_ylabel("loss")
  ax.set_title(title_line(result), fontsize=9)
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=8)
  return ax
