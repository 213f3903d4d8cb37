"""Monotone decay schedules: constant, step, multistep, exponential, 1/t, polynomial and cosine.

Every numeric argument may be a Python number, an array or a tracer; validation runs on concrete values
at construction, so a schedule can be built inside ``jax.jit``/``jax.vmap`` from traced hyperparameters.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from lrtools._typing import (Numeric, Schedule, check_finite, check_integer, check_interval, check_le,
                             check_nonnegative, check_positive, check_steps, float_dtype)
from lrtools.schedules._arith import as_steps, compute_dtype, count_reached, int_steps


def constant_schedule(value: Numeric) -> Schedule:
  r"""A schedule that always returns ``value``.

  .. math:: \eta_t = \eta

  Args:
    value: the constant (finite).

  Returns:
    A schedule ``count -> value`` with the shape of ``count``.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> [round(float(v), 4) for v in lrt.constant_schedule(0.1)(jnp.arange(3))]
    [0.1, 0.1, 0.1]

  References:
    CS231n, "Neural Networks Part 3: Annealing the learning rate".
  """
  check_finite("constant_schedule", "value", value)
  dtype = float_dtype(value)

  def schedule(count):
    return jnp.broadcast_to(jnp.asarray(value, dtype), jnp.shape(count))

  return schedule


def step_decay_schedule(init_value: Numeric, step_size: Numeric, factor: Numeric = 0.5,
                        min_value: Numeric = 0.0) -> Schedule:
  r"""Multiplies the value by ``factor`` every ``step_size`` steps, never below ``min_value``.

  .. math:: \eta_t = \max\left(\eta_0 \cdot f^{\lfloor t / s \rfloor},\ \eta_{\min}\right)

  Args:
    init_value: :math:`\eta_0 \ge 0`.
    step_size: :math:`s \ge 1`, integer steps between decays (integer arithmetic: exact at every decay).
    factor: :math:`f \in (0, 1]`; 0.5 is CS231n's "halve every N epochs".
    min_value: floor :math:`\eta_{\min} \in [0, \eta_0]` (D2L's FactorScheduler ``stop_factor_lr``).

  Returns:
    A schedule ``count -> value``.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> sched = lrt.step_decay_schedule(0.1, step_size=2, factor=0.5, min_value=0.02)
    >>> [round(float(v), 4) for v in sched(jnp.arange(7))]
    [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02]

  References:
    CS231n "Neural Networks Part 3" (step decay); Zhang et al., *Dive into Deep Learning* §12.11.
  """
  call = "step_decay_schedule"
  check_nonnegative(call, "init_value", init_value)
  check_integer(call, "step_size", step_size, 1)
  check_interval(call, "factor", factor, 0.0, 1.0, low_closed=False, high_closed=True)
  check_nonnegative(call, "min_value", min_value)
  check_le(call, "min_value", min_value, "init_value", init_value)
  dtype = float_dtype(init_value, factor, min_value)
  cdt = compute_dtype(dtype)

  def schedule(count):
    t = int_steps(count)
    num_decays = (t // as_steps(step_size, t.dtype)).astype(cdt)
    value = jnp.asarray(init_value, cdt) * jnp.asarray(factor, cdt) ** num_decays
    return jnp.maximum(value, jnp.asarray(min_value, cdt)).astype(dtype)

  return schedule


def multistep_schedule(init_value: Numeric, milestones: Sequence[Numeric] | Numeric,
                       factor: Numeric = 0.1) -> Schedule:
  r"""Multiplies the value by ``factor`` at each milestone step.

  .. math:: \eta_t = \eta_0 \cdot f^{\,|\{m_i \,:\, m_i \le t\}|}

  Args:
    init_value: :math:`\eta_0 \ge 0`.
    milestones: strictly increasing integer steps in [0, 2**31 − 1] (a list, an array, or a traced array).
    factor: :math:`f \in (0, 1]`.

  Returns:
    A schedule ``count -> value``.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> sched = lrt.multistep_schedule(1.0, milestones=[2, 4], factor=0.1)
    >>> [round(float(v), 4) for v in sched(jnp.arange(6))]
    [1.0, 1.0, 0.1, 0.1, 0.01, 0.01]

  References:
    Zhang et al., *Dive into Deep Learning* §12.11 (MultiFactorScheduler).
  """
  call = "multistep_schedule"
  check_nonnegative(call, "init_value", init_value)
  check_steps(call, "milestones", milestones)
  check_interval(call, "factor", factor, 0.0, 1.0, low_closed=False, high_closed=True)
  dtype = float_dtype(init_value, factor)
  cdt = compute_dtype(dtype)

  def schedule(count):
    t = int_steps(count)
    passed = count_reached(t, as_steps(milestones, t.dtype).reshape(-1))
    return (jnp.asarray(init_value, cdt) * jnp.asarray(factor, cdt) ** passed.astype(cdt)).astype(dtype)

  return schedule


def exponential_decay_schedule(init_value: Numeric, rate: Numeric) -> Schedule:
  r"""Continuous exponential decay (CS231n form).

  .. math:: \eta_t = \eta_0 \, e^{-k t}

  Args:
    init_value: :math:`\eta_0 \ge 0`.
    rate: :math:`k \ge 0` per step.

  Returns:
    A schedule ``count -> value``. Equals ``optax.exponential_decay(η0, 1, e^{-k})``.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> [round(float(v), 4) for v in lrt.exponential_decay_schedule(0.1, rate=0.1)(jnp.arange(3))]
    [0.1, 0.0905, 0.0819]

  References:
    CS231n "Neural Networks Part 3: Annealing the learning rate".
  """
  call = "exponential_decay_schedule"
  check_nonnegative(call, "init_value", init_value)
  check_nonnegative(call, "rate", rate)
  dtype = float_dtype(init_value, rate)
  cdt = compute_dtype(dtype)

  def schedule(count):
    t = int_steps(count).astype(cdt)
    return (jnp.asarray(init_value, cdt) * jnp.exp(-jnp.asarray(rate, cdt) * t)).astype(dtype)

  return schedule


def inverse_time_decay_schedule(init_value: Numeric, rate: Numeric) -> Schedule:
  r"""1/t decay (CS231n form).

  .. math:: \eta_t = \frac{\eta_0}{1 + k t}

  Args:
    init_value: :math:`\eta_0 \ge 0`.
    rate: :math:`k \ge 0` per step.

  Returns:
    A schedule ``count -> value``.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> [round(float(v), 4) for v in lrt.inverse_time_decay_schedule(0.1, rate=0.5)(jnp.arange(3))]
    [0.1, 0.0667, 0.05]

  References:
    CS231n "Neural Networks Part 3: Annealing the learning rate".
  """
  call = "inverse_time_decay_schedule"
  check_nonnegative(call, "init_value", init_value)
  check_nonnegative(call, "rate", rate)
  dtype = float_dtype(init_value, rate)
  cdt = compute_dtype(dtype)

  def schedule(count):
    t = int_steps(count).astype(cdt)
    return (jnp.asarray(init_value, cdt) / (1 + jnp.asarray(rate, cdt) * t)).astype(dtype)

  return schedule


def polynomial_decay_schedule(init_value: Numeric, end_value: Numeric, decay_steps: Numeric,
                              power: Numeric = 1.0) -> Schedule:
  r"""Polynomial decay from ``init_value`` to ``end_value`` over ``decay_steps``, then holds ``end_value``.

  .. math:: \eta_t = (\eta_0 - \eta_T)\left(1 - \frac{\min(t, T)}{T}\right)^p + \eta_T

  Args:
    init_value: :math:`\eta_0 \ge 0`.
    end_value: :math:`\eta_T \ge 0` (may exceed ``init_value`` for a polynomial ramp).
    decay_steps: :math:`T \ge 1`, an integer.
    power: :math:`p > 0`; 1 is linear decay.

  Returns:
    A schedule ``count -> value``. Equals ``optax.polynomial_schedule(η0, ηT, p, T)``.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> sched = lrt.polynomial_decay_schedule(1.0, 0.0, decay_steps=4, power=2.0)
    >>> [round(float(v), 4) for v in sched(jnp.arange(6))]
    [1.0, 0.5625, 0.25, 0.0625, 0.0, 0.0]

  References:
    Zhang et al., *Dive into Deep Learning* §12.11 (polynomial decay).
  """
  call = "polynomial_decay_schedule"
  check_nonnegative(call, "init_value", init_value)
  check_nonnegative(call, "end_value", end_value)
  check_integer(call, "decay_steps", decay_steps, 1)
  check_positive(call, "power", power)
  dtype = float_dtype(init_value, end_value, power)
  cdt = compute_dtype(dtype)

  def schedule(count):
    t = int_steps(count)
    total = as_steps(decay_steps, t.dtype)
    remaining = (total - jnp.minimum(t, total)).astype(cdt) / total.astype(cdt)  # exactly 0 from step T on
    init, end = jnp.asarray(init_value, cdt), jnp.asarray(end_value, cdt)
    return ((init - end) * remaining ** jnp.asarray(power, cdt) + end).astype(dtype)

  return schedule


def cosine_decay_schedule(init_value: Numeric, decay_steps: Numeric, end_value: Numeric = 0.0) -> Schedule:
  r"""Half-cosine decay from ``init_value`` to ``end_value`` over ``decay_steps``, then holds ``end_value``.

  .. math:: \eta_t = \eta_T + \frac{\eta_0 - \eta_T}{2}\left(1 + \cos\frac{\pi \min(t, T)}{T}\right)

  Combine with :func:`warmup_schedule` for D2L's CosineScheduler with warmup.

  Args:
    init_value: :math:`\eta_0 \ge 0`.
    decay_steps: :math:`T \ge 1`, an integer.
    end_value: :math:`\eta_T \in [0, \eta_0]`.

  Returns:
    A schedule ``count -> value``. Equals ``optax.cosine_decay_schedule(η0, T, alpha=ηT/η0)``.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> sched = lrt.cosine_decay_schedule(1.0, decay_steps=4, end_value=0.1)
    >>> [round(float(v), 4) for v in sched(jnp.arange(6))]
    [1.0, 0.8682, 0.55, 0.2318, 0.1, 0.1]

  References:
    Loshchilov & Hutter 2017, "SGDR"; Zhang et al., *Dive into Deep Learning* §12.11 (CosineScheduler).
  """
  call = "cosine_decay_schedule"
  check_nonnegative(call, "init_value", init_value)
  check_integer(call, "decay_steps", decay_steps, 1)
  check_nonnegative(call, "end_value", end_value)
  check_le(call, "end_value", end_value, "init_value", init_value)
  dtype = float_dtype(init_value, end_value)
  cdt = compute_dtype(dtype)

  def schedule(count):
    t = int_steps(count)
    total = as_steps(decay_steps, t.dtype)
    progress = jnp.minimum(t, total).astype(cdt) / total.astype(cdt)
    init, end = jnp.asarray(init_value, cdt), jnp.asarray(end_value, cdt)
    return (end + (init - end) * 0.5 * (1 + jnp.cos(jnp.pi * progress))).astype(dtype)

  return schedule
