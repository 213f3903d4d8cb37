"""The one path through which every lrtools optimizer applies its learning rate."""

from __future__ import annotations

from typing import NamedTuple

import jax
import optax

from lrtools._hyperparams import check, resolve_all, zero_count
from lrtools._typing import ScalarOrSchedule, check_flag, check_nonnegative
from lrtools._numerics import times


class ScaleByLearningRateState(NamedTuple):
  """State of :func:`scale_by_learning_rate`.

  Attributes:
    count: int32 number of updates so far; the schedule is evaluated at it.
    hyperparams: ``{"learning_rate": value}`` used by the last update (before the first update, the
      value the first update will use).
  """
  count: jax.Array
  hyperparams: dict[str, jax.Array]


def scale_by_learning_rate(learning_rate: ScalarOrSchedule, *, flip_sign: bool = True
                           ) -> optax.GradientTransformation:
  r"""Scales updates by the learning rate (a number, array, tracer or schedule) and records it.

  .. math::
    u_t = -\eta_t \, g_t \quad (\text{or } +\eta_t g_t \text{ when } \texttt{flip\_sign=False})

  The one path through which every lrtools optimizer applies its learning rate. Unlike
  ``optax.scale_by_learning_rate`` its state keeps the value used, read by :func:`current_hyperparams`.

  Args:
    learning_rate: non-negative finite number, array, tracer or ``step -> value`` schedule.
    flip_sign: negate the update (descent); ``False`` for an ascent direction.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`ScaleByLearningRateState`.

  Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> from lrtools.optimizers import scale_by_learning_rate, current_hyperparams
    >>> from lrtools.schedules import inverse_time_decay_schedule
    >>> tx = scale_by_learning_rate(inverse_time_decay_schedule(0.1, rate=1.0))  # 0.1 / (1 + t)
    >>> state = tx.init(jnp.zeros(2))
    >>> u, state = tx.update(jnp.ones(2), state)
    >>> u, state = tx.update(jnp.ones(2), state)
    >>> print(np.round(np.asarray(u), 4), np.round(float(current_hyperparams(state)["learning_rate"]), 4))
    [-0.05 -0.05] 0.05

  References:
    CS231n, "Neural Networks Part 3: Learning and Evaluation" (parameter updates).
  """
  check_learning_rate("scale_by_learning_rate", learning_rate)
  check_flag("scale_by_learning_rate", "flip_sign", flip_sign)
  return build_scale_by_learning_rate(learning_rate, flip_sign=flip_sign)


def check_learning_rate(call: str, learning_rate: ScalarOrSchedule) -> None:
  check(check_nonnegative, call, "learning_rate", learning_rate)


def build_scale_by_learning_rate(learning_rate: ScalarOrSchedule, *, flip_sign: bool = True
                                 ) -> optax.GradientTransformation:
  """:func:`scale_by_learning_rate` without the argument checks: aliases check their arguments once,
  under their own name, then build their transforms with the ``build_*`` functions."""
  sign = -1.0 if flip_sign else 1.0

  def init_fn(params):
    del params
    count = zero_count()
    return ScaleByLearningRateState(count, resolve_all({"learning_rate": learning_rate}, count))

  def update_fn(updates, state, params=None):
    del params
    hp = resolve_all({"learning_rate": learning_rate}, state.count)
    step = sign * hp["learning_rate"]
    updates = jax.tree.map(lambda u: times(step, u), updates)
    return updates, ScaleByLearningRateState(optax.safe_increment(state.count), hp)

  return optax.GradientTransformation(init_fn, update_fn)
