"""Snapshot and checkpoint ensembles: the parameters at the end of every cycle, kept in optimizer state.

:func:`snapshot_ensemble` is a transform placed last in ``optax.chain``. It passes the updates through and,
at a step ``t`` that ends a cycle, copies the parameters AFTER that step (``params + updates``, i.e.
:math:`\\theta_{t+1}`) into a ring buffer of ``num_snapshots`` slots in its state, inside the compiled loop.
Cycle ends come from :func:`cycle_ends` (a list of steps, a cyclic schedule) or from a fixed period.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrtools._hyperparams import first_state, zero_count
from lrtools._typing import (INT32_MAX, Numeric, check_flag, check_integer, check_interval, check_steps, concrete,
                             fail)

MAX_SCHEDULE_STEPS = 2**24  # a schedule is evaluated on the host at every step: 16.7M float64 values at most
MAX_ENDS = 2**24  # steps listed by cycle_ends


class SnapshotState(NamedTuple):
  """State of :func:`snapshot_ensemble`.

  Attributes:
    count: int32 number of updates so far (saturating at 2**31 − 1).
    phase: int32 updates since the last cycle end modulo the period (int period form; 0 otherwise).
    snapshots: the parameters' pytree with a leading axis of ``num_snapshots`` slots (a ring buffer).
    steps: int32 ``(num_snapshots,)``, the step ``t`` whose result each slot holds (−1: empty).
    finite: bool ``(num_snapshots,)``, whether every value of the slot's snapshot is finite.
    next_slot: int32, the slot the next snapshot overwrites (the oldest one once the buffer is full).
    num_taken: int32 number of snapshots taken so far (saturating at 2**31 − 1).
  """
  count: jax.Array
  phase: jax.Array
  snapshots: optax.Params
  steps: jax.Array
  finite: jax.Array
  next_slot: jax.Array
  num_taken: jax.Array


class SnapshotBuffer(NamedTuple):
  """The whole buffer, oldest first, with fixed shapes (jittable): what :func:`snapshot_buffer` returns.

  Attributes:
    members: the snapshots stacked on a leading axis of ``num_snapshots``; empty slots hold zeros
      (nothing taken yet) and come last.
    valid: bool ``(num_snapshots,)``, True for the slots that hold a snapshot.
    finite: bool ``(num_snapshots,)``, True where every value of the snapshot is finite.
    steps: int32 ``(num_snapshots,)``, the step each snapshot was taken after (−1 for empty slots).
  """
  members: Any
  valid: jax.Array
  finite: jax.Array
  steps: jax.Array


def _schedule_values(schedule: Callable, num_steps: int) -> np.ndarray:
  steps = jnp.arange(num_steps + 1, dtype=jnp.int32)
  try:  # one compiled call (op-by-op dispatch compiles every primitive for a new length)
    values = jax.jit(schedule)(steps)
  except jax.errors.JAXTypeError:  # a schedule with Python control flow on the step
    values = schedule(steps)
  values = np.asarray(values, np.float64)
  if values.ndim == 0:  # a constant such as optax.constant_schedule's
    values = np.full(num_steps + 1, values)
  if values.shape != (num_steps + 1,) or not np.all(np.isfinite(values)):
    fail("cycle_ends", "schedule_or_period_or_steps", schedule,
         "must be a schedule of finite scalar values at steps 0 … num_steps")
  return values


def _restart_ends(values: np.ndarray, rtol: float) -> np.ndarray:
  """Steps ``t`` at a minimum of ``values`` that the values rise from by more than ``rtol`` of their range,
  after having fallen by as much since the previous one (hysteresis: no end at a warmup's start, none
  from float rounding)."""
  span = float(values.max() - values.min())
  if span == 0:
    return np.zeros(0, np.int32)
  margin, ties = rtol * span, 1e-6 * span  # ties: rounding noise at a flat minimum (float32 cosines)
  d = np.diff(values)
  sign = np.where(d > ties, 1, np.where(d < -ties, -1, 0))
  # Between two turning points the values are monotone (up to ties): only those points can be extrema.
  turns = np.flatnonzero(sign[1:] != sign[:-1]) + 1
  points = np.concatenate([[0], turns, [len(values) - 1]])
  ends, peak, trough, at, fallen = [], values[0], np.inf, -1, False
  for i in points:
    v = values[i]
    if not fallen:
      peak = max(peak, v)
      fallen = v < peak - margin
    if fallen:
      if v <= trough + ties:  # the last step of a flat minimum
        trough, at = min(trough, v), i
      elif v > trough + margin:  # the rise after the minimum at ``at``: a cycle ended there
        ends.append(at)
        peak, trough, at, fallen = v, np.inf, -1, False
  return np.asarray([e for e in ends if e < len(values) - 1], np.int32)


def cycle_ends(schedule_or_period_or_steps: Callable | int | Sequence[int], num_steps: int, *,
               rtol: float = 1e-3) -> np.ndarray:
  r"""The steps ``t < num_steps`` that end a cycle: the steps after which a snapshot is taken.

  Step ``t`` is the ``t``-th update (0-based), taken with the learning rate :math:`\eta_t`; a snapshot
  at ``t`` holds the parameters after it, :math:`\theta_{t+1}`. From:

  - an int ``period`` :math:`P` (checkpoints of one run): :math:`\{t : (t + 1) \bmod P = 0\}`;
  - a sequence of steps: those steps (validated: increasing, below ``num_steps``);
  - a schedule :math:`\eta`: evaluated once on the host at :math:`t = 0 … n` and every minimum it rises
    from is an end (the learning rate jumps, or climbs, back up):

    .. math:: t \text{ ends a cycle} \iff \eta_t = \min_{s \in (p, r)} \eta_s,\quad
              \eta_r > \eta_t + \epsilon,\quad \eta_{p} > \eta_t + \epsilon,\quad
              \epsilon = \text{rtol}\,(\max_s \eta_s - \min_s \eta_s)

    with :math:`p` the previous peak and :math:`r` the rise (the last step of a flat minimum is
    taken). SGDR (any ``cycle_mult``): :math:`t = S_{i+1} - 1`, the last step of each cycle; cyclical
    (triangular) schedules: the step at the LR minimum before it rises; WSD cycles (joined): the last
    step of the cooldown's end value before the next warmup. A warmup at the start is no end (nothing
    fell before it), and the last step is an end only if the schedule rises by more than :math:`\epsilon`
    at ``num_steps`` (an SGDR run of exactly ``M`` cycles ends its last cycle there). Cycles whose
    amplitude is below ``rtol`` of the range (a fast ``exp_range`` or ``max_decay`` decay) are not seen;
    steps that differ by less than ``1e-6`` of the range count as equal (float32 rounding at the flat
    bottom of a cosine), so the end is the last step of a minimum.

  Args:
    schedule_or_period_or_steps: a schedule ``step -> value``, a positive integer period, or a 1-D
      sequence of strictly increasing steps.
    num_steps: the run's length ``n``, a positive integer (at most 2**24 for a schedule, which is
      evaluated at every step).
    rtol: the rise and fall that count, relative to the schedule's range over the run, in (0, 1).

  Returns:
    A NumPy int32 array of the cycle-end steps, increasing.

  Example:
    >>> import lrtools as lrt
    >>> from lrtools.ensembles import cycle_ends
    >>> cycle_ends(lrt.sgdr_schedule(0.1, cycle_steps=10, cycle_mult=2.0), 70).tolist()
    [9, 29, 69]
    >>> cycle_ends(lrt.cyclical_schedule(0.01, 0.1, step_size_up=5), 40).tolist()
    [10, 20, 30]
    >>> cycle_ends(25, 100).tolist()
    [24, 49, 74, 99]

  References:
    Huang et al. 2017, "Snapshot Ensembles: Train 1, get M for free" (ICLR); Loshchilov & Hutter 2017
    (SGDR); Smith 2017 (cyclical learning rates).
  """
  call, name = "cycle_ends", "schedule_or_period_or_steps"
  check_integer(call, "num_steps", num_steps, 1)
  check_interval(call, "rtol", rtol, 0.0, 1.0, low_closed=False)
  source = schedule_or_period_or_steps
  if callable(source):
    if num_steps > MAX_SCHEDULE_STEPS:
      fail(call, "num_steps", num_steps, f"must be at most 2**24 for a schedule (evaluated at every step); "
           "pass the cycle ends as a list of steps")
    return _restart_ends(_schedule_values(source, int(num_steps)), float(rtol))
  if np.ndim(source) == 0 and not isinstance(source, (list, tuple)):
    check_integer(call, name, source, 1)
    period = concrete(source)
    if period is None:
      fail(call, name, source, "must be a concrete period here (a traced one works in snapshot_ensemble)")
    period = int(period)
    if num_steps // period > MAX_ENDS:
      fail(call, "num_steps", num_steps, f"must give at most 2**24 cycle ends (period {period})")
    return np.arange(period - 1, int(num_steps), period, dtype=np.int32)
  steps = _steps(call, name, source)
  if steps[-1] >= num_steps:
    fail(call, name, source, f"must be steps below num_steps={num_steps}")
  return steps


def _steps(call: str, name: str, steps: Any) -> np.ndarray:
  """A non-empty increasing list of steps in [0, 2**31 − 2] (the count saturates at 2**31 − 1)."""
  check_steps(call, name, steps)
  v = concrete(steps)
  if v is None:
    fail(call, name, steps, "must be concrete steps (not traced)")
  v = np.asarray(v).reshape(-1)
  if v.size == 0 or v[-1] > INT32_MAX - 1:
    fail(call, name, steps, "must be a non-empty list of steps, each at most 2**31 − 2")
  return v.astype(np.int32)


def snapshot_ensemble(period_or_schedule: Callable | Numeric | Sequence[int], num_snapshots: int, *,
                      num_steps: int | None = None) -> optax.GradientTransformation:
  r"""Collects the parameters at the end of every cycle, keeping the last ``num_snapshots`` (Huang et al.).

  Place it last in ``optax.chain`` and pass ``params`` to ``update``. At a step :math:`t` that ends a
  cycle (see :func:`cycle_ends`) it stores

  .. math:: \text{slot}_{k \bmod M} \leftarrow \theta_{t+1} = \theta_t + u_t

  the parameters after the step (the minimum-LR iterate of an SGDR cycle), for the :math:`k`-th
  snapshot, in a ring buffer of :math:`M` slots: the oldest is overwritten once :math:`k \ge M`. Updates
  pass through unchanged. Everything happens inside the compiled step (``jnp.where`` into a
  ``dynamic_update_slice``): no host round trip, no recompilation, and ``jax.vmap`` over seeds or
  configurations keeps one buffer per run. Memory: :math:`M` copies of the parameters.

  An int period :math:`P` takes a snapshot after every :math:`P`-th update (CS231n's checkpoint
  ensembles), counted by a phase in integers, so any period up to 2**31 − 1 and runs past 2**31 − 1
  steps work without a table. A list of steps or a schedule (with ``num_steps``, evaluated once on the
  host here) becomes a sorted table of steps compared with the int32 ``count``, which saturates at
  2**31 − 1 (so steps go up to 2**31 − 2).

  Non-finite parameters at a cycle end are still stored (the snapshot says what the run did), and the
  slot's ``finite`` flag is False: :func:`snapshots` with ``finite_only=True``, or
  ``ensemble_predict(..., mask=buffer.valid & buffer.finite)``, leaves them out.

  Args:
    period_or_schedule: an int period, a 1-D sequence of cycle-end steps, or a cyclic schedule (SGDR,
      cyclical, joined WSD); a period may be a tracer (``jax.vmap`` over periods).
    num_snapshots: :math:`M`, the number of snapshots kept, a positive integer.
    num_steps: the run's length; required with a schedule (see :func:`cycle_ends`).

  Returns:
    An ``optax.GradientTransformation`` with state :class:`SnapshotState`; read it with
    :func:`snapshots` or :func:`snapshot_buffer`.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from lrtools.ensembles import snapshot_ensemble, snapshots
    >>> opt = optax.chain(optax.sgd(1.0), snapshot_ensemble(3, num_snapshots=2))
    >>> params = jnp.zeros(1)
    >>> state = opt.init(params)
    >>> for _ in range(10):
    ...   updates, state = opt.update(-jnp.ones(1), state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> snapshots(state).tolist()  # after updates 3, 6, 9; the last two kept, oldest first
    [[6.0], [9.0]]

  References:
    Huang et al. 2017, "Snapshot Ensembles: Train 1, get M for free" (ICLR); Loshchilov & Hutter 2017
    (SGDR); CS231n "Neural Networks Part 3" (model ensembles: checkpoints of a single model).
  """
  call = "snapshot_ensemble"
  check_integer(call, "num_snapshots", num_snapshots, 1)
  if num_steps is not None:
    check_integer(call, "num_steps", num_steps, 1)
  source, name = period_or_schedule, "period_or_schedule"
  period, ends = None, None
  if callable(source):
    if num_steps is None:
      fail(call, "num_steps", num_steps, "is needed with a schedule (it is evaluated over the run)")
    ends = cycle_ends(source, num_steps)
  elif np.ndim(source) == 0 and not isinstance(source, (list, tuple)):
    check_integer(call, name, source, 1)
    period = source
  else:
    ends = _steps(call, name, source)
  if ends is not None and ends.size == 0:
    fail(call, name, source, f"has no cycle end within num_steps={num_steps} (see cycle_ends)")
  size = int(num_snapshots)

  def init_fn(params):
    buffer = jax.tree.map(lambda p: jnp.zeros((size, *jnp.shape(p)), jnp.asarray(p).dtype), params)
    return SnapshotState(zero_count(), zero_count(), buffer, jnp.full((size,), -1, jnp.int32),
                         jnp.ones((size,), bool), zero_count(), zero_count())

  def update_fn(updates, state, params=None):
    if params is None:
      fail(f"{call}.update", "params", params, "must be given: the snapshots are of the parameters")
    new = optax.apply_updates(params, updates)
    if period is not None:  # phase < period <= 2**31 − 1, so phase + 1 fits int32
      phase = (state.phase + 1) % jnp.asarray(period, jnp.int32)
      is_end = phase == 0
    else:
      table = jnp.asarray(ends)
      at = jnp.minimum(jnp.searchsorted(table, state.count), table.size - 1)
      phase, is_end = state.phase, table[at] == state.count  # a saturated count (2**31 − 1) is in no table
    slot = state.next_slot

    def put(buffer, value):
      return buffer.at[slot].set(jnp.where(is_end, value.astype(buffer.dtype), buffer[slot]))

    finite = jnp.asarray(True)
    for x in jax.tree.leaves(new):
      finite = finite & jnp.all(jnp.isfinite(x))
    return updates, SnapshotState(
        optax.safe_increment(state.count), phase, jax.tree.map(put, state.snapshots, new),
        put(state.steps, state.count), put(state.finite, finite),
        jnp.where(is_end, (slot + 1) % size, slot).astype(jnp.int32),
        jnp.where(is_end, optax.safe_increment(state.num_taken), state.num_taken))

  return optax.GradientTransformation(init_fn, update_fn)


def _state(call: str, opt_state: Any) -> SnapshotState:
  return first_state(call, opt_state, SnapshotState, "snapshot_ensemble state")


def snapshot_buffer(opt_state: Any) -> SnapshotBuffer:
  """Every slot of the buffer, oldest snapshot first, with fixed shapes: usable inside ``jax.jit``.

  Returns:
    A :class:`SnapshotBuffer` ``(members, valid, finite, steps)`` of leading size ``num_snapshots``
    (under ``jax.vmap``, batched like the state).

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from lrtools.ensembles import snapshot_buffer, snapshot_ensemble
    >>> opt = optax.chain(optax.sgd(1.0), snapshot_ensemble([1, 4], num_snapshots=3))
    >>> params, state = jnp.zeros(()), opt.init(jnp.zeros(()))
    >>> for _ in range(5):
    ...   updates, state = opt.update(-jnp.ones(()), state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> buf = snapshot_buffer(state)
    >>> buf.members.tolist(), buf.valid.tolist(), buf.steps.tolist()
    ([2.0, 5.0, 0.0], [True, True, False], [1, 4, -1])
  """
  state = _state("snapshot_buffer", opt_state)
  if state.steps.ndim != 1:
    fail("snapshot_buffer", "opt_state", type(opt_state).__name__,
         "must be one run's state (use jax.vmap(snapshot_buffer) on a batched one)")
  size = state.steps.shape[0]
  # Oldest first: from next_slot once the ring is full, else from slot 0 (empty slots then come last).
  start = jnp.where(state.num_taken >= size, state.next_slot, 0)
  order = (jnp.arange(size, dtype=jnp.int32) + start) % size
  steps = state.steps[order]
  return SnapshotBuffer(jax.tree.map(lambda x: x[order], state.snapshots), steps >= 0, state.finite[order], steps)


def snapshots(opt_state: Any, *, finite_only: bool = False) -> Any:
  """The snapshots taken so far (at most ``num_snapshots``), stacked on a leading axis, oldest first.

  On the host (the number taken decides the shape): not for ``jax.jit``; see :func:`snapshot_buffer`.

  Args:
    opt_state: a state holding a :func:`snapshot_ensemble` state (in a chain or other optax wrapper).
    finite_only: leave out the snapshots with a non-finite value.

  Returns:
    The parameters' pytree with a leading axis of the snapshots kept.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from lrtools.ensembles import snapshot_ensemble, snapshot_steps, snapshots
    >>> opt = optax.chain(optax.sgd(1.0), snapshot_ensemble(2, num_snapshots=4))
    >>> params, state = jnp.zeros(()), opt.init(jnp.zeros(()))
    >>> for _ in range(5):
    ...   updates, state = opt.update(-jnp.ones(()), state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> snapshots(state).tolist(), snapshot_steps(state).tolist()
    ([2.0, 4.0], [1, 3])
  """
  check_flag("snapshots", "finite_only", finite_only)
  buf = snapshot_buffer(_state("snapshots", opt_state))
  keep = np.asarray(buf.valid) & (np.asarray(buf.finite) if finite_only else True)
  index = np.flatnonzero(keep)
  return jax.tree.map(lambda x: x[index], buf.members)


def snapshot_steps(opt_state: Any) -> np.ndarray:
  """The step after which each kept snapshot was taken, oldest first (a NumPy int32 array)."""
  buf = snapshot_buffer(_state("snapshot_steps", opt_state))
  return np.asarray(buf.steps)[np.asarray(buf.valid)]
