"""Plot of a search: the score against each parameter, one panel per parameter."""

from __future__ import annotations

import numpy as np


def _fail(name: str, value, requirement: str) -> None:
  from lrtools._typing import fail
  fail("plot_search", name, value, requirement)


def plot_search(result, axes=None):
  r"""Score against each parameter of a :class:`~lrtools.search.SearchResult`, one panel per parameter.

  .. math:: \{(c^{(i)}_j, s_i)\}_{i=1}^{N} \text{ for each parameter } j

  The x-axis is logarithmic for ``log_uniform`` parameters. The best trial is a red star; earlier stages
  (coarse-to-fine, successive halving) are drawn lighter, behind; non-finite scores are drawn as grey
  crosses along the top edge (the worst place), with their count (every stage) in the legend. Dotted lines
  mark the last stage's range. The y-axis is
  logarithmic when every finite score is positive and they span more than two decades.

  Args:
    result: a search result.
    axes: a sequence of matplotlib Axes, one per parameter; a new figure's when ``None``.

  Returns:
    The matplotlib Figure.

  Example:
    >>> import jax, matplotlib
    >>> matplotlib.use("Agg")
    >>> from lrtools.plotting import plot_search
    >>> from lrtools.search import log_uniform, random_search
    >>> res = random_search(lambda c, k: c["lr"] ** 2, {"lr": log_uniform(1e-3, 1.0)}, 8, key=jax.random.key(0))
    >>> fig = plot_search(res)
    >>> [ax.get_xscale() for ax in fig.axes]
    ['log']

  References:
    Bergstra & Bengio 2012, "Random Search for Hyper-Parameter Optimization" (score against each parameter).
  """
  if not all(hasattr(result, f) for f in ("configs", "scores", "space", "stages", "best_index")):
    _fail("result", result, "must be a SearchResult")
  names = list(result.configs)
  if axes is None:
    try:
      import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - exercised only without the extra
      raise ImportError('plotting needs matplotlib: pip install "lrtools[plot]"') from e
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names) + 0.6, 3.4), sharey=True,
                             layout="constrained", squeeze=False)
    axes = list(axes[0])
  else:
    axes = list(np.atleast_1d(axes))
    if len(axes) != len(names) or not all(hasattr(ax, "scatter") for ax in axes):
      _fail("axes", axes, f"must be {len(names)} matplotlib Axes (one per parameter)")
    fig = axes[0].figure

  runs = list(result.stages) + [result]
  finite = np.concatenate([np.asarray(r.scores, float)[np.isfinite(r.scores)] for r in runs])
  log_y = finite.size > 0 and np.all(finite > 0) and finite.max() / finite.min() > 100
  top = (finite.max() if finite.size else 1.0)
  best = result.best_index
  bad = sum(int(np.sum(~np.isfinite(r.scores))) for r in runs)
  for ax, name in zip(axes, names):
    param = result.space.get(name)
    labelled = False
    for k, run in enumerate(runs):
      x, s = np.asarray(run.configs[name], float), np.asarray(run.scores, float)
      ok = np.isfinite(s)
      last = run is result
      label = "trials" if last else f"stage {k}"
      ax.scatter(x[ok], s[ok], s=18 if last else 12, alpha=0.85 if last else 0.35,
                 color="tab:blue" if last else "tab:gray", label=label, zorder=3 if last else 2)
      if (~ok).any():  # one legend entry for every stage's non-finite trials
        ax.scatter(x[~ok], np.full((~ok).sum(), top), marker="x", color="0.5", zorder=2,
                   label=None if labelled else f"non-finite ({bad})")
        labelled = True
    if np.isfinite(result.scores[best]):
      ax.scatter([float(result.configs[name][best])], [float(result.scores[best])], marker="*", s=160,
                 color="tab:red", edgecolor="k", linewidth=0.5, zorder=4, label="best")
    if param is not None and param.kind == "log_uniform":
      ax.set_xscale("log")
    if param is not None and param.kind != "choice":
      for edge in (param.low, param.high):
        ax.axvline(edge, color="0.7", linestyle=":", linewidth=1)
    if log_y:
      ax.set_yscale("log")
    ax.set_xlabel(name)
    ax.grid(True, which="major", alpha=0.3)
  axes[0].set_ylabel("score (lower is better)" if result.minimize else "score (higher is better)")
  axes[0].legend(fontsize="small", loc="best")
  earlier = sum(r.num_trials for r in result.stages)
  stages = len(result.stages)
  more = f" (+ {earlier} in {stages} earlier stage{'s' if stages > 1 else ''})" if stages else ""
  fig.suptitle(f"{result.num_trials} trials{more}, best score {result.best_score:.4g}"
               + (f" ({len(result.warnings)} warnings)" if result.warnings else ""), fontsize="medium")
  return fig
