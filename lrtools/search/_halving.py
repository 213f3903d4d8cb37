"""Successive halving: many trials on a small budget, the best fraction continues, and so on.

A trial is a state on the device (parameters, optimizer state, anything) built by ``init_fn``, advanced by
``train_fn`` and scored by ``score_fn``. Rung :math:`r` trains its trials to :math:`b_r = b_0\\eta^r` steps in
all (only the missing :math:`b_r - b_{r-1}` steps: states are carried over), scores them, and the best
:math:`\\lceil n_r/\\eta \\rceil` go on. Survivors' states are gathered (``jnp.take`` on the trial axis, on the
device) into a smaller batch, so a dropped trial costs nothing more. Each rung compiles once (its batch size
and step count are new shapes).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from lrtools._typing import check_callable, check_flag, check_integer, fail
from lrtools.search._random import NotAScore, check_score, default_width, not_a_score
from lrtools.search._result import SearchResult, ranking
from lrtools.search._space import Space, check_key, check_space, sample_space

CALL = "successive_halving"


def _map(fn: Callable, xs: Any, width: int) -> Any:
  """``fn`` on every trial of ``xs`` (leading trial axis): groups of ``width`` vmapped, groups in a lax.map."""
  return jax.lax.map(fn, xs) if width == 1 else jax.lax.map(fn, xs, batch_size=width)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _init(init_fn: Callable, width: int, key: jax.Array, configs: dict, indices: jax.Array) -> Any:
  return _map(lambda x: init_fn(x[0], jax.random.fold_in(key, x[1])), (configs, indices), width)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _rung(train_fn: Callable, score_fn: Callable, num_steps: int, width: int, states: Any,
          configs: dict) -> tuple[Any, jax.Array]:
  def one(x):
    state = train_fn(x[0], x[1], num_steps)
    score = score_fn(state)
    check_score(score)
    return state, score
  return _map(one, (states, configs), width)


@jax.jit
def _gather(states: Any, configs: dict, keep: jax.Array) -> tuple[Any, dict]:
  take = lambda x: jnp.take(x, keep, axis=0)
  return jax.tree_util.tree_map(take, states), jax.tree_util.tree_map(take, configs)


def successive_halving(init_fn: Callable, train_fn: Callable, score_fn: Callable, space: Space, num_trials: int,
                       *, key: jax.Array, min_steps: int, eta: int = 3, num_rungs: int | None = None,
                       minimize: bool = True, vmap_size: int | None = None) -> SearchResult:
  r"""Successive halving: every trial trains ``min_steps``, the best :math:`1/\eta` train :math:`\eta` times
  longer, and so on, states kept on the device and survivors re-batched.

  .. math:: n_0 = N,\quad n_{r+1} = \lceil n_r / \eta \rceil,\qquad b_r = b_0\,\eta^r \text{ steps in all at rung } r

  Args:
    init_fn: ``init_fn(config, key) -> state`` (a pytree of arrays): trial ``i`` gets ``fold_in(key', i)``.
    train_fn: ``train_fn(state, config, num_steps) -> state``, ``num_steps`` a static Python int (e.g. the
      length of ``lrt.train_loop``'s scan; a batch function of the step keeps data moving on).
    score_fn: ``score_fn(state) -> scalar`` (e.g. the validation loss).
    space: name -> parameter.
    num_trials: trials at the first rung.
    key: the PRNG key: configurations from ``fold_in(key, 0)``, trial keys from ``fold_in(key, 1)``.
    min_steps: :math:`b_0`, the steps of the first rung.
    eta: the keep ratio :math:`\eta \ge 2`.
    num_rungs: rungs to run; default until one trial is left, :math:`\lceil \log_\eta N \rceil + 1`.
    minimize: lower scores are better. Non-finite scores are ranked worst.
    vmap_size: trials vmapped together (see :func:`evaluate_configs`); default all on a GPU/TPU, 1 on CPU.

  Returns:
    The last rung's :class:`SearchResult` (its trials trained longest); ``stages`` holds the earlier rungs'
    results, oldest first: rung :math:`r+1`'s configurations are rung :math:`r`'s best, best first.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from lrtools.search import successive_halving, log_uniform
    >>> init = lambda c, k: jnp.zeros(())                       # state: the distance walked
    >>> train = lambda s, c, n: s + n * c["learning_rate"]      # walk n steps of size lr
    >>> score = lambda s: (s - 10.0) ** 2                       # the goal lies at 10
    >>> res = successive_halving(init, train, score, {"learning_rate": log_uniform(1e-3, 1.0)}, 27,
    ...                          key=jax.random.key(0), min_steps=1, eta=3)
    >>> [len(r.scores) for r in res.stages], len(res.scores)
    ([27, 9, 3], 1)

  References:
    Jamieson & Talwalkar 2016, "Non-stochastic Best Arm Identification and Hyperparameter Optimization";
    Li et al. 2018, "Hyperband".
  """
  for name, fn in (("init_fn", init_fn), ("train_fn", train_fn), ("score_fn", score_fn)):
    check_callable(CALL, name, fn)
  check_space(CALL, space)
  check_integer(CALL, "num_trials", num_trials, 1)
  check_key(CALL, key)
  check_integer(CALL, "min_steps", min_steps, 1)
  check_integer(CALL, "eta", eta, 2)
  check_flag(CALL, "minimize", minimize)
  if vmap_size is not None:
    check_integer(CALL, "vmap_size", vmap_size, 1)
  n, eta = int(num_trials), int(eta)
  full = math.ceil(math.log(n, eta) - 1e-9) + 1 if n > 1 else 1
  if num_rungs is None:
    num_rungs = full
  check_integer(CALL, "num_rungs", num_rungs, 1)
  if int(min_steps) * eta ** (int(num_rungs) - 1) > 2**31 - 1:
    fail(CALL, "num_rungs", num_rungs, f"must keep the last rung's steps min_steps * eta**(num_rungs - 1) "
         f"within int32 (min_steps={min_steps}, eta={eta})")

  configs = sample_space(space, jax.random.fold_in(key, 0), n)
  width = lambda size: max(1, min(int(vmap_size or default_width(size)), size))
  states = _init(init_fn, width(n), jax.random.fold_in(key, 1), configs, jnp.arange(n, dtype=jnp.int32))
  rungs, done = [], 0
  for r in range(int(num_rungs)):
    budget = int(min_steps) * eta ** r
    size = len(next(iter(configs.values())))
    try:
      states, scores = _rung(train_fn, score_fn, budget - done, width(size), states, configs)
    except NotAScore as e:
      not_a_score(CALL, "score_fn", score_fn, e)
    done = budget
    host_scores = np.asarray(scores)
    rungs.append(SearchResult.build(space, configs, host_scores, minimize=minimize))
    keep = max(1, math.ceil(size / eta))
    if r == int(num_rungs) - 1 or size == 1:
      break
    order = ranking(host_scores, minimize)[:keep]
    states, configs = _gather(states, configs, jnp.asarray(order, jnp.int32))
  last = rungs.pop()
  return SearchResult.build(space, last.configs, last.scores, minimize=minimize, stages=tuple(rungs))
