"""Plot of a range test: loss against log learning rate, with the suggestions marked.

This module imports nothing from lrtools at load time, so that ``lrtools find-lr`` can run it in a plotting
worker process (``runpy.run_path``) that imports matplotlib while the main process imports JAX and compiles.
"""

from __future__ import annotations

import pickle
import sys
from types import SimpleNamespace

import numpy as np

_MARKERS = {"steepest": ("o", "tab:red"), "minimum": ("s", "tab:green"), "valley": ("D", "tab:purple")}


def plot_range_test(result, ax=None, suggestions=("steepest", "minimum", "valley")):
  r"""Log-x plot of a :class:`~lrtools.finder.RangeTestResult`: raw and smoothed loss, suggestions marked.

  .. math:: \{(\eta_i, L_i)\},\ \{(\eta_i, \bar L_i)\}

  With repeats, the median smoothed curve is drawn with the band between the lowest and highest repeat.

  Args:
    result: a range-test result.
    ax: a matplotlib Axes; a new figure's when ``None``.
    suggestions: the suggestion rules to mark (each with its learning rate in the legend).

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


def plot_payload(result) -> dict:
  """What :func:`plot_range_test` reads from a result, as plain NumPy data (picklable, no JAX needed)."""
  many = result.num_repeats > 1
  return {"lrs": result.lrs, "losses": result.losses, "smoothed_losses": result.smoothed_losses,
          "num_steps_run": result.num_steps_run, "num_repeats": result.num_repeats,
          "band": result.band if many else None, "median_losses": result.median_losses if many else None,
          "suggestions": result.suggestions()}


def serve() -> None:
  """Plotting worker: imports matplotlib now, then draws the pickled ``(payload, path, title)`` from stdin."""
  from matplotlib.figure import Figure
  fig = Figure(figsize=(7, 4), layout="constrained")
  ax = fig.add_subplot()
  request = sys.stdin.buffer.read()
  if not request:  # the main process gave up (an error, or no plot after all)
    return
  payload, path, title = pickle.loads(request)
  found = payload.pop("suggestions")
  plot_range_test(SimpleNamespace(**payload, suggestions=lambda: found), ax=ax)
  ax.set_title(title)
  fig.savefig(path, dpi=120)
