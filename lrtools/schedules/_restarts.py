"""SGDR: cosine annealing with warm restarts, in closed form."""

from __future__ import annotations

import jax.numpy as jnp

from lrtools._typing import (Numeric, Schedule, check_interval, check_le, check_nonnegative, check_positive,
                             float_dtype)
from lrtools.schedules._arith import floor_div, geometric_sum, steps


def restart_cycle(t: jnp.ndarray, cycle_steps: jnp.ndarray, cycle_mult: jnp.ndarray):
  """Index ``i`` of the cycle holding step ``t``, its first step and its length.

  Cycle ``i`` starts at :math:`S_i = T_0 (1 + m + … + m^{i-1})`. A ``log``-based estimate of ``i`` rounds
  wrongly at some restarts, so it is corrected against :math:`S_i` and :math:`S_{i+1}`, computed by integer
  arithmetic when ``cycle_mult`` is an integer (exact at every restart below 2^24 steps in float32).
  """
  geometric = cycle_mult > 1
  ratio = jnp.where(geometric, cycle_mult, 2)  # keeps the unused branch finite
  estimate = jnp.where(geometric, jnp.floor(jnp.log1p(t * (ratio - 1) / cycle_steps) / jnp.log(ratio)),
                       floor_div(t, cycle_steps))
  estimate = jnp.maximum(estimate, 0)

  def start(i):
    return cycle_steps * jnp.where(geometric, geometric_sum(ratio, i), i)

  index = jnp.where(start(estimate) > t, estimate - 1, estimate)
  index = jnp.where(start(index + 1) <= t, index + 1, index)
  first = start(index)
  return index, first, start(index + 1) - first


def sgdr_schedule(max_value: Numeric, cycle_steps: Numeric, cycle_mult: Numeric = 1.0, min_value: Numeric = 0.0,
                  max_decay: Numeric = 1.0, min_decay: Numeric = 1.0) -> Schedule:
  r"""Loshchilov & Hutter's stochastic gradient descent with warm restarts (SGDR).

  Cycle :math:`i` lasts :math:`T_i = T_0 m^i` steps and starts at :math:`S_i = \sum_{j<i} T_j`; within it,
  with :math:`t_{cur} = t - S_i`:

  .. math::
     \eta_t = \eta^i_{min} + \tfrac12 (\eta^i_{max} - \eta^i_{min})\left(1 + \cos\frac{\pi t_{cur}}{T_i}\right),
     \qquad \eta^i_{max} = \eta_{max}\, \delta_{max}^i,\quad \eta^i_{min} = \eta_{min}\, \delta_{min}^i

  Closed form (no state, no loop): the cycle index is exact at every restart for integer ``cycle_mult``,
  and the values match the widely used CosineAnnealingWarmRestarts step for step.

  Args:
    max_value: :math:`\eta_{max} \ge 0`, the value right after each restart (of the first cycle).
    cycle_steps: :math:`T_0 > 0`, the length of the first cycle.
    cycle_mult: :math:`m \ge 1` (real), each cycle is ``m`` times longer than the previous.
    min_value: :math:`\eta_{min} \in [0, \eta_{max}]`, the value approached at the end of each cycle.
    max_decay: :math:`\delta_{max} \in (0, 1]`, per-cycle decay of the maximum.
    min_decay: :math:`\delta_{min} \in (0, 1]`, per-cycle decay of the minimum.

  Returns:
    A schedule ``count -> value``.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> sched = lrt.sgdr_schedule(1.0, cycle_steps=2, cycle_mult=2.0, max_decay=0.5)
    >>> [round(float(v), 4) for v in sched(jnp.arange(7))]
    [1.0, 0.5, 0.5, 0.4268, 0.25, 0.0732, 0.25]

  References:
    Loshchilov & Hutter 2017, "SGDR: Stochastic Gradient Descent with Warm Restarts" (ICLR), eq. 5.
  """
  call = "sgdr_schedule"
  check_nonnegative(call, "max_value", max_value)
  check_positive(call, "cycle_steps", cycle_steps)
  check_interval(call, "cycle_mult", cycle_mult, 1.0, float("inf"))
  check_nonnegative(call, "min_value", min_value)
  check_le(call, "min_value", min_value, "max_value", max_value)
  check_interval(call, "max_decay", max_decay, 0.0, 1.0, low_closed=False, high_closed=True)
  check_interval(call, "min_decay", min_decay, 0.0, 1.0, low_closed=False, high_closed=True)
  dtype = float_dtype(max_value, min_value, cycle_mult, max_decay, min_decay)

  def schedule(count):
    t = steps(count, dtype)
    cycle, first, length = restart_cycle(t, jnp.asarray(cycle_steps, dtype), jnp.asarray(cycle_mult, dtype))
    high = max_value * jnp.asarray(max_decay, dtype) ** cycle
    low = min_value * jnp.asarray(min_decay, dtype) ** cycle
    return low + 0.5 * (high - low) * (1 + jnp.cos(jnp.pi * (t - first) / length))

  return schedule
