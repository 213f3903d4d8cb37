"""Warmup-stable-decay (WSD): the trapezoid schedule of recent LLM training."""

from __future__ import annotations

import jax.numpy as jnp

from lrtools._typing import (Numeric, Schedule, check_integer, check_nonnegative, check_one_of, concrete,
                             float_dtype)
from lrtools.schedules._arith import as_steps, compute_dtype, int_steps

WARMUP_SHAPES = ("linear", "cosine")
DECAY_SHAPES = ("linear", "1-sqrt", "cosine", "square")


def _warmup_shape(shape: str, x):
  return x if shape == "linear" else 0.5 * (1 - jnp.cos(jnp.pi * x))


def _decay_shape(shape: str, x):
  if shape == "linear":
    return 1 - x
  if shape == "1-sqrt":
    return 1 - jnp.sqrt(x)
  if shape == "cosine":
    return 0.5 * (1 + jnp.cos(jnp.pi * x))
  return 1 - x * x


def wsd_schedule(peak_value: Numeric, total_steps: Numeric, warmup_steps: Numeric = 0,
                 decay_steps: Numeric | None = None, *, init_value: Numeric = 0.0, end_value: Numeric = 0.0,
                 warmup_shape: str = "linear", decay_shape: str = "1-sqrt") -> Schedule:
  r"""Warmup-stable-decay: ramp up, hold the peak, then cool down over the last ``decay_steps``.

  With warmup :math:`W`, total :math:`T`, cooldown :math:`D` and cooldown start :math:`C = T - D`:

  .. math::
     \eta_t = \begin{cases}
       \eta_{init} + (\eta_{peak} - \eta_{init})\, w(t/W) & t < W \\
       \eta_{peak} & W \le t < C \\
       \eta_{end} + (\eta_{peak} - \eta_{end})\, s\big((t - C)/D\big) & C \le t < T \\
       \eta_{end} & t \ge T
     \end{cases}

  with warmup shape :math:`w(x) = x` (``linear``) or :math:`\tfrac12(1 - \cos \pi x)` (``cosine``) and
  cooldown shape :math:`s(x) = 1 - x` (``linear``), :math:`1 - \sqrt{x}` (``1-sqrt``, Hägele et al.'s
  best), :math:`\tfrac12(1 + \cos \pi x)` (``cosine``) or :math:`1 - x^2` (``square``). Unlike a cosine
  schedule the run length need not be fixed in advance: the stable phase can be continued and cooled down
  from any checkpoint. Phases are chosen by integer step arithmetic (exact for every int32 step).

  Args:
    peak_value: :math:`\eta_{peak} \ge 0`, the value of the stable phase.
    total_steps: :math:`T \ge 1`, an integer: the step at which ``end_value`` is reached.
    warmup_steps: :math:`W \ge 0`, an integer.
    decay_steps: :math:`D \ge 0`, an integer with :math:`W + D \le T`; default :math:`\lfloor T/5 \rfloor`
      (20%, the papers' usual cooldown).
    init_value: :math:`\eta_{init} \ge 0`, the value at step 0.
    end_value: :math:`\eta_{end} \ge 0`, the value from step :math:`T` on (0: decay to zero, Bergsma et al.).
    warmup_shape: ``"linear"`` or ``"cosine"``.
    decay_shape: ``"linear"``, ``"1-sqrt"``, ``"cosine"`` or ``"square"``.

  Returns:
    A schedule ``count -> value``. Every numeric argument may be a tracer.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> sched = lrt.wsd_schedule(1.0, total_steps=10, warmup_steps=2, decay_steps=4, decay_shape="linear")
    >>> [round(float(v), 4) for v in sched(jnp.arange(12))]
    [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]

  References:
    Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations";
    Hu et al. 2024, "MiniCPM" (WSD); Bergsma et al. 2025, "Straight to Zero: Why Linearly Decaying the
    Learning Rate to Zero Works Best for LLMs".
  """
  call = "wsd_schedule"
  check_nonnegative(call, "peak_value", peak_value)
  check_integer(call, "total_steps", total_steps, 1)
  check_integer(call, "warmup_steps", warmup_steps, 0)
  defaulted = decay_steps is None
  if defaulted:
    decay_steps = total_steps // 5
  else:
    check_integer(call, "decay_steps", decay_steps, 0)
  check_nonnegative(call, "init_value", init_value)
  check_nonnegative(call, "end_value", end_value)
  check_one_of(call, "warmup_shape", warmup_shape, WARMUP_SHAPES)
  check_one_of(call, "decay_shape", decay_shape, DECAY_SHAPES)
  total, warm, decay = concrete(total_steps), concrete(warmup_steps), concrete(decay_steps)
  if total is not None and warm is not None and decay is not None and not int(warm) + int(decay) <= int(total):
    raise ValueError(f"`{call}(warmup_steps=..., decay_steps=...)` needs warmup_steps + decay_steps <= "
                     f"total_steps={total_steps!r}, got warmup_steps={warmup_steps!r}, decay_steps={decay_steps!r}"
                     + (" (the default, total_steps // 5)" if defaulted else ""))
  dtype = float_dtype(peak_value, init_value, end_value)
  cdt = compute_dtype(dtype)

  def schedule(count):
    t = int_steps(count)
    total_t, warm_t, decay_t = (as_steps(v, t.dtype) for v in (total_steps, warmup_steps, decay_steps))
    cool_start = total_t - decay_t
    peak, init, end = (jnp.asarray(v, cdt) for v in (peak_value, init_value, end_value))
    up = init + (peak - init) * _warmup_shape(warmup_shape, t.astype(cdt) / jnp.maximum(warm_t, 1).astype(cdt))
    x = jnp.clip((t - cool_start).astype(cdt) / jnp.maximum(decay_t, 1).astype(cdt), 0, 1)
    down = end + (peak - end) * _decay_shape(decay_shape, x)
    value = jnp.where(t < warm_t, up, jnp.where(t >= total_t, end, jnp.where(t < cool_start, peak, down)))
    return value.astype(dtype)

  return schedule


