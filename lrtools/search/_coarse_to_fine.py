"""Coarse-to-fine search (CS231n): a wide random search on a small budget, then narrower ranges around the
best trials, trained longer, stage after stage.

A stage is a dict:

- ``num_trials`` (required): configurations sampled in the stage's space;
- ``top_k`` (default ``max(1, num_trials // 5)``): how many of the stage's best trials define the next
  stage's ranges;
- ``budget`` (optional, any hashable value, e.g. a number of steps or epochs): passed to the objective as a
  static third argument, ``objective(config, key, budget)``, so it may set a ``lax.scan`` length (each budget
  compiles once). Either every stage gives a budget or none does (then ``objective(config, key)``);
- ``narrow`` (default: every parameter): the names of the parameters this stage's top trials narrow; the
  others keep their range.

Narrowing, in log space for ``log_uniform`` parameters (:math:`u = \\log x`, else :math:`u = x`): with
:math:`[a, b]` the span of the top-k trials' values and :math:`[L, H]` the stage's range,

.. math:: [L', H'] = [a - m, b + m] \\cap [L, H],\\qquad m = \\tfrac14 (b - a) + \\tfrac1{20} (H - L),

so the next range covers the top trials with a margin and never leaves the current one (a best value on
the border of the *user's* range is what the boundary warning reports: widen the range and search again).
``int_uniform`` ranges round outward; a ``choice`` keeps the values among the top trials.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import numpy as np

from lrtools._typing import check_callable, check_flag, check_integer, fail
from lrtools.search._random import evaluate_configs
from lrtools.search._result import SearchResult, ranking
from lrtools.search._space import Choice, IntUniform, LogUniform, Space, Uniform, check_key, check_space, sample_space

_KEYS = ("num_trials", "top_k", "budget", "narrow")
CALL = "coarse_to_fine"


def _check_stages(space: Space, stages) -> list[dict]:
  if isinstance(stages, dict) or not isinstance(stages, Sequence) or len(stages) == 0:
    fail(CALL, "stages", stages, "must be a non-empty sequence of dicts (num_trials, top_k, budget, narrow)")
  out = []
  for i, stage in enumerate(stages):
    if not isinstance(stage, dict) or "num_trials" not in stage:
      fail(CALL, "stages", stages, f"must hold dicts with a num_trials, found stage {i}: {stage!r}")
    unknown = sorted(set(stage) - set(_KEYS))
    if unknown:
      fail(CALL, "stages", stages, f"has unknown keys {unknown} in stage {i} (allowed: {', '.join(_KEYS)})")
    check_integer(CALL, "stages", stage["num_trials"], 1)
    n = int(stage["num_trials"])
    top_k = stage.get("top_k", max(1, n // 5))
    check_integer(CALL, "stages", top_k, 1, n)
    narrow = tuple(stage.get("narrow", tuple(space)))
    if isinstance(stage.get("narrow"), str):
      fail(CALL, "stages", stages, f"needs narrow to be a tuple of names in stage {i}, got {stage['narrow']!r}")
    for name in narrow:
      if name not in space:
        fail(CALL, "stages", stages, f"names an unknown parameter {name!r} in stage {i} (known: "
             f"{', '.join(map(repr, space))})")
    budget = stage.get("budget")
    try:
      hash(budget)
    except TypeError:
      fail(CALL, "stages", stages, f"needs a hashable budget in stage {i}, got {budget!r}")
    out.append({"num_trials": n, "top_k": int(top_k), "budget": budget, "narrow": narrow,
                "has_budget": "budget" in stage})
  if len({s["has_budget"] for s in out}) > 1:
    fail(CALL, "stages", stages, "must give a budget in every stage or in none")
  return out


def narrow_param(param, values: np.ndarray):
  """The range around ``values`` (the top trials' values) inside ``param``'s, by the module's rule."""
  if param.kind == "choice":
    kept = tuple(v for v in param.values if np.any(values == v))
    return Choice(kept or param.values)
  log = param.kind == "log_uniform"
  u = np.log(values.astype(float)) if log else values.astype(float)
  low, high = (np.log(param.low), np.log(param.high)) if log else (param.low, param.high)
  a, b = float(np.min(u)), float(np.max(u))
  margin = 0.25 * (b - a) + 0.05 * (high - low)
  lo, hi = max(low, a - margin), min(high, b + margin)
  if log:
    return LogUniform(float(np.exp(lo)) if lo > low else param.low, float(np.exp(hi)) if hi < high else param.high)
  if param.kind == "uniform":
    return Uniform(float(lo), float(hi))
  lo_i, hi_i = int(np.floor(lo)), int(np.ceil(hi))
  if lo_i == hi_i:  # one integer left: keep a neighbour so that low < high
    lo_i, hi_i = (lo_i, lo_i + 1) if lo_i < param.high else (lo_i - 1, lo_i)
  return IntUniform(lo_i, hi_i)


def narrow_space(space: Space, configs: dict, scores: np.ndarray, top_k: int, minimize: bool,
                 names: tuple) -> Space:
  """``space`` with the parameters in ``names`` narrowed around the ``top_k`` best trials (finite scores
  only; when none is finite the space is kept)."""
  top = ranking(scores, minimize)[:top_k]
  top = top[np.isfinite(scores[top])]
  if top.size == 0:
    return dict(space)
  return {name: narrow_param(p, np.asarray(configs[name])[top]) if name in names else p
          for name, p in space.items()}


def coarse_to_fine(objective: Callable, space: Space, stages: Sequence[dict], *, key: jax.Array,
                   minimize: bool = True, chunk_size: int | None = None,
                   vmap_size: int | None = None) -> SearchResult:
  r"""Random search in stages, each narrowing the ranges around the previous stage's best trials.

  Stage :math:`s` samples ``num_trials`` configurations from its space :math:`S_s` (:math:`S_0` = ``space``)
  with ``fold_in(fold_in(key, s), 0)`` and trains them together (keys ``fold_in(fold_in(key, s), 1)``,
  one per trial) with the stage's ``budget``; :math:`S_{s+1}` is :math:`S_s` narrowed around its ``top_k``
  best trials (the module docstring gives the rule, log-aware):

  .. math:: S_{s+1} = \text{narrow}(S_s, \text{top}_k(\{c^{(i)}_s, f(c^{(i)}_s, \text{budget}_s)\}))

  Args:
    objective: ``objective(config, key) -> scalar``, or ``objective(config, key, budget)`` when the stages
      give budgets (``budget`` static: it may set a number of steps).
    space: the first stage's space (name -> parameter).
    stages: a sequence of dicts ``{"num_trials", "top_k", "budget", "narrow"}`` (see the module docstring).
    key: the PRNG key.
    minimize: lower scores are better.
    chunk_size: trials per compiled call (:func:`evaluate_configs`).
    vmap_size: trials vmapped together inside a chunk (:func:`evaluate_configs`).

  Returns:
    The last stage's :class:`SearchResult`, with ``stages`` the earlier stages' results (each with its own
    ``space``). Boundary warnings are relative to the user's ``space``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from lrtools.search import coarse_to_fine, log_uniform
    >>> objective = lambda c, k, steps: (jnp.log10(c["learning_rate"]) + 2.0) ** 2 + 1.0 / steps
    >>> res = coarse_to_fine(objective, {"learning_rate": log_uniform(1e-6, 1.0)},
    ...                      [{"num_trials": 16, "top_k": 4, "budget": 10}, {"num_trials": 16, "budget": 100}],
    ...                      key=jax.random.key(0))
    >>> res.space["learning_rate"].high < 1.0, 0.005 < res.best_config["learning_rate"] < 0.02
    (True, True)

  References:
    CS231n "Neural Networks Part 3" (coarse-to-fine search); Bergstra & Bengio 2012.
  """
  check_callable(CALL, "objective", objective)
  check_space(CALL, space)
  check_key(CALL, key)
  check_flag(CALL, "minimize", minimize)
  plan = _check_stages(space, stages)
  current, done = dict(space), []
  for s, stage in enumerate(plan):
    stage_key = jax.random.fold_in(key, s)
    configs = sample_space(current, jax.random.fold_in(stage_key, 0), stage["num_trials"])
    scores = evaluate_configs(objective, configs, jax.random.fold_in(stage_key, 1), chunk_size=chunk_size,
                              vmap_size=vmap_size, static_args=(stage["budget"],) if stage["has_budget"] else (),
                              call=CALL)
    if s == len(plan) - 1:
      return SearchResult.build(current, configs, scores, minimize=minimize, stages=tuple(done),
                                boundary_space=space)
    done.append(SearchResult.build(current, configs, scores, minimize=minimize, boundary_space=space))
    current = narrow_space(current, done[-1].configs, done[-1].scores, stage["top_k"], minimize, stage["narrow"])
