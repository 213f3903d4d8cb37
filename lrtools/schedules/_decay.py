"""Monotone decay schedules: constant, step, multistep, exponential, 1/t, polynomial and cosine.

Every numeric argument may be a Python number, an array or a tracer; validation runs on concrete values
at construction, so a schedule can be built inside ``jax.jit``/``jax.vmap`` from traced hyperparameters.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from lrtools._typing import (Numeric, Schedule, check_finite, check_steps, check_interval, check_le,
                             check_nonnegative, check_positive, float_dtype)
from lrtools.schedules._arith import floor_div, steps


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
    step_size: :math:`s > 0`, steps between decays (exact integer arithmetic at every decay).
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
  check_positive(call, "step_size", step_size)
  check_interval(call, "factor", factor, 0.0, 1.0, low_closed=False, high_closed=True)
  check_nonnegative(call, "min_value", min_value)
  check_le(call, "min_value", min_value, "init_value", init_value)
  dtype = float_dtype(init_value, factor, min_value)

  def schedule(count):
    t = steps(count, dtype)
    num_decays = floor_div(t, jnp.asarray(step_size, dtype))
    return jnp.maximum(init_value * jnp.asarray(factor, dtype) ** num_decays, jnp.asarray(min_value, dtype))

  return schedule


def multistep_schedule(init_value: Numeric, milestones: Sequence[Numeric] | Numeric,
                       factor: Numeric = 0.1) -> Schedule:
  r"""Multiplies the value by ``factor`` at each milestone step.

  .. math:: \eta_t = \eta_0 \cdot f^{\,|\{m_i \,:\, m_i \le t\}|}

  Args:
    init_value: :math:`\eta_0 \ge 0`.
    milestones: non-negative, strictly increasing steps (a list, an array, or a traced array).
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

  def schedule(count):
    t = steps(count, dtype)
    marks = jnp.asarray(milestones, dtype)
    passed = jnp.sum(t[..., None] >= marks, axis=-1)
    return init_value * jnp.asarray(factor, dtype) ** passed.astype(dtype)

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

  def schedule(count):
    return init_value * jnp.exp(-jnp.asarray(rate, dtype) * steps(count, dtype))

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

  def schedule(count):
    return init_value / (1 + jnp.asarray(rate, dtype) * steps(count, dtype))

  return schedule


def polynomial_decay_schedule(init_value: Numeric, end_value: Numeric, decay_steps: Numeric,
                              power: Numeric = 1.0) -> Schedule:
  r"""Polynomial decay from ``init_value`` to ``end_value`` over ``decay_steps``, then holds ``end_value``.

  .. math:: \eta_t = (\eta_0 - \eta_T)\left(1 - \frac{\min(t, T)}{T}\right)^p + \eta_T

  Args:
    init_value: :math:`\eta_0 \ge 0`.
    end_value: :math:`\eta_T \ge 0` (may exceed ``init_value`` for a polynomial ramp).
    decay_steps: :math:`T > 0`.
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
  check_positive(call, "decay_steps", decay_steps)
  check_positive(call, "power", power)
  dtype = float_dtype(init_value, end_value, power)

  def schedule(count):
    total = jnp.asarray(decay_steps, dtype)
    remaining = (total - jnp.minimum(steps(count, dtype), total)) / total  # exactly 0 from step T on
    return (init_value - jnp.asarray(end_value, dtype)) * remaining ** jnp.asarray(power, dtype) + end_value

  return schedule


def cosine_decay_schedule(init_value: Numeric, decay_steps: Numeric, end_value: Numeric = 0.0) -> Schedule:
  r"""Half-cosine decay from ``init_value`` to ``end_value`` over ``decay_steps``, then holds ``end_value``.

  .. math:: \eta_t = \eta_T + \frac{\eta_0 - \eta_T}{2}\left(1 + \cos\frac{\pi \min(t, T)}{T}\right)

  Combine with :func:`warmup_schedule` for D2L's CosineScheduler with warmup.

  Args:
    init_value: :math:`\eta_0 \ge 0`.
    decay_steps: :math:`T > 0`.
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
  check_positive(call, "decay_steps", decay_steps)
  check_nonnegative(call, "end_value", end_value)
  check_le(call, "end_value", end_value, "init_value", init_value)
  dtype = float_dtype(init_value, end_value)

  def schedule(count):
    total = jnp.asarray(decay_steps, dtype)
    progress = jnp.minimum(steps(count, dtype), total) / total
    return end_value + (init_value - jnp.asarray(end_value, dtype)) * 0.5 * (1 + jnp.cos(jnp.pi * progress))

  return schedule
