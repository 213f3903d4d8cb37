"""From the range test to a decision: the range test proposes learning rates, one vectorized search confirms.

The rules of a range test (steepest slope, minimum / 10, valley) often disagree by a decade or more, and
none of them is the rate that trains best. :func:`refine_lr` trains short runs at every suggestion and on a
log-grid spanning them (plus ``span_decades / 2`` on each side), all in one vectorized call, and returns the
best rate with the evidence: every trial, and which suggestion came closest to the winner.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import numpy as np

from lrtools._typing import check_callable, check_flag, check_integer, check_positive, fail, float_dtype
from lrtools.search._random import evaluate_configs
from lrtools.search._result import SearchResult
from lrtools.search._space import LogUniform, check_key

CALL = "refine_lr"
METHODS = ("steepest", "minimum", "valley")


class LrRefinement(NamedTuple):
  """What :func:`refine_lr` found.

  Attributes:
    learning_rate: the best learning rate tried.
    score: its score.
    search: every trial (``configs["learning_rate"]``: the suggestions first, in ``suggestions``' order,
      then the grid), a :class:`SearchResult` whose ``space`` is the grid's range (a best rate in its outer
      10%, in log space, raises a boundary warning).
    suggestions: ``{method: learning rate}`` of the range test's finite suggestions.
    closest: the method whose suggestion lies closest (in :math:`\\log\\eta`) to the best rate.
    decades_from_closest: :math:`|\\log_{10}(\\eta^*/\\eta_{\\text{closest}})|`.
  """
  learning_rate: float
  score: float
  search: SearchResult
  suggestions: dict
  closest: str
  decades_from_closest: float


def refine_lr(range_test_result, objective: Callable, *, key: jax.Array, num_points: int = 9,
              span_decades: float = 1.0, methods: Sequence[str] = METHODS, minimize: bool = True,
              chunk_size: int | None = None, vmap_size: int | None = None) -> LrRefinement:
  r"""Trains short runs at a range test's suggestions and on a log-grid around them, in one vectorized
  call, and returns the best learning rate with the evidence.

  With :math:`\eta_{\min}, \eta_{\max}` the smallest and largest finite suggestion and :math:`d` =
  ``span_decades``, the grid holds ``num_points`` rates evenly spaced in :math:`\log\eta` on

  .. math:: [\eta_{\min} 10^{-d/2},\ \eta_{\max} 10^{d/2}],

  and the trials are the suggestions followed by the grid, each ``objective({"learning_rate": lr}, key_i)``
  with ``key_i = fold_in(key, i)``.

  Args:
    range_test_result: a :class:`~lrtools.finder.RangeTestResult` (its ``suggestions()`` are read).
    objective: ``objective(config, key) -> scalar`` with ``config = {"learning_rate": lr}``, e.g. a short
      training run with ``lrt.momentum(config["learning_rate"])`` returning the validation loss.
    key: the PRNG key of the trials.
    num_points: grid points (at least 2).
    span_decades: decades added around the suggestions, half on each side (positive).
    methods: which suggestions to try, among ``"steepest"``, ``"minimum"``, ``"valley"``.
    minimize: lower scores are better. Non-finite scores are ranked worst.
    chunk_size: trials per compiled call (:func:`evaluate_configs`).
    vmap_size: trials vmapped together (:func:`evaluate_configs`).

  Returns:
    An :class:`LrRefinement`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from types import SimpleNamespace
    >>> from lrtools.search import refine_lr
    >>> range_test = SimpleNamespace(suggestions=lambda: {"steepest": (3e-3, 10), "minimum": (3e-2, 40),
    ...                                                  "valley": (1e-2, 30)})  # a stand-in result
    >>> objective = lambda c, k: (jnp.log10(c["learning_rate"]) + 1.8) ** 2   # best at 10**-1.8
    >>> out = refine_lr(range_test, objective, key=jax.random.key(0))
    >>> out.closest, round(out.learning_rate, 4), len(out.search.scores)
    ('valley', 0.0169, 12)

  References:
    Smith 2017, "Cyclical Learning Rates for Training Neural Networks" (the range test); Bergstra & Bengio
    2012 (search).
  """
  if not callable(getattr(range_test_result, "suggestions", None)):
    fail(CALL, "range_test_result", range_test_result, "must be a RangeTestResult (with suggestions())")
  check_callable(CALL, "objective", objective)
  check_key(CALL, key)
  check_integer(CALL, "num_points", num_points, 2)
  check_positive(CALL, "span_decades", span_decades)
  if isinstance(methods, str) or not methods or any(m not in METHODS for m in methods):
    fail(CALL, "methods", methods, f"must be a non-empty sequence of names among {', '.join(map(repr, METHODS))}")
  check_flag(CALL, "minimize", minimize)
  found = range_test_result.suggestions()
  suggestions = {m: float(found[m][0]) for m in methods if np.isfinite(found[m][0]) and found[m][0] > 0}
  if not suggestions:
    fail(CALL, "range_test_result", range_test_result, "has no finite suggestion for methods "
         f"{tuple(methods)} (the sweep stopped too early?)")
  half = float(span_decades) / 2
  low = min(suggestions.values()) * 10.0 ** -half
  high = max(suggestions.values()) * 10.0 ** half
  grid = np.geomspace(low, high, int(num_points))
  lrs = np.concatenate([np.asarray(list(suggestions.values())), grid]).astype(float_dtype())
  scores = evaluate_configs(objective, {"learning_rate": lrs}, key, chunk_size=chunk_size, vmap_size=vmap_size,
                            call=CALL)
  search = SearchResult.build({"learning_rate": LogUniform(float(low), float(high))}, {"learning_rate": lrs},
                              scores, minimize=minimize)
  best = search.best_config["learning_rate"]
  distance = {m: abs(np.log10(best) - np.log10(v)) for m, v in suggestions.items()}
  closest = min(distance, key=distance.get)
  return LrRefinement(float(best), search.best_score, search, suggestions, closest, float(distance[closest]))
