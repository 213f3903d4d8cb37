"""Reduce on plateau: scale the updates down when a monitored metric stops improving.

The rule is the widely used ReduceLROnPlateau's, with one fix. Its relative threshold tests
``a < best·(1 − threshold)`` (mode min), which for a negative ``best`` is a *looser* bound than ``best``
itself, so a slightly worse value counts as an improvement and a negative loss (a log-likelihood, an
ELBO, a reward) never plateaus; ``optax.contrib.reduce_on_plateau`` inherits that. lrtools tests
``a < best − threshold·|best|`` (and ``a > best + threshold·|best|`` in mode max), identical for positive
values and correct for negative ones.

A non-finite evaluation (NaN, +inf or −inf, in the state's float dtype) counts as a bad one and never
becomes ``best``: in the widely used rule one ``−inf`` becomes ``best`` and nothing improves on it again,
so the rate is cut every ``patience + 1`` evaluations for the rest of training, and ``optax.apply_if_finite``
(which looks at the updates, not at the metric) does not catch it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lrtools._typing import (Numeric, check_integer, check_interval, check_nonnegative, check_number,
                             check_one_of)
from lrtools._hyperparams import first_state, state_dtype, zero_count
from lrtools._numerics import times


class ReduceOnPlateauState(NamedTuple):
  """State of :func:`reduce_on_plateau`.

  Attributes:
    count: int32 number of updates so far (saturating at 2**31 − 1).
    scale: the current multiplier of the updates (1 until the first reduction).
    best: best finite metric so far (``+inf`` in mode min, ``-inf`` in mode max before the first finite
      evaluation).
    num_bad: int32 evaluations without improvement since the last improvement, reduction or cooldown
      (saturating at 2**31 − 1, so ``patience=2**31 − 1`` never reduces).
    cooldown_counter: int32 evaluations left in the cooldown, during which bad ones are not counted.
    accumulated: sum of the metric values since the last evaluation (see ``accumulation_size``).
    num_accumulated: int32 number of those values.
  """
  count: jax.Array
  scale: jax.Array
  best: jax.Array
  num_bad: jax.Array
  cooldown_counter: jax.Array
  accumulated: jax.Array
  num_accumulated: jax.Array

  @property
  def hyperparams(self) -> dict[str, jax.Array]:
    """``{"plateau_scale": scale}``, read by ``current_hyperparams``."""
    return {"plateau_scale": self.scale}


def reduce_on_plateau(factor: Numeric = 0.1, patience: Numeric = 10, threshold: Numeric = 1e-4,
                      threshold_mode: str = "rel", mode: str = "min", cooldown: Numeric = 0,
                      min_scale: Numeric = 0.0, *, accumulation_size: Numeric = 1
                      ) -> optax.GradientTransformationExtraArgs:
  r"""Multiplies updates by a scale that drops by ``factor`` after ``patience`` bad evaluations.

  Each update receives the metric as ``update(updates, state, params, value=metric)``; every
  ``accumulation_size`` updates their mean is evaluated:

  .. math::
    \text{better}(a) = \begin{cases}
      a < \text{best} - \tau |\text{best}| & \text{min, rel} \qquad a < \text{best} - \tau \;\; \text{min, abs} \\
      a > \text{best} + \tau |\text{best}| & \text{max, rel} \qquad a > \text{best} + \tau \;\; \text{max, abs}
    \end{cases}

  A better value becomes ``best`` and resets the bad count; a worse, tied or non-finite one (NaN, ±inf:
  it never becomes ``best``; one such value in an accumulation window makes the window's mean
  non-finite) increments it; during a cooldown the count is held at zero. When the count exceeds
  ``patience``, ``scale ← max(scale·factor, min_scale)``, the cooldown restarts and the count resets.
  The new scale applies to the update of the same call. Put it after the optimizer in ``optax.chain``,
  which forwards ``value`` (a real scalar, or a tracer of shape ``()``) to it; with ``lr_in_velocity``
  momentum it rescales the whole velocity output.

  Args:
    factor: multiplier of the scale at each reduction, in [0, 1).
    patience: number of bad evaluations tolerated (non-negative integer).
    threshold: non-negative minimum improvement, relative to ``|best|`` or absolute.
    threshold_mode: ``"rel"`` or ``"abs"``.
    mode: ``"min"`` (the metric should decrease, a loss) or ``"max"`` (an accuracy).
    cooldown: evaluations after a reduction during which bad ones are not counted.
    min_scale: lower bound of the scale, in [0, 1].
    accumulation_size: number of updates whose mean metric makes one evaluation (1: every update).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with state :class:`ReduceOnPlateauState`.

  Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> from lrtools.transforms import reduce_on_plateau
    >>> tx = reduce_on_plateau(factor=0.5, patience=1)
    >>> state = tx.init(jnp.zeros(1))
    >>> for loss in [-1.0, -2.0, -2.0, -2.0, -3.0]:
    ...   u, state = tx.update(jnp.ones(1), state, value=loss)
    ...   print(np.round(float(state.scale), 4), end=" ")
    1.0 1.0 1.0 0.5 0.5

  References:
    The ReduceLROnPlateau rule of PyTorch and Keras, with the relative threshold fixed for negative
    metrics; CS231n "Neural Networks Part 3" (annealing the learning rate).
  """
  call = "reduce_on_plateau"
  check_interval(call, "factor", factor, 0.0, 1.0)
  check_integer(call, "patience", patience, 0)
  check_nonnegative(call, "threshold", threshold)
  check_one_of(call, "threshold_mode", threshold_mode, ("rel", "abs"))
  check_one_of(call, "mode", mode, ("min", "max"))
  check_integer(call, "cooldown", cooldown, 0)
  check_interval(call, "min_scale", min_scale, 0.0, 1.0, high_closed=True)
  check_integer(call, "accumulation_size", accumulation_size, 1)
  sign = 1.0 if mode == "min" else -1.0  # mode max is mode min on the negated metric

  def init_fn(params):
    del params
    dtype = state_dtype()
    zero = zero_count  # a fresh buffer per field, so that the state can be donated
    return ReduceOnPlateauState(zero(), jnp.ones([], dtype), jnp.asarray(sign * jnp.inf, dtype), zero(),
                                zero(), jnp.zeros([], dtype), zero())

  def update_fn(updates, state, params=None, *, value, **extra_args):
    del params, extra_args
    check_number("reduce_on_plateau.update", "value", value)
    dtype = state_dtype()
    int32 = lambda x: jnp.asarray(x, jnp.int32)  # hyperparameters of any integer dtype, strict promotion
    accumulated = state.accumulated + jnp.asarray(value, dtype)
    num_accumulated = optax.safe_increment(state.num_accumulated)
    evaluate = num_accumulated >= int32(accumulation_size)
    # Work on sign·metric, so that lower is always better (mode max is mode min on −metric).
    a = sign * accumulated / num_accumulated.astype(dtype)
    previous = sign * state.best
    tau = jnp.asarray(threshold, dtype)
    slack = tau * jnp.abs(previous) if threshold_mode == "rel" else tau
    # Before the first evaluation best is inf and inf − τ·inf is NaN: compare with inf itself.
    bound = jnp.where(jnp.isinf(previous), previous, previous - slack)
    better = jnp.isfinite(a) & (a < bound)  # NaN compares false, but −inf would become best forever
    best = sign * jnp.where(better, a, previous)
    num_bad = jnp.where(better, 0, optax.safe_increment(state.num_bad))
    in_cooldown = state.cooldown_counter > 0
    cooldown_counter = jnp.where(in_cooldown, state.cooldown_counter - 1, state.cooldown_counter)
    num_bad = jnp.where(in_cooldown, 0, num_bad)
    reduce = num_bad > int32(patience)
    scale = jnp.where(reduce, jnp.maximum(state.scale * jnp.asarray(factor, dtype),
                                          jnp.asarray(min_scale, dtype)), state.scale)
    cooldown_counter = jnp.where(reduce, int32(cooldown), cooldown_counter)
    num_bad = jnp.where(reduce, 0, num_bad).astype(jnp.int32)

    def pick(new, old):
      return jnp.where(evaluate, new, old)

    new_state = ReduceOnPlateauState(
        count=optax.safe_increment(state.count),
        scale=pick(scale, state.scale),
        best=pick(best, state.best),
        num_bad=pick(num_bad, state.num_bad),
        cooldown_counter=pick(cooldown_counter, state.cooldown_counter),
        accumulated=pick(jnp.zeros_like(accumulated), accumulated),
        num_accumulated=pick(jnp.zeros_like(num_accumulated), num_accumulated).astype(jnp.int32),
    )
    updates = jax.tree.map(lambda u: times(new_state.scale, u), updates)
    return updates, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def plateau_scale(opt_state: Any) -> jax.Array:
  """The current scale of the first :func:`reduce_on_plateau` state found in ``opt_state``.

  Args:
    opt_state: an optimizer state containing a :class:`ReduceOnPlateauState` (e.g. inside a chain).

  Returns:
    The scalar multiplier the last update was scaled by.

  Example:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> from lrtools.transforms import reduce_on_plateau, plateau_scale
    >>> opt = optax.chain(optax.sgd(0.1), reduce_on_plateau(patience=0))
    >>> state = opt.init(jnp.zeros(1))
    >>> for loss in [1.0, 1.0]:
    ...   _, state = opt.update(jnp.ones(1), state, value=loss)
    >>> print(np.round(float(plateau_scale(state)), 4))
    0.1
  """
  return first_state("plateau_scale", opt_state, ReduceOnPlateauState, "ReduceOnPlateauState").scale
