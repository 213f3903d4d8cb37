"""Decoupled weight decay (Loshchilov & Hutter 2019), the ``weight_decay`` argument of ``sgd``, ``momentum``,
``nesterov`` and ``adam``.

The decay is the last transform of the alias's chain: it adds ``−η_t·λ_t·w`` to the update after the
gradient statistics (velocity, moments) are formed, so it never enters them. The rate is the full
learning rate, as ``torch.optim.AdamW`` and ``optax.adamw`` scale it (the paper multiplies ``λ`` by the
schedule multiplier ``η_t`` alone: its ``λ`` is this ``η·λ``).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import numpy as np
import optax

from lrtools._hyperparams import check, resolve_all, zero_count
from lrtools._typing import ScalarOrSchedule, check_nonnegative, concrete, fail
from lrtools._numerics import times

Mask = Any  # a pytree of bools (a prefix of the parameters' tree) or a callable params -> such a pytree


class DecoupledWeightDecayState(NamedTuple):
  """State of the decoupled weight decay that ends an alias's chain when ``weight_decay`` is not 0.

  Attributes:
    count: int32 number of updates so far (saturating at 2**31 − 1); the schedules are evaluated at it.
    hyperparams: ``{"weight_decay": λ}`` used by the last update.
  """
  count: jax.Array
  hyperparams: dict[str, jax.Array]


def check_weight_decay(call: str, weight_decay: ScalarOrSchedule, mask: Mask | Callable | None) -> None:
  check(check_nonnegative, call, "weight_decay", weight_decay)
  if mask is None or callable(mask):
    return
  leaves = jax.tree.leaves(mask, is_leaf=lambda x: x is None)
  if not leaves or not all(isinstance(leaf, (bool, np.bool_)) for leaf in leaves):
    fail(call, "weight_decay_mask", mask, "must be a pytree of True/False leaves or a callable params -> mask")


def with_weight_decay(call: str, learning_rate: ScalarOrSchedule, weight_decay: ScalarOrSchedule,
                      mask: Mask | Callable | None, *transforms: optax.GradientTransformation
                      ) -> optax.GradientTransformationExtraArgs:
  """``optax.chain(*transforms)``, followed by the decay unless ``weight_decay`` is a Python number 0.

  With a Python 0 (the default) the chain and its state are those of the optimizer without decay, and
  ``update`` needs no ``params``; an array (even a zero one), a tracer or a schedule always adds the decay.
  The choice depends on the type of the argument, never on its value, so that ``init`` and a jitted
  ``update`` build the same chain when a wrapper (``optax.inject_hyperparams``) passes the default as an
  array that is concrete in ``init`` and traced in ``update``.
  """
  zero = isinstance(weight_decay, (int, float)) and not isinstance(weight_decay, bool) and weight_decay == 0
  if zero:
    return optax.chain(*transforms)
  decay = _decoupled_weight_decay(call, learning_rate, weight_decay)
  return optax.chain(*transforms, decay if mask is None else optax.masked(decay, mask))


def _decoupled_weight_decay(call: str, learning_rate: ScalarOrSchedule, weight_decay: ScalarOrSchedule
                            ) -> optax.GradientTransformation:
  hyper = {"learning_rate": learning_rate, "weight_decay": weight_decay}

  def init_fn(params):
    del params
    count = zero_count()
    return DecoupledWeightDecayState(count, {"weight_decay": resolve_all(hyper, count)["weight_decay"]})

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(f"`{call}(weight_decay=...)` decays the parameters: pass them, "
                       f"`update(updates, state, params)`, got params=None")
    hp = resolve_all(hyper, state.count)
    step = hp["learning_rate"] * hp["weight_decay"]
    updates = jax.tree.map(lambda u, w: u - times(step, w).astype(u.dtype), updates, params)
    return updates, DecoupledWeightDecayState(optax.safe_increment(state.count),
                                              {"weight_decay": hp["weight_decay"]})

  return optax.GradientTransformation(init_fn, update_fn)
