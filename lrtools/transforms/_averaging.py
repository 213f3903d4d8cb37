"""Parameter averaging: an exponential (EMA) or equal-weight (Polyak, SWA) average of the iterates,
kept in the optimizer state and evaluated with instead of the raw parameters (CS231n's "running
average of parameters").

The transforms pass the updates through unchanged and average ``params + updates``, the parameters
after the step, so they must come last in ``optax.chain`` and be given ``params``. The average is always
usable: before its first averaged step it equals the current parameters. Counts saturate at 2**31 − 1
(``optax.safe_increment``) and nothing derived from them wraps, so averaging goes on past that step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lrtools._typing import (INT32_MAX, Numeric, ScalarOrSchedule, check_flag, check_integer, check_interval,
                             fail)
from lrtools._hyperparams import check, decay_product, first_state, resolve_all, state_dtype, zero_count
from lrtools._numerics import times


class EmaParamsState(NamedTuple):
  """State of :func:`ema_params`.

  Attributes:
    count: int32 number of updates so far (saturating at 2**31 − 1).
    average: the (debiased, if asked) exponential average of the parameters.
    decay_product: ``∏ decay_i`` over the averaged steps (``decay^n`` for a constant decay).
    hyperparams: ``{"ema_decay": ...}`` used by the last update.
  """
  count: jax.Array
  average: optax.Params
  decay_product: jax.Array
  hyperparams: dict[str, jax.Array]


class PolyakParamsState(NamedTuple):
  """State of :func:`polyak_params`.

  Attributes:
    count: int32 number of updates so far (saturating at 2**31 − 1).
    average: the equal-weight mean of the averaged iterates.
    num_averaged: int32 number of iterates in the mean (saturating at 2**31 − 1).
    phase: int32 number of iterates after ``start_step`` modulo ``every``; an iterate that brings it
      back to 0 is averaged. It keeps the rhythm of ``every`` once ``count`` saturates.
  """
  count: jax.Array
  average: optax.Params
  num_averaged: jax.Array
  phase: jax.Array


def _next_params(updates, params, call: str):
  if params is None:
    fail(f"{call}.update", "params", params,
         "must be given: the average needs the parameters (call `update(updates, state, params)`)")
  return optax.apply_updates(params, updates)


def _blend(average, new, weight, track):
  """``average + weight·(new − average)``, or exactly ``new`` where ``track``."""
  return jax.tree.map(
      lambda a, x: jnp.where(track, x, a + times(weight, x - a)).astype(a.dtype), average, new)


def ema_params(decay: ScalarOrSchedule, debias: bool = True, start_step: Numeric = 0
               ) -> optax.GradientTransformation:
  r"""Keeps an exponential moving average of the parameters.

  With ``x_k`` the parameters after step ``k`` and averaging from ``k > start_step`` (``n`` steps):

  .. math::
    \text{debiased:}\;\; \bar{x}_k = \frac{e_k}{1 - \prod_{i} d_i}, \quad e_k = d\,e_{k-1} + (1 - d)\,x_k,
    \; e_{\text{start}} = 0 \qquad
    \text{plain:}\;\; \bar{x}_k = d\,\bar{x}_{k-1} + (1 - d)\,x_k, \; \bar{x}_{\text{start}} = x_{\text{start}}

  Both are stored as ``x̄ ← x̄ + w (x_k − x̄)`` with ``w = (1 − d)/(1 − ∏d)`` or ``1 − d``; before
  ``start_step`` the average follows the parameters. A constant decay gives ``∏d = d^n``, computed as
  that power while the step count is exact; once the count saturates at 2**31 − 1 steps the product is
  multiplied by ``d`` at each step instead, so the formula holds past that step (a schedule is then
  evaluated at step 2**31 − 1).

  Args:
    decay: decay ``d`` in [0, 1): number, array, tracer or schedule (e.g. 0.999).
    debias: divide out the zero start as Adam does (the first averaged step gives ``x_k`` itself), or
      start from the parameters at ``start_step``.
    start_step: non-negative number of steps before averaging starts.

  Returns:
    An ``optax.GradientTransformation`` (last in a chain; needs ``params``) with state
    :class:`EmaParamsState`; read the average with :func:`averaged_params`.

  Example:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> from lrtools.transforms import ema_params, averaged_params
    >>> opt = optax.chain(optax.sgd(1.0), ema_params(0.5))
    >>> params = jnp.zeros(1)
    >>> state = opt.init(params)
    >>> for _ in range(3):
    ...   updates, state = opt.update(-jnp.ones(1), state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> print(np.asarray(params), np.round(np.asarray(averaged_params(state)), 4))
    [3.] [2.4286]

  References:
    Polyak & Juditsky 1992; CS231n "Neural Networks Part 3" (model ensembles: running average of
    parameters); Kingma & Ba 2015 (bias correction).
  """
  call = "ema_params"
  check(check_interval, call, "decay", decay, 0.0, 1.0)
  check_flag(call, "debias", debias)
  check_integer(call, "start_step", start_step, 0)
  hyper = {"ema_decay": decay}

  def init_fn(params):
    count = zero_count()
    average = jax.tree.map(jnp.array, params)  # a copy: donated parameters must not alias it
    return EmaParamsState(count, average, jnp.ones([], state_dtype()), resolve_all(hyper, count))

  def update_fn(updates, state, params=None):
    new = _next_params(updates, params, call)
    hp = resolve_all(hyper, state.count)
    d = hp["ema_decay"]
    # The new iterate is k = count + 1, averaged when k > start_step: compared as count >= start_step
    # and counted as n = k − start_step with saturation, so that nothing wraps at 2**31 − 1.
    start = jnp.asarray(start_step, jnp.int32)
    active = state.count >= start
    num = jnp.where(active, optax.safe_increment(state.count - start), 0)
    product = jnp.where(state.count == INT32_MAX, state.decay_product * d,  # n no longer exact
                        decay_product(state.decay_product, decay, d, num))
    product = jnp.where(active, product, state.decay_product)
    # 1 − ∏d ≥ 1 − d > 0 once active; the where keeps an inactive step free of 0/0.
    weight = (1 - d) / jnp.where(active, 1 - product, 1) if debias else 1 - d
    average = _blend(state.average, new, weight, jnp.logical_not(active))
    return updates, EmaParamsState(optax.safe_increment(state.count), average, product, hp)

  return optax.GradientTransformation(init_fn, update_fn)


def polyak_params(start_step: Numeric = 0, every: Numeric = 1) -> optax.GradientTransformation:
  r"""Keeps the equal-weight average of the iterates (Polyak-Ruppert averaging; SWA with ``every``).

  .. math::
    \bar{x}_k = \frac{1}{n} \sum_{j \in S_k} x_j, \quad
    S_k = \{ j \le k : j > \text{start\_step},\; (j - \text{start\_step}) \bmod \text{every} = 0 \}

  Stored as ``x̄ ← x̄ + (x_k − x̄)/n``; before the first averaged iterate the average follows the
  parameters. The rhythm of ``every`` is kept in the state (``phase``), so it goes on past step
  2**31 − 1 where the count saturates. ``n`` saturates at 2**31 − 1 too: from then on each averaged
  iterate enters with weight ``1/(2**31 − 1)``, an exponential average with a memory of about 2**31
  iterates instead of the exact equal-weight mean. For SWA, set ``every`` to the cycle length of a
  cyclical schedule and ``start_step`` to the step the cycles start, so that the iterates at the cycle
  ends are averaged.

  Args:
    start_step: non-negative number of steps before averaging starts.
    every: positive integer; average every ``every``-th iterate after ``start_step``.

  Returns:
    An ``optax.GradientTransformation`` (last in a chain; needs ``params``) with state
    :class:`PolyakParamsState`; read the average with :func:`averaged_params`.

  Example:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> from lrtools.transforms import polyak_params, averaged_params
    >>> opt = optax.chain(optax.sgd(1.0), polyak_params(start_step=1))
    >>> params = jnp.zeros(1)
    >>> state = opt.init(params)
    >>> for _ in range(4):
    ...   updates, state = opt.update(-jnp.ones(1), state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> print(np.asarray(params), np.round(np.asarray(averaged_params(state)), 4))
    [4.] [3.]

  References:
    Polyak & Juditsky 1992, "Acceleration of stochastic approximation by averaging"; Izmailov et al.
    2018, "Averaging Weights Leads to Wider Optima and Better Generalization" (SWA); CS231n.
  """
  call = "polyak_params"
  check_integer(call, "start_step", start_step, 0)
  check_integer(call, "every", every, 1)

  def init_fn(params):
    return PolyakParamsState(zero_count(), jax.tree.map(jnp.array, params), zero_count(), zero_count())

  def update_fn(updates, state, params=None):
    new = _next_params(updates, params, call)
    # Iterate k = count + 1 counts when k > start_step (count >= start_step: no overflow at 2**31 − 1);
    # phase < every, so phase + 1 fits int32.
    active = state.count >= jnp.asarray(start_step, jnp.int32)
    phase = jnp.where(active, (state.phase + 1) % jnp.asarray(every, jnp.int32), state.phase)
    chosen = active & (phase == 0)
    num = jnp.where(chosen, optax.safe_increment(state.num_averaged), state.num_averaged)
    weight = 1 / jnp.maximum(num, 1).astype(state_dtype())
    track = num == 0  # nothing averaged yet: follow the parameters
    blended = _blend(state.average, new, weight, track)
    average = jax.tree.map(lambda b, a: jnp.where(chosen | track, b, a), blended, state.average)
    return updates, PolyakParamsState(optax.safe_increment(state.count), average, num, phase)

  return optax.GradientTransformation(init_fn, update_fn)


def averaged_params(opt_state: Any) -> optax.Params:
  """The averaged parameters of the first :func:`ema_params` or :func:`polyak_params` state found.

  Args:
    opt_state: an optimizer state (a chain, partition, ...) containing an averaging state.

  Returns:
    The averaged parameters, same tree and dtypes as the parameters.

  Example:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> from lrtools.transforms import ema_params, averaged_params
    >>> opt = optax.chain(optax.sgd(0.1), ema_params(0.9))
    >>> state = opt.init({"w": jnp.ones(2)})
    >>> print(np.asarray(averaged_params(state)["w"]))
    [1. 1.]
  """
  return first_state("averaged_params", opt_state, (EmaParamsState, PolyakParamsState),
                     "ema_params/polyak_params state (add one last in the optax.chain)").average
