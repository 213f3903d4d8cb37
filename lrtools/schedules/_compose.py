"""Schedule combinators: a linear warmup in front of any schedule, and schedules joined at boundaries."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

from lrtools._typing import Numeric, Schedule, check_callable, check_integer, check_nonnegative, check_steps, concrete
from lrtools.schedules._arith import as_steps, compute_dtype, count_reached, int_steps


def warmup_schedule(schedule: Schedule, warmup_steps: Numeric, init_value: Numeric = 0.0) -> Schedule:
  r"""A linear warmup from ``init_value`` to ``schedule(0)``, followed by ``schedule`` shifted by the warmup.

  .. math::
     \eta_t = \begin{cases} \eta_{init} + (s(0) - \eta_{init})\, t / W & t < W \\ s(t - W) & t \ge W \end{cases}

  Args:
    schedule: any schedule ``count -> value``.
    warmup_steps: :math:`W \ge 0`, an integer; 0 returns ``schedule`` unchanged in value.
    init_value: the value at step 0, :math:`\ge 0`.

  Returns:
    A schedule ``count -> value``.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> sched = lrt.warmup_schedule(lrt.cosine_decay_schedule(1.0, decay_steps=2), warmup_steps=2)
    >>> [round(float(v), 4) for v in sched(jnp.arange(6))]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]

  References:
    Goyal et al. 2017, "Accurate, Large Minibatch SGD" (gradual warmup); Zhang et al., *Dive into Deep
    Learning* §12.11.
  """
  call = "warmup_schedule"
  check_callable(call, "schedule", schedule)
  check_integer(call, "warmup_steps", warmup_steps, 0)
  check_nonnegative(call, "init_value", init_value)

  def warmed(count):
    t = int_steps(count)
    warm = as_steps(warmup_steps, t.dtype)
    # A schedule may return a scalar for any count (``lambda t: 0.1``): broadcast, as optax does.
    after = jnp.broadcast_to(jnp.asarray(schedule(jnp.maximum(t - warm, 0))), t.shape)
    peak = jnp.broadcast_to(jnp.asarray(schedule(jnp.zeros_like(t))), t.shape)
    cdt = compute_dtype(after.dtype)
    fraction = t.astype(cdt) / jnp.maximum(warm, 1).astype(cdt)
    start = jnp.asarray(init_value, cdt)
    ramp = start + (peak.astype(cdt) - start) * fraction
    return jnp.where(t < warm, ramp.astype(after.dtype), after)

  return warmed


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[Numeric] | Numeric) -> Schedule:
  r"""Runs ``schedules[i]`` from ``boundaries[i-1]`` on, each restarted at its own step 0.

  .. math:: \eta_t = s_i(t - b_{i-1}) \quad \text{for } b_{i-1} \le t < b_i, \qquad b_{-1} = 0

  The same semantics as ``optax.join_schedules``, with the inputs validated.

  Args:
    schedules: ``n ≥ 1`` schedules.
    boundaries: ``n − 1`` strictly increasing integer steps in [0, 2**31 − 1] (may be a traced array).

  Returns:
    A schedule ``count -> value``.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> sched = lrt.join_schedules([lrt.constant_schedule(1.0), lrt.exponential_decay_schedule(0.5, 0.5)], [2])
    >>> [round(float(v), 4) for v in sched(jnp.arange(5))]
    [1.0, 1.0, 0.5, 0.3033, 0.1839]

  References:
    Loshchilov & Hutter 2017, "SGDR" (schedules in stages); optax.join_schedules.
  """
  call = "join_schedules"
  if not isinstance(schedules, (list, tuple)):
    raise ValueError(f"`{call}(schedules=...)` must be a list or tuple of schedules, got schedules={schedules!r}")
  schedules = list(schedules)
  if not schedules:
    raise ValueError(f"`{call}(schedules=...)` needs at least one schedule, got schedules={schedules!r}")
  for s in schedules:
    check_callable(call, "schedules", s)
  bounds = concrete(boundaries)
  count = None if bounds is None else int(np.size(bounds))
  if count is not None and count != len(schedules) - 1:
    raise ValueError(f"`{call}(boundaries=...)` needs len(schedules) - 1 = {len(schedules) - 1} boundaries, "
                     f"got boundaries={boundaries!r}")
  check_steps(call, "boundaries", boundaries)

  def joined(step):
    t = int_steps(step)
    marks = as_steps(boundaries, t.dtype).reshape(-1)
    offsets = jnp.concatenate([jnp.zeros((1,), t.dtype), marks])
    index = count_reached(t, marks)
    parts = [jnp.broadcast_to(jnp.asarray(s(jnp.maximum(t - offsets[i], 0))), t.shape)
             for i, s in enumerate(schedules)]
    dtype = jnp.result_type(*parts)
    values = jnp.stack([p.astype(dtype) for p in parts], axis=-1)
    return jnp.take_along_axis(values, index[..., None], axis=-1)[..., 0]

  return joined
