"""Plumbing shared by the optimizers: resolving hyperparameters, the learning-rate transform and
:func:`current_hyperparams`.

Every ``scale_by_*`` state records the hyperparameter values its last update used in a ``hyperparams``
dict of arrays, so that the values of a schedule (or of a tracer under ``jax.vmap``) can be read back
from the optimizer state alone.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrtools._typing import ScalarOrSchedule, check_nonnegative, resolve


def check(checker: Callable[..., None], call: str, name: str, value: Any, *args: Any) -> None:
  """Runs a ``lrtools._typing`` check unless ``value`` is a schedule (schedules are checked by their
  own factories; their values are only known at run time)."""
  if not callable(value):
    checker(call, name, value, *args)


def state_dtype() -> jnp.dtype:
  """The dtype of recorded hyperparameters: float64 under x64, else float32. It depends on no input, so
  ``init`` and ``update`` agree and the state can be a ``lax.scan`` carry."""
  return jnp.result_type(float)


def resolve_all(hyperparams: Mapping[str, ScalarOrSchedule], count: jax.Array) -> dict[str, jax.Array]:
  """The values of ``hyperparams`` at step ``count``, as fresh scalar arrays of :func:`state_dtype` (a
  copy, never the caller's array: a state passed with ``donate_argnums`` must own its buffers)."""
  return {k: jnp.array(resolve(v, count), state_dtype()) for k, v in hyperparams.items()}


def like(value: jax.Array, leaf: jax.Array) -> jax.Array:
  """A hyperparameter cast to the dtype of ``leaf``: float32 parameters stay float32 under x64."""
  return jnp.asarray(value, leaf.dtype)


def zero_count() -> jax.Array:
  return jnp.zeros([], jnp.int32)


def decay_product(previous: jax.Array, decay: ScalarOrSchedule, value: jax.Array,
                  num_steps: jax.Array) -> jax.Array:
  """``∏ decay_i`` over the ``num_steps`` decays applied so far, the weight missing from an average that
  starts at zero. A constant decay uses the exact power ``decay**num_steps`` (the textbook bias
  correction); a schedule accumulates the product of the values actually used."""
  if callable(decay):
    return previous * value
  return value ** num_steps.astype(value.dtype)


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
    >>> tx = scale_by_learning_rate(lambda t: 0.1 / (1 + t))
    >>> state = tx.init(jnp.zeros(2))
    >>> u, state = tx.update(jnp.ones(2), state)
    >>> u, state = tx.update(jnp.ones(2), state)
    >>> print(np.round(np.asarray(u), 4), np.round(float(current_hyperparams(state)["learning_rate"]), 4))
    [-0.05 -0.05] 0.05

  References:
    CS231n, "Neural Networks Part 3: Learning and Evaluation" (parameter updates).
  """
  check(check_nonnegative, "scale_by_learning_rate", "learning_rate", learning_rate)
  sign = -1.0 if flip_sign else 1.0

  def init_fn(params):
    del params
    count = zero_count()
    return ScaleByLearningRateState(count, resolve_all({"learning_rate": learning_rate}, count))

  def update_fn(updates, state, params=None):
    del params
    hp = resolve_all({"learning_rate": learning_rate}, state.count)
    step = sign * hp["learning_rate"]
    updates = jax.tree.map(lambda u: like(step, u) * u, updates)
    return updates, ScaleByLearningRateState(optax.safe_increment(state.count), hp)

  return optax.GradientTransformation(init_fn, update_fn)


def current_hyperparams(opt_state: Any) -> dict[str, jax.Array]:
  """The hyperparameter values used at the last step, gathered from a (nested) optimizer state.

  Walks tuples, lists, mappings and ``NamedTuple`` states (``optax.chain``, ``optax.partition``,
  ``optax.apply_if_finite``, ``optax.inject_hyperparams`` ...) and merges every ``hyperparams`` dict it
  finds, outer and later states overriding earlier ones on a name clash. Before the first update it
  returns the values the first update will use. Under ``jax.vmap`` the values are batched.

  Args:
    opt_state: the state of an lrtools optimizer, possibly inside other optax wrappers.

  Returns:
    A dict such as ``{"learning_rate": ..., "b1": ..., "b2": ..., "eps": ...}`` of scalar arrays.

  Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> from lrtools.optimizers import adam, current_hyperparams
    >>> opt = adam(lambda t: 1e-3 * 0.5 ** t, b1=0.8)
    >>> state = opt.init(jnp.zeros(3))
    >>> for _ in range(3):
    ...   _, state = opt.update(jnp.ones(3), state)
    >>> hp = current_hyperparams(state)
    >>> print(sorted(hp), np.round(float(hp["learning_rate"]), 6), np.round(float(hp["b1"]), 2))
    ['b1', 'b2', 'eps', 'learning_rate'] 0.00025 0.8
  """
  found: dict[str, jax.Array] = {}

  def walk(node):
    if isinstance(node, Mapping):
      children = list(node.values())
    elif isinstance(node, (tuple, list)):
      children = list(node)
    else:
      return
    for child in children:
      walk(child)
    hp = getattr(node, "hyperparams", None)
    if isinstance(hp, Mapping):
      found.update(hp)

  walk(opt_state)
  return {k: jnp.asarray(getattr(v, "value", v)) for k, v in found.items()}
