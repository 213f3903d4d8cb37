"""Hyperparameters shared by every package: resolving a number | array | tracer | schedule at a step,
recording the values used in optimizer state, and the one reader of values kept in optimizer state.

Every ``scale_by_*`` state records the hyperparameter values its last update used in a ``hyperparams``
dict of arrays, so that the values of a schedule (or of a tracer under ``jax.vmap``) can be read back
from the optimizer state alone, wherever optax wrappers (chain, partition, apply_if_finite, masked,
inject_hyperparams) put it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from lrtools._typing import ScalarOrSchedule

def check(checker: Callable[..., None], call: str, name: str, value: Any, *args: Any) -> None:
  """Runs a ``lrtools._typing`` check unless ``value`` is a schedule (schedules are checked by their
  own factories; their values are only known at run time)."""
  if not callable(value):
    checker(call, name, value, *args)


def resolve(value: ScalarOrSchedule, count: jax.Array) -> jax.Array:
  """The value of a scalar-or-schedule hyperparameter at step ``count``."""
  return value(count) if callable(value) else value


def state_dtype() -> jnp.dtype:
  """The dtype of recorded hyperparameters: float64 under x64, else float32. It depends on no input, so
  ``init`` and ``update`` agree and the state can be a ``lax.scan`` carry."""
  return jnp.result_type(float)


def resolve_all(hyperparams: Mapping[str, ScalarOrSchedule], count: jax.Array) -> dict[str, jax.Array]:
  """The values of ``hyperparams`` at step ``count``, as fresh scalar arrays of :func:`state_dtype` (a
  copy, never the caller's array: a state passed with ``donate_argnums`` must own its buffers)."""
  return {k: jnp.array(resolve(v, count), state_dtype()) for k, v in hyperparams.items()}


def like(value: jax.Array, leaf: jax.Array) -> jax.Array:
  """A hyperparameter cast to the dtype of ``leaf``: float32 parameters stay float32 under x64 (the real
  dtype of a complex leaf, so that a real rate scales a complex update without changing its dtype)."""
  return jnp.asarray(value, jnp.real(jnp.zeros((), leaf.dtype)).dtype if jnp.iscomplexobj(leaf) else leaf.dtype)


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


def path_name(path: tuple, indices: bool = True) -> str:
  """A readable ``a/0/b`` name for a pytree path: dict keys (and sequence indices), attribute names left out."""
  parts = []
  for entry in path:
    if isinstance(entry, jax.tree_util.DictKey):
      parts.append(str(entry.key))
    elif indices and isinstance(entry, jax.tree_util.SequenceKey):
      parts.append(str(entry.idx))
  return "/".join(parts)


def find_states(opt_state: Any, match: type | tuple[type, ...] | Callable[[Any], bool]) -> list[tuple[tuple, Any]]:
  """Every state inside ``opt_state`` of class ``match`` (or for which ``match(state)`` is true), outermost
  first, with its pytree path: the one walk through nested optimizer states (chain, partition, masked,
  apply_if_finite, inject_hyperparams)."""
  is_match = match if not isinstance(match, (type, tuple)) else (lambda x: isinstance(x, match))
  flat, _ = jax.tree_util.tree_flatten_with_path(opt_state, is_leaf=is_match)
  return [(p, leaf) for p, leaf in flat if is_match(leaf)]


def first_state(call: str, opt_state: Any, kinds: type | tuple[type, ...], hint: str) -> Any:
  """The first state of class ``kinds`` in ``opt_state``, or a ValueError naming ``call`` and ``hint``."""
  found = find_states(opt_state, kinds)
  if not found:
    raise ValueError(f"`{call}(opt_state=...)` found no {hint} in the state, got opt_state of type "
                     f"{type(opt_state).__name__}")
  return found[0][1]


def current_hyperparams(opt_state: Any) -> dict[str, jax.Array]:
  """The hyperparameter values used at the last step, gathered from a (nested) optimizer state.

  Reads every ``hyperparams`` field or property of the states inside ``opt_state`` (lrtools states,
  ``optax.inject_hyperparams``' state) wherever ``optax.chain``, ``optax.partition``, ``optax.masked`` or
  ``optax.apply_if_finite`` put them. A name found once is returned as is. A name found in several states
  (two optimizers under ``optax.partition``) is returned once per state, keyed ``"<path>/<name>"`` where
  the path is the state's dict keys (``"embed/learning_rate"``), or its dict keys and sequence indices
  when those alone do not tell the states apart: no entry overwrites another. Before the first update it
  returns the values the first update will use; under ``jax.vmap`` the values are batched.

  Args:
    opt_state: the state of an lrtools optimizer, possibly inside other optax wrappers.

  Returns:
    A flat dict such as ``{"learning_rate": ..., "b1": ..., "b2": ..., "eps": ...}`` of arrays.

  Example:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> import lrtools as lrt
    >>> opt = lrt.adam(lambda t: 1e-3 * 0.5 ** t, b1=0.8)
    >>> state = opt.init(jnp.zeros(3))
    >>> for _ in range(3):
    ...   _, state = opt.update(jnp.ones(3), state)
    >>> hp = lrt.current_hyperparams(state)
    >>> print(sorted(hp), np.round(float(hp["learning_rate"]), 6), np.round(float(hp["b1"]), 2))
    ['b1', 'b2', 'eps', 'learning_rate'] 0.00025 0.8
    >>> two = optax.partition({"a": lrt.sgd(0.1), "b": lrt.sgd(0.01)}, {"x": "a", "y": "b"})
    >>> sorted(lrt.current_hyperparams(two.init({"x": jnp.zeros(1), "y": jnp.zeros(1)})))
    ['a/learning_rate', 'b/learning_rate']
  """
  def has_hyperparams(x):
    return not isinstance(x, Mapping) and isinstance(getattr(x, "hyperparams", None), Mapping)

  entries = [(path, name, jnp.asarray(getattr(value, "value", value)))
             for path, state in find_states(opt_state, has_hyperparams)
             for name, value in state.hyperparams.items()]
  out: dict[str, jax.Array] = {}
  for path, name, value in entries:
    clashes = [p for p, n, _ in entries if n == name]
    if len(clashes) == 1:
      out[name] = value
      continue
    short = [path_name(p, indices=False) for p in clashes]
    prefix = path_name(path, indices=len(set(short)) < len(short))
    out[f"{prefix}/{name}" if prefix else name] = value
  return out
