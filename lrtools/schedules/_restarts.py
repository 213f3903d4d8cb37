"""SGDR: cosine annealing with warm restarts, in closed form."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from lrtools._typing import (INT32_MAX, Numeric, Schedule, check_integer, check_interval, check_le,
                             check_nonnegative, concrete, float_dtype)
from lrtools.schedules._arith import as_steps, compute_dtype, count_reached, int_steps

SNAP_ULPS = 32  # a real restart boundary within this many ulps above an integer counts as that integer
MAX_TABLE = 2**16  # restarts tabulated on the host for a concrete real cycle_mult (m ≥ ~1.0003 for T_0 = 1)


def _integer_mult_starts(cycle_steps, mult, int_dtype):
  """Cycle starts ``S_0 … S_K`` for an integer ``mult >= 2`` by saturating integer arithmetic, with a flag
  for each start that overflowed the integer type (never reached). ``K`` = the type's bits: S_K ≥ 2^K − 1."""
  top = jnp.iinfo(int_dtype).max
  start, length, over = jnp.zeros((), int_dtype), cycle_steps, jnp.zeros((), bool)
  starts, overflowed = [start], [over]
  for _ in range(jnp.iinfo(int_dtype).bits):
    over = over | (length > top - start)
    start = jnp.where(over, top, start + length)
    length = jnp.where(length > top // mult, top, length * mult)
    starts.append(start)
    overflowed.append(over)
  return jnp.stack(starts), jnp.stack(overflowed)


def _real_start(i, cycle_steps, excess, cdt):
  """``S_i = ⌈T_0 (m^i − 1)/(m − 1)⌉`` for a real ``m = 1 + excess > 1``, evaluated in ``cdt`` (expm1/log1p
  of the excess keep it accurate for m near 1), a value within :data:`SNAP_ULPS` ulps above an integer
  taken as that integer."""
  real = cycle_steps * jnp.expm1(i * jnp.log1p(excess)) / excess
  return jnp.ceil(real - SNAP_ULPS * jnp.finfo(cdt).eps * real)


def restart_table(cycle_steps, cycle_mult) -> tuple[np.ndarray, np.ndarray] | None:
  """For concrete ``cycle_steps`` and a concrete non-integer ``cycle_mult``: the restarts ``S_i <= 2**31 − 1``
  (int32) and the cycles' lengths ``S_{i+1} − S_i`` computed in float64 on the host, so that restarts are
  exact at every int32 step; ``None`` when an argument is traced, ``cycle_mult`` is an integer, or there
  are more than :data:`MAX_TABLE` cycles (then :func:`_real_start` evaluates them on the device)."""
  t0, m = concrete(cycle_steps), concrete(cycle_mult)
  if t0 is None or m is None or float(m) == round(float(m)):
    return None
  t0, m = float(t0), float(m)
  count = int(np.ceil(np.log1p(INT32_MAX * (m - 1) / t0) / np.log(m))) + 2
  if count > MAX_TABLE:
    return None
  i = np.arange(count + 1, dtype=np.float64)
  real = t0 * np.expm1(i * np.log1p(m - 1)) / (m - 1)
  starts = np.ceil(real - SNAP_ULPS * np.finfo(np.float64).eps * real)
  reached = starts <= INT32_MAX
  return starts[reached].astype(np.int32), np.diff(starts)[:int(reached.sum())]


def _cycles_of_one(t, t0, m, excess, cdt):
  """``cycle_mult = 1``: ``i = ⌊t / T_0⌋`` in integers."""
  index = t // t0
  return index, index * t0, t0.astype(cdt)


def _cycles_of_integer_mult(t, t0, m, excess, cdt):
  """Integer ``cycle_mult >= 2``: the starts by saturating integer arithmetic."""
  top = jnp.iinfo(t.dtype).max
  m_round = jnp.round(m)
  starts, overflowed = _integer_mult_starts(t0, jnp.maximum(m_round, 2).astype(t.dtype), t.dtype)
  # Overflowed starts saturate at ``top``: only t == top reaches them, and it must not.
  index = (count_reached(t, starts[1:]) - jnp.where(t == top, jnp.sum(overflowed[1:]), 0)).astype(t.dtype)
  return index, starts[index], t0.astype(cdt) * m_round ** index.astype(cdt)


def _cycles_of_real_mult(t, t0, m, excess, cdt):
  """Real ``cycle_mult > 1`` on the device: a log estimate of ``i`` corrected against ``S_i``, ``S_{i+1}``."""
  top = jnp.iinfo(t.dtype).max
  excess = jnp.where(excess > 0, excess, 1)  # a finite placeholder when another branch is the one selected
  t0_f = t0.astype(cdt)

  def start(i):  # (value as a float, as an integer or 0, reachable)
    value = _real_start(i.astype(cdt), t0_f, excess, cdt)
    reachable = value <= top
    return value, jnp.where(reachable, value, 0).astype(t.dtype), reachable

  estimate = jnp.floor(jnp.log1p(t.astype(cdt) * excess / t0_f) / jnp.log1p(excess))
  index = jnp.clip(estimate, 0, top - 1).astype(t.dtype)
  _, s, ok = start(index)
  index = jnp.where(ok & (s <= t), index, jnp.maximum(index - 1, 0))
  _, s, ok = start(index + 1)
  index = jnp.where(ok & (s <= t), index + 1, index)
  first_f, first, _ = start(index)
  return index, first, start(index + 1)[0] - first_f


def restart_cycle(t: jnp.ndarray, cycle_steps, cycle_mult, cdt, table=None):
  """Index ``i`` of the cycle holding integer step ``t``, its first step ``S_i`` (an integer) and its
  length ``S_{i+1} − S_i`` (a float of ``cdt``).

  - ``cycle_mult = 1``: ``i = ⌊t / T_0⌋`` in integers, exact for every step.
  - integer ``cycle_mult >= 2``: ``S_i = T_0 (1 + m + … + m^{i−1})`` by saturating integer arithmetic (no
    overflow for any m), exact for every int32 step.
  - real ``cycle_mult`` with a host ``table`` (:func:`restart_table`): a binary search, exact everywhere.
  - real ``cycle_mult`` otherwise (traced, or m so close to 1 that there are over 2^16 cycles):
    ``S_i = ⌈T_0 (m^i − 1)/(m − 1)⌉`` (see :func:`_real_start`) in ``cdt``. Exact while ``cdt`` resolves
    the boundaries (float64); in float32 a restart may move by the rounding of its boundary (relative
    ~4e-6), never outside the schedule's range.

  A concrete ``cycle_mult`` compiles only its own case; a traced one computes the three and selects.
  """
  if table is not None:
    starts, lengths = jnp.asarray(table[0]).astype(t.dtype), jnp.asarray(table[1], cdt)
    index = jnp.searchsorted(starts, t, side="right") - 1
    return index.astype(t.dtype), starts[index], lengths[index]
  t0 = as_steps(cycle_steps, t.dtype)
  m = jnp.asarray(cycle_mult, cdt)
  cases = [_cycles_of_one, _cycles_of_integer_mult, _cycles_of_real_mult]
  known = concrete(cycle_mult)
  if known is not None:  # m − 1 from the float64 value: rounding m first would cost m − 1 its precision
    kind = 0 if known == 1 else 1 if known == np.round(known) else 2
    return cases[kind](t, t0, m, jnp.asarray(float(known) - 1, cdt), cdt)
  kind = jnp.where(m == 1, 0, jnp.where(m == jnp.round(m), 1, 2))
  results = [case(t, t0, m, m - 1, cdt) for case in cases]
  return tuple(jnp.choose(kind, [r[k].astype(results[0][k].dtype) for r in results], mode="clip")
               for k in range(3))


def sgdr_schedule(max_value: Numeric, cycle_steps: Numeric, cycle_mult: Numeric = 1.0, min_value: Numeric = 0.0,
                  max_decay: Numeric = 1.0, min_decay: Numeric = 1.0) -> Schedule:
  r"""Loshchilov & Hutter's stochastic gradient descent with warm restarts (SGDR).

  Cycle :math:`i` starts at the integer step :math:`S_i = \lceil T_0 (1 + m + \dots + m^{i-1}) \rceil` and
  lasts :math:`T_i = S_{i+1} - S_i` steps (:math:`T_0 m^i` for integer :math:`m`); within it, with
  :math:`t_{cur} = t - S_i`:

  .. math::
     \eta_t = \eta^i_{min} + \tfrac12 (\eta^i_{max} - \eta^i_{min})\left(1 + \cos\frac{\pi t_{cur}}{T_i}\right),
     \qquad \eta^i_{max} = \eta_{max}\, \delta_{max}^i,\quad \eta^i_{min} = \eta_{min}\, \delta_{min}^i

  Closed form (no state, no loop). Restarts are exact integer steps: for integer ``cycle_mult`` (1
  included) at every int32 step (0 … 2**31 − 1) with no overflow for any multiplier, matching the widely
  used CosineAnnealingWarmRestarts step for step; for a real ``cycle_mult`` the restart is the ceiling of
  the real boundary (``sgdr_schedule(1.0, 10, 1.3)`` restarts at 10, 23, 40, 62, …), computed in float64 on
  the host and exact at every int32 step when ``cycle_steps`` and ``cycle_mult`` are concrete (and there are
  at most 2^16 cycles). The real boundary is that of the binary ``cycle_mult``, and one within 32 float64
  ulps above an integer counts as that integer, so a decimal such as 1.3 restarts where exact decimal
  arithmetic puts it (bar boundaries within ~1e-14 relative of an integer). A traced real ``cycle_mult``
  (or one so close to 1 that there are more than 2^16 cycles) is evaluated on the device: exact in
  float64; in float32 a restart may move by the float32 rounding of its boundary (relative ~4e-6, i.e. up
  to thousands of steps near 2^31, and already one step at ~1.6e3 for m = 1.05 or ~1.8e4 for m = 1.3):
  pass ``cycle_mult`` concrete, or enable x64, where restarts must be exact.

  Args:
    max_value: :math:`\eta_{max} \ge 0`, the value right after each restart (of the first cycle).
    cycle_steps: :math:`T_0 \ge 1`, an integer, the length of the first cycle.
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
  check_integer(call, "cycle_steps", cycle_steps, 1)
  check_interval(call, "cycle_mult", cycle_mult, 1.0, float("inf"))
  check_nonnegative(call, "min_value", min_value)
  check_le(call, "min_value", min_value, "max_value", max_value)
  check_interval(call, "max_decay", max_decay, 0.0, 1.0, low_closed=False, high_closed=True)
  check_interval(call, "min_decay", min_decay, 0.0, 1.0, low_closed=False, high_closed=True)
  dtype = float_dtype(max_value, min_value, cycle_mult, max_decay, min_decay)
  cdt = compute_dtype(dtype)
  table = restart_table(cycle_steps, cycle_mult)

  def schedule(count):
    t = int_steps(count)
    cycle, first, length = restart_cycle(t, cycle_steps, cycle_mult, cdt, table)
    cycle = cycle.astype(cdt)
    high = jnp.asarray(max_value, cdt) * jnp.asarray(max_decay, cdt) ** cycle
    low = jnp.asarray(min_value, cdt) * jnp.asarray(min_decay, cdt) ** cycle
    progress = jnp.clip((t - first).astype(cdt) / length, 0, 1)
    return (low + 0.5 * (high - low) * (1 + jnp.cos(jnp.pi * progress))).astype(dtype)

  return schedule
