"""The result of a search: every trial's configuration and score, the best, boundary warnings, a table, a plot.

Non-finite scores (a run that diverged to NaN or inf) are kept as they are in ``scores`` and ranked *worst*
whatever ``minimize`` says: they are never the best, sort last in :meth:`SearchResult.table` (marked
``non-finite``) and are counted in ``warnings``.

Boundary warnings (CS231n: "prefer one stage ... and beware of best values on the border"): for every range
parameter, the best trial's value is placed in its range, on a log scale for ``log_uniform``,

.. math:: f = \\frac{\\log x^* - \\log \\text{low}}{\\log \\text{high} - \\log \\text{low}}
          \\quad\\text{(or } \\tfrac{x^* - \\text{low}}{\\text{high} - \\text{low}}\\text{)},

and a warning fires when :math:`f < 0.1` or :math:`f > 0.9` (the outer 10% at either end): the optimum may
lie beyond the range. The warning names the parameter and suggests a wider range (one more decade for a
log parameter, half the width more for a linear one, on the side of the best value). It stays quiet when the
part of the range between the best value and that end was seen to be worse: a trial there diverged
(non-finite score), or at least 3 trials lie there and every one scored worse than the median (the loss
already blows up past the best learning rate, so a wider range would not help; one or two worse trials may
owe it to the other parameters). ``choice`` parameters are categorical and never warn.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from lrtools.search._space import Space

EDGE_FRACTION = 0.1  # the outer part of a range where a best value triggers a boundary warning
MIN_BEYOND = 3  # trials between the best value and the end, all worse than the median, that silence it


def _fmt(x: Any) -> str:
  return f"{x:d}" if isinstance(x, (int, np.integer)) else f"{float(x):.4g}"


def ranking(scores: np.ndarray, minimize: bool) -> np.ndarray:
  """Trial indices best first; non-finite scores last (in trial order); ties keep trial order."""
  finite = np.isfinite(scores)
  key = np.where(finite, scores if minimize else -scores, np.inf)
  return np.lexsort((np.arange(len(scores)), key, ~finite))


def _wider(name: str, param, best: float, fraction: float) -> str | None:
  """The boundary warning for one parameter, or ``None`` when its best value lies inside."""
  if param.kind == "choice" or EDGE_FRACTION <= fraction <= 1 - EDGE_FRACTION:
    return None
  top = fraction > 1 - EDGE_FRACTION
  low, high = param.low, param.high
  if param.kind == "log_uniform":
    low, high = (low, high * 10.0) if top else (low / 10.0, high)
  elif param.kind == "uniform":
    half = (high - low) / 2
    low, high = (low, high + half) if top else (low - half, high)
  else:
    half = max(1, (high - low + 1) // 2)
    low, high = (low, high + half) if top else (low - half, high)
  side, where = ("top", "upper") if top else ("bottom", "lower")
  scale = " (log scale)" if param.kind == "log_uniform" else ""
  return (f"best {name}={_fmt(best)} lies in the {side} {EDGE_FRACTION:.0%} of its range "
          f"[{_fmt(param.low)}, {_fmt(param.high)}]{scale}: the optimum may lie beyond the {where} end; "
          f"search a wider range, e.g. {param.kind}({_fmt(low)}, {_fmt(high)})")


def _position(param, x) -> np.ndarray:
  """Where ``x`` lies in the parameter's range, 0 at ``low`` and 1 at ``high`` (log scale for log_uniform)."""
  x = np.asarray(x, np.float64)
  if param.kind == "log_uniform":
    return (np.log(x) - np.log(param.low)) / (np.log(param.high) - np.log(param.low))
  return (x - param.low) / (param.high - param.low)


def boundary_warnings(space: Space, best_config: dict, configs: dict | None = None, scores=None,
                      minimize: bool = True) -> list[str]:
  """One warning per range parameter whose best value lies in the outer :data:`EDGE_FRACTION` of its range,
  unless the trials between it and that end (``configs``/``scores``) were seen to be worse (module docstring)."""
  out = []
  for name, param in space.items():
    if param.kind == "choice" or name not in best_config:
      continue
    f = float(_position(param, best_config[name]))
    if configs is not None and name in configs and not EDGE_FRACTION <= f <= 1 - EDGE_FRACTION:
      where = _position(param, configs[name])
      beyond = where > f if f > 0.5 else where < f
      finite = np.isfinite(scores)
      median = np.median(scores[finite]) if finite.any() else np.nan
      worse = ~finite | ((scores > median) if minimize else (scores < median))
      if np.any(beyond & ~finite) or (beyond.sum() >= MIN_BEYOND and np.all(worse[beyond])):
        continue
    message = _wider(name, param, best_config[name], f)
    if message:
      out.append(message)
  return out


@dataclasses.dataclass(frozen=True, eq=False)
class SearchResult:
  """Every trial of a search: configurations, scores, the best, warnings.

  Attributes:
    configs: name -> NumPy array of ``num_trials`` values (trial ``i`` is ``{k: v[i]}``).
    scores: NumPy array of ``num_trials`` scores, as the objective returned them (NaN/inf kept).
    minimize: lower scores are better.
    space: the space the trials were searched in (warnings are relative to it).
    warnings: boundary warnings and a count of non-finite scores (see the module docstring).
    stages: the results of earlier stages (:func:`coarse_to_fine`, :func:`successive_halving`), oldest first.
    study: the Optuna study (``optuna_search``), else ``None``.
  """
  configs: dict
  scores: np.ndarray
  minimize: bool
  space: dict
  warnings: list = dataclasses.field(default_factory=list)
  stages: tuple = ()
  study: Any = None

  @classmethod
  def build(cls, space: Space, configs: dict, scores, *, minimize: bool, stages: tuple = (),
            study: Any = None, extra_warnings: tuple = (), boundary_space: Space | None = None) -> SearchResult:
    """A result from device or host arrays: converts to NumPy and computes the warnings (boundary warnings
    relative to ``boundary_space``, default ``space``: a narrowed stage warns about the user's range)."""
    configs = {k: np.asarray(v) for k, v in configs.items()}
    scores = np.asarray(scores)
    order = ranking(scores, minimize)
    warnings = list(extra_warnings)
    bad = int(np.sum(~np.isfinite(scores)))
    if bad:
      warnings.append(f"{bad} of {len(scores)} trials gave a non-finite score (NaN or inf), ranked worst")
    if bad < len(scores):  # a best that diverged says nothing about the range
      best = {k: v[order[0]].item() for k, v in configs.items()}
      warnings += boundary_warnings(space if boundary_space is None else boundary_space, best, configs, scores,
                                    minimize)
    return cls(configs, scores, bool(minimize), dict(space), warnings, tuple(stages), study)

  @property
  def num_trials(self) -> int:
    return int(self.scores.shape[0])

  @property
  def best_index(self) -> int:
    """The index of the best trial (finite scores only; trial 0 when none is finite)."""
    return int(ranking(self.scores, self.minimize)[0])

  @property
  def best_config(self) -> dict:
    """The best trial's configuration as Python scalars."""
    i = self.best_index
    return {k: v[i].item() for k, v in self.configs.items()}

  @property
  def best_score(self) -> float:
    return float(self.scores[self.best_index])

  def table(self, top: int | None = None) -> str:
    """The trials as a text table, best first, non-finite scores last and marked; ``top`` rows at most."""
    if top is not None:
      from lrtools._typing import check_integer
      check_integer("SearchResult.table", "top", top, 1)
    order = ranking(self.scores, self.minimize)[:top]
    names = list(self.configs)
    header = ["rank", "trial", "score"] + names
    rows = []
    for rank, i in enumerate(order, 1):
      s = self.scores[i]
      score = _fmt(s) if np.isfinite(s) else f"{s} (non-finite)"
      rows.append([str(rank), str(i), score] + [_fmt(self.configs[k][i].item()) for k in names])
    widths = [max(len(r[j]) for r in [header] + rows) for j in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [header] + rows]
    hidden = self.num_trials - len(order)
    return "\n".join(lines + ([f"... {hidden} more"] if hidden else []))

  def __repr__(self) -> str:  # the arrays are long: a summary
    return (f"SearchResult(num_trials={self.num_trials}, best_score={self.best_score:.4g}, "
            f"best_config={self.best_config}, warnings={len(self.warnings)}, stages={len(self.stages)})")

  def plot(self, axes=None):
    """Score against each parameter (log-x for log parameters); see :func:`lrtools.plotting.plot_search`."""
    from lrtools.plotting._search import plot_search
    return plot_search(self, axes)
