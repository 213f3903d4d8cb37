"""Cyclical schedules: Smith's triangular family (CLR), cyclical momentum, and the one-cycle policy."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from lrtools._typing import (INT32_MAX, Numeric, Schedule, check_flag, check_integer, check_interval, check_le,
                             check_nonnegative, check_one_of, concrete, float_dtype)
from lrtools.schedules._arith import as_steps, compute_dtype, count_reached, int_steps, offset, split_real

CYCLICAL_MODES = ("triangular", "triangular2", "exp_range")
ANNEAL_MODES = ("cos", "linear")


def _check_cycle(call: str, step_size_up, step_size_down, mode: str, gamma) -> None:
  check_integer(call, "step_size_up", step_size_up, 1)
  check_integer(call, "step_size_down", step_size_down, 1)
  up, down = concrete(step_size_up), concrete(step_size_down)
  if up is not None and down is not None and int(up) + int(down) > INT32_MAX:
    raise ValueError(f"`{call}(step_size_up=..., step_size_down=...)` needs a cycle that fits int32 "
                     f"(up + down <= 2**31 - 1), got step_size_up={step_size_up!r}, "
                     f"step_size_down={step_size_down!r}")
  check_one_of(call, "mode", mode, CYCLICAL_MODES)
  check_interval(call, "gamma", gamma, 0.0, 1.0, low_closed=False, high_closed=True)


def _cycle_height(count, step_size_up, step_size_down, mode, gamma, cdt) -> jnp.ndarray:
  """Fraction of the amplitude reached at ``count``: a triangle in [0, 1] times the mode's scaling."""
  t = int_steps(count)
  up, down = as_steps(step_size_up, t.dtype), as_steps(step_size_down, t.dtype)
  period = up + down
  completed = t // period  # = cycle − 1 in Smith's notation; integer, so exact for every int32 step
  position = t - completed * period
  rising = position <= up
  triangle = jnp.where(rising, position, period - position).astype(cdt) / jnp.where(rising, up, down).astype(cdt)
  if mode == "triangular2":
    return triangle * jnp.asarray(0.5, cdt) ** completed.astype(cdt)
  if mode == "exp_range":
    return triangle * jnp.asarray(gamma, cdt) ** t.astype(cdt)
  return triangle


def cyclical_schedule(base_value: Numeric, max_value: Numeric, step_size_up: Numeric,
                      step_size_down: Numeric | None = None, mode: str = "triangular",
                      gamma: Numeric = 1.0) -> Schedule:
  r"""Smith's cyclical learning rate (CLR): triangular, triangular2 or exp_range, possibly asymmetric.

  With period :math:`P = s_{up} + s_{down}`, completed cycles :math:`c = \lfloor t / P \rfloor` and
  position :math:`p = t - cP`:

  .. math::
     h_t = \begin{cases} p / s_{up} & p \le s_{up} \\ (P - p)/s_{down} & \text{otherwise}\end{cases},\qquad
     \eta_t = \eta_{base} + (\eta_{max} - \eta_{base})\, h_t\, a_t

  with :math:`a_t = 1` (triangular), :math:`2^{-c}` (triangular2) or :math:`\gamma^t` (exp_range). For
  :math:`s_{up} = s_{down} = s` this is Smith's ``cycle = ⌊1 + t/2s⌋, x = |t/s − 2 cycle + 1|,
  η = base + (max − base)·max(0, 1 − x)``, and it matches the widely used CyclicLR at every step. Phase
  changes use integer arithmetic, so they land on the right step for every int32 step (0 … 2**31 − 1), in
  float32 and bfloat16 too.

  Args:
    base_value: lower bound :math:`\eta_{base} \ge 0`.
    max_value: upper bound :math:`\eta_{max} \ge \eta_{base}`.
    step_size_up: integer steps from base to max (Smith: 2–10 epochs of iterations), >= 1; up + down must fit int32.
    step_size_down: steps from max back to base; defaults to ``step_size_up``.
    mode: ``"triangular"``, ``"triangular2"`` (amplitude halves each cycle) or ``"exp_range"``.
    gamma: :math:`\gamma \in (0, 1]`, the per-step amplitude decay of exp_range.

  Returns:
    A schedule ``count -> value``.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> sched = lrt.cyclical_schedule(0.1, 0.5, step_size_up=2, step_size_down=1, mode="triangular2")
    >>> [round(float(v), 4) for v in sched(jnp.arange(7))]
    [0.1, 0.3, 0.5, 0.1, 0.2, 0.3, 0.1]

  References:
    Smith 2017, "Cyclical Learning Rates for Training Neural Networks" (WACV), §3.1.
  """
  call = "cyclical_schedule"
  step_size_down = step_size_up if step_size_down is None else step_size_down
  check_nonnegative(call, "base_value", base_value)
  check_nonnegative(call, "max_value", max_value)
  check_le(call, "base_value", base_value, "max_value", max_value)
  _check_cycle(call, step_size_up, step_size_down, mode, gamma)
  dtype = float_dtype(base_value, max_value, gamma)
  cdt = compute_dtype(dtype)

  def schedule(count):
    height = _cycle_height(count, step_size_up, step_size_down, mode, gamma, cdt)
    base, high = jnp.asarray(base_value, cdt), jnp.asarray(max_value, cdt)
    return (base + (high - base) * height).astype(dtype)

  return schedule


def cyclical_momentum_schedule(base_momentum: Numeric, max_momentum: Numeric, step_size_up: Numeric,
                               step_size_down: Numeric | None = None, mode: str = "triangular",
                               gamma: Numeric = 1.0) -> Schedule:
  r"""Cyclical momentum: the mirror image of :func:`cyclical_schedule`, high when the LR is low.

  .. math:: \mu_t = \mu_{max} - (\mu_{max} - \mu_{base})\, h_t\, a_t

  with :math:`h_t, a_t` as in :func:`cyclical_schedule`, so pairing both with the same cycle arguments
  moves momentum down while the learning rate goes up (Smith 2018's recommendation, and CyclicLR's
  ``cycle_momentum``).

  Args:
    base_momentum: lowest momentum, in [0, 1).
    max_momentum: highest momentum, in [base_momentum, 1).
    step_size_up: integer steps while momentum falls (the LR rises), >= 1.
    step_size_down: steps while momentum rises; defaults to ``step_size_up``.
    mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
    gamma: :math:`\gamma \in (0, 1]` for exp_range.

  Returns:
    A schedule ``count -> momentum``.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> sched = lrt.cyclical_momentum_schedule(0.85, 0.95, step_size_up=2)
    >>> [round(float(v), 4) for v in sched(jnp.arange(5))]
    [0.95, 0.9, 0.85, 0.9, 0.95]

  References:
    Smith 2018, "A disciplined approach to neural network hyper-parameters: Part 1", §4.
  """
  call = "cyclical_momentum_schedule"
  step_size_down = step_size_up if step_size_down is None else step_size_down
  check_interval(call, "base_momentum", base_momentum, 0.0, 1.0)
  check_interval(call, "max_momentum", max_momentum, 0.0, 1.0)
  check_le(call, "base_momentum", base_momentum, "max_momentum", max_momentum)
  _check_cycle(call, step_size_up, step_size_down, mode, gamma)
  dtype = float_dtype(base_momentum, max_momentum, gamma)
  cdt = compute_dtype(dtype)

  def schedule(count):
    height = _cycle_height(count, step_size_up, step_size_down, mode, gamma, cdt)
    base, high = jnp.asarray(base_momentum, cdt), jnp.asarray(max_momentum, cdt)
    return (high - (high - base) * height).astype(dtype)

  return schedule


def _phase_ends(total_steps, pct_start, three_phase: bool, cdt=jnp.float32) -> list:
  """Last step of each phase, as OneCycleLR places them (real numbers, not rounded): in float64 on the
  host when the arguments are concrete, in ``cdt`` when traced."""
  total, pct = concrete(total_steps), concrete(pct_start)
  if total is not None and pct is not None:
    total_steps, pct_start = np.float64(total), np.float64(pct)
  else:
    total_steps, pct_start = jnp.asarray(total_steps, cdt), jnp.asarray(pct_start, cdt)
  warm = pct_start * total_steps - 1
  if three_phase:
    return [warm, 2 * pct_start * total_steps - 2, total_steps - 1]
  return [warm, total_steps - 1]


def _check_one_cycle(call: str, total_steps, pct_start, anneal: str, three_phase: bool) -> None:
  check_integer(call, "total_steps", total_steps, 1)
  check_interval(call, "pct_start", pct_start, 0.0, 1.0, low_closed=False)
  check_one_of(call, "anneal", anneal, ANNEAL_MODES)
  check_flag(call, "three_phase", three_phase)
  total, pct = concrete(total_steps), concrete(pct_start)
  if total is None or pct is None:
    return
  ends = [np.zeros(())] + [np.asarray(e, np.float64) for e in _phase_ends(total, pct, bool(three_phase))]
  if not all(np.all(b > a) for a, b in zip(ends, ends[1:])):
    raise ValueError(f"`{call}(total_steps=..., pct_start=...)` leaves a phase without steps, "
                     f"got total_steps={total_steps!r}, pct_start={pct_start!r}")


def _anneal_phases(count, ends, values, anneal: str, dtype) -> jnp.ndarray:
  """Anneals between ``values[i]`` and ``values[i+1]`` over phase i, which ends at the real step ``ends[i]``.

  The phase is chosen by integer comparisons (``t > e`` iff ``t > ⌊e⌋``) and the position in it is
  ``t − start`` with the integer parts subtracted first, so both are exact for every int32 step.
  """
  cdt = compute_dtype(dtype)
  t = int_steps(count)
  parts = [split_real(e, cdt) for e in [0, *ends]]
  whole = jnp.stack([w for w, _ in parts])
  frac = jnp.stack([f for _, f in parts])
  values = jnp.stack([jnp.asarray(v, cdt) for v in values])
  phase = count_reached(t, whole[1:-1], strict=True)  # OneCycleLR: the first phase with t <= end
  position = offset(t, whole[phase], frac[phase], cdt)
  length = (whole[phase + 1] - whole[phase]).astype(cdt) + (frac[phase + 1] - frac[phase])
  pct = jnp.clip(position / jnp.where(length > 0, length, 1), 0, 1)  # holds the last value after the end
  begin, finish = values[phase], values[phase + 1]
  # A convex combination w·begin + (1 − w)·finish is exact at both ends, unlike finish + (begin − finish)·w,
  # which loses the small end value to cancellation (9e-6 relative at one-cycle's start in float32).
  w = (jnp.cos(jnp.pi * pct) + 1) / 2 if anneal == "cos" else 1 - pct
  out = w * begin + (1 - w) * finish
  return out.astype(dtype)


def one_cycle_schedule(total_steps: Numeric, max_value: Numeric, pct_start: Numeric = 0.3,
                       div_factor: Numeric = 25.0, final_div_factor: Numeric = 1e4, anneal: str = "cos",
                       three_phase: bool = False) -> Schedule:
  r"""Smith & Topin's one-cycle learning-rate policy, with the semantics of the widely used OneCycleLR.

  With :math:`\eta_0 = \eta_{max}/d`, :math:`\eta_{min} = \eta_0/d_f`, phase 1 anneals
  :math:`\eta_0 \to \eta_{max}` over steps :math:`[0, pT-1]`, then (two phases) :math:`\eta_{max} \to
  \eta_{min}` until step :math:`T-1`, or (three phases) :math:`\eta_{max} \to \eta_0` until :math:`2pT-2`
  and :math:`\eta_0 \to \eta_{min}` until :math:`T-1`. Within a phase of progress :math:`x \in [0, 1]`:

  .. math:: \text{cos: } b + \tfrac{a - b}{2}(1 + \cos \pi x), \qquad \text{linear: } a + (b - a)\,x

  The value holds :math:`\eta_{min}` after step :math:`T-1` (OneCycleLR raises there). The phase is chosen
  by integer comparison with the phase ends (computed in float64 when the arguments are concrete), so phase
  changes land on the right step for every int32 step and any ``total_steps`` up to 2**31 − 1.

  Args:
    total_steps: :math:`T \ge 1`, an integer, the length of the cycle.
    max_value: peak learning rate :math:`\eta_{max} \ge 0` (pick it with the LR range test).
    pct_start: :math:`p \in (0, 1)`, the fraction of steps spent increasing.
    div_factor: :math:`d \ge 1`, initial value is ``max_value / div_factor``.
    final_div_factor: :math:`d_f \ge 1`, final value is ``initial / final_div_factor``.
    anneal: ``"cos"`` or ``"linear"``.
    three_phase: use the symmetric three-phase variant (fastai's original).

  Returns:
    A schedule ``count -> value``.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> sched = lrt.one_cycle_schedule(6, 1.0, pct_start=0.5, div_factor=10, final_div_factor=10, anneal="linear")
    >>> [round(float(v), 4) for v in sched(jnp.arange(6))]
    [0.1, 0.55, 1.0, 0.67, 0.34, 0.01]

  References:
    Smith & Topin 2018, "Super-Convergence: Very Fast Training of Neural Networks Using Large Learning Rates".
  """
  call = "one_cycle_schedule"
  _check_one_cycle(call, total_steps, pct_start, anneal, three_phase)
  check_nonnegative(call, "max_value", max_value)
  check_interval(call, "div_factor", div_factor, 1.0, float("inf"))
  check_interval(call, "final_div_factor", final_div_factor, 1.0, float("inf"))
  dtype = float_dtype(max_value, pct_start, div_factor, final_div_factor)

  def schedule(count):
    cdt = compute_dtype(dtype)
    peak = jnp.asarray(max_value, cdt)
    initial = peak / jnp.asarray(div_factor, cdt)
    final = initial / jnp.asarray(final_div_factor, cdt)
    values = [initial, peak, initial, final] if three_phase else [initial, peak, final]
    return _anneal_phases(count, _phase_ends(total_steps, pct_start, three_phase, cdt), values, anneal, dtype)

  return schedule


def one_cycle_momentum_schedule(total_steps: Numeric, base_momentum: Numeric = 0.85,
                                max_momentum: Numeric = 0.95, pct_start: Numeric = 0.3, anneal: str = "cos",
                                three_phase: bool = False) -> Schedule:
  r"""The momentum half of the one-cycle policy: falls while the LR rises, and rises back.

  Same phases as :func:`one_cycle_schedule`, going :math:`\mu_{max} \to \mu_{base} \to \mu_{max}` (two
  phases) or :math:`\mu_{max} \to \mu_{base} \to \mu_{max} \to \mu_{max}` (three phases), as OneCycleLR's
  ``cycle_momentum``. Use it as ``b1`` of Adam or the momentum of SGD.

  Args:
    total_steps: :math:`T \ge 1`, an integer; use the same value as the LR's one-cycle.
    base_momentum: lowest momentum, in [0, 1).
    max_momentum: highest momentum, in [base_momentum, 1).
    pct_start: :math:`p \in (0, 1)`.
    anneal: ``"cos"`` or ``"linear"``.
    three_phase: the three-phase variant.

  Returns:
    A schedule ``count -> momentum``.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> sched = lrt.one_cycle_momentum_schedule(6, 0.85, 0.95, pct_start=0.5, anneal="linear")
    >>> [round(float(v), 4) for v in sched(jnp.arange(6))]
    [0.95, 0.9, 0.85, 0.8833, 0.9167, 0.95]

  References:
    Smith 2018, "A disciplined approach to neural network hyper-parameters: Part 1", §4.
  """
  call = "one_cycle_momentum_schedule"
  _check_one_cycle(call, total_steps, pct_start, anneal, three_phase)
  check_interval(call, "base_momentum", base_momentum, 0.0, 1.0)
  check_interval(call, "max_momentum", max_momentum, 0.0, 1.0)
  check_le(call, "base_momentum", base_momentum, "max_momentum", max_momentum)
  dtype = float_dtype(base_momentum, max_momentum, pct_start)

  def schedule(count):
    values = ([max_momentum, base_momentum, max_momentum, max_momentum] if three_phase
              else [max_momentum, base_momentum, max_momentum])
    ends = _phase_ends(total_steps, pct_start, three_phase, compute_dtype(dtype))
    return _anneal_phases(count, ends, values, anneal, dtype)

  return schedule
