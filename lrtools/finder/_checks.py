"""Argument checks of the range test: every argument :func:`lr_range_test` takes, one message form."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrtools._typing import (check_callable, check_flag, check_integer, check_interval, check_one_of,
                             check_positive, fail)

SWEEP_MODES = ("exponential", "linear")
MAX_REPEATS = 10_000  # each repeat is a whole vmapped training run; more is a mistake, not a range test


def check_sweep(call: str, start_lr, end_lr, num_steps, mode) -> None:
  check_positive(call, "start_lr", start_lr)
  check_positive(call, "end_lr", end_lr)
  if not float(start_lr) < float(end_lr):
    raise ValueError(f"`{call}(start_lr=..., end_lr=...)` needs start_lr < end_lr, got start_lr={start_lr!r}, "
                     f"end_lr={end_lr!r}")
  check_integer(call, "num_steps", num_steps, 2)
  check_one_of(call, "mode", mode, SWEEP_MODES)


def check_representable(call: str, start_lr, end_lr, dtype) -> None:
  """The sweep runs in ``dtype``: both ends must be normal, finite and still ordered there (1e-300 is 0
  and 1e300 is inf in float32; every rate in between is then representable too)."""
  info = np.finfo(dtype)
  inside = float(info.tiny) <= float(start_lr) and float(end_lr) <= float(info.max)  # before a cast can overflow
  if not (inside and np.asarray(start_lr, dtype) < np.asarray(end_lr, dtype)):
    raise ValueError(f"`{call}(start_lr=..., end_lr=...)` must be normal {np.dtype(dtype).name} numbers, "
                     f"distinct in that dtype (between {float(info.tiny):.3g} and {float(info.max):.3g}), as the "
                     f"sweep runs in {np.dtype(dtype).name}, got start_lr={start_lr!r}, end_lr={end_lr!r}")


def _is_numeric_leaf(x) -> bool:
  dtype = getattr(x, "dtype", None)
  if dtype is None:
    if isinstance(x, (str, bytes)) or x is None:
      return False
    try:
      dtype = np.asarray(x).dtype
    except (TypeError, ValueError):
      return False
  return jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_)


def is_array_tree(batches) -> bool:
  """Stacked batches (an array, dict, tuple, …); a list is a sequence of batches, like any other iterable."""
  if isinstance(batches, (list, Iterator)):  # an iterator would be a pytree leaf (and a JAX warning)
    return False
  leaves = jax.tree_util.tree_leaves(batches)
  return bool(leaves) and all(isinstance(x, (np.ndarray, jax.Array)) for x in leaves)


def check_batches(call: str, batches) -> None:
  """Stacked arrays, a function or an iterable; never ``None``, a string, a scalar, or a container of
  non-arrays (a dict of lists would otherwise be iterated as its keys)."""
  what = "must be stacked arrays, a (key, step) -> batch function or an iterable of batches"
  if batches is None or isinstance(batches, (str, bytes)):
    fail(call, "batches", batches, what)
  if callable(batches):
    return
  if isinstance(batches, (numbers.Number, np.bool_)) or getattr(batches, "ndim", None) == 0:
    fail(call, "batches", batches, what + ", not a scalar")
  if is_array_tree(batches):
    if not all(_is_numeric_leaf(x) for x in jax.tree_util.tree_leaves(batches)):
      fail(call, "batches", batches, "must hold numeric arrays")
  elif isinstance(batches, (dict, tuple)) or not hasattr(batches, "__iter__"):
    fail(call, "batches", batches, what + " (a dict or tuple must hold arrays with a leading step axis)")


def check_key(call: str, key) -> None:
  """A PRNG key: a typed key of shape ``()`` (``jax.random.key``) or a raw uint32 ``(2,)`` array."""
  dtype, shape = getattr(key, "dtype", None), np.shape(key) if hasattr(key, "shape") else None
  typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) and shape == ()
  raw = dtype == np.uint32 and shape == (2,)
  if not (typed or raw):
    fail(call, "key", key, "must be a PRNG key (jax.random.key(seed), or a uint32 array of shape (2,))")


def check_params(call: str, params) -> None:
  leaves = jax.tree_util.tree_leaves(params)
  if not leaves:
    fail(call, "params", params, "must hold at least one array")
  for leaf in leaves:
    dtype = getattr(leaf, "dtype", None)
    if dtype is None and _is_numeric_leaf(leaf) and not isinstance(leaf, (bool, np.bool_)):
      dtype = np.asarray(leaf).dtype
    if dtype is None or not jnp.issubdtype(dtype, jnp.inexact):
      fail(call, "params", leaf, "must hold floating-point arrays (they are differentiated), one leaf is")


def check_optimizer(call: str, optimizer, start_lr) -> None:
  """A factory ``learning_rate -> GradientTransformation``, tried once with a Python float."""
  check_callable(call, "optimizer", optimizer)
  try:
    made = optimizer(float(start_lr))
  except TypeError as e:
    raise ValueError(f"`{call}(optimizer=...)` must be a function learning_rate -> "
                     f"optax.GradientTransformation; calling it with {float(start_lr)!r} raised {e!r}, got "
                     f"optimizer={optimizer!r}") from e
  if not isinstance(made, optax.GradientTransformation):
    fail(call, "optimizer", optimizer, "must return an optax.GradientTransformation for a learning rate "
         f"(it returned {type(made).__name__} for {float(start_lr)!r})")


def check_arguments(call: str, *, loss_fn, params, optimizer, batches, start_lr, end_lr, num_steps, mode,
                    smoothing, debias, diverge_threshold, has_aux, num_repeats, key, init_fn,
                    validation_batch, validation_loss_fn, chunk_size, progress) -> None:
  check_callable(call, "loss_fn", loss_fn)
  check_params(call, params)
  check_sweep(call, start_lr, end_lr, num_steps, mode)
  check_optimizer(call, optimizer, start_lr)
  check_batches(call, batches)
  check_interval(call, "smoothing", smoothing, 0.0, 1.0)
  check_flag(call, "debias", debias)
  check_interval(call, "diverge_threshold", diverge_threshold, 1.0, float("inf"), low_closed=False,
                 high_closed=True)
  check_flag(call, "has_aux", has_aux)
  check_integer(call, "num_repeats", num_repeats, 1, MAX_REPEATS)
  check_integer(call, "chunk_size", chunk_size, 1)
  if key is not None:
    check_key(call, key)
  if init_fn is not None:
    check_callable(call, "init_fn", init_fn)
  if validation_batch is not None:
    leaves = jax.tree_util.tree_leaves(validation_batch)
    if not leaves or not all(_is_numeric_leaf(x) for x in leaves):
      fail(call, "validation_batch", validation_batch, "must be a batch of numeric arrays")
  if validation_loss_fn is not None:
    check_callable(call, "validation_loss_fn", validation_loss_fn)
    if validation_batch is None:
      fail(call, "validation_loss_fn", validation_loss_fn, "needs a validation_batch")
  if progress is not None:
    check_callable(call, "progress", progress)


def count_non_finite(tree) -> jax.Array:
  """NaN and inf values among the floating-point leaves of ``tree`` (jnp: runs inside the sweep)."""
  counts = [jnp.sum(~jnp.isfinite(x), dtype=jnp.int32) for x in jax.tree_util.tree_leaves(tree)
            if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
  return sum(counts, jnp.zeros((), jnp.int32))


def host_count_non_finite(tree) -> int:
  """:func:`count_non_finite` in NumPy, for batches on the host."""
  return sum(int(np.count_nonzero(~np.isfinite(x))) for x in map(np.asarray, jax.tree_util.tree_leaves(tree))
             if np.issubdtype(x.dtype, np.inexact))


def warn_non_finite(count: int, where: str) -> None:
  if count:
    warnings.warn(f"`lr_range_test(batches=...)`: {where} {count} non-finite values (NaN or inf); a loss "
                  "they reach is NaN and stops the sweep", RuntimeWarning, stacklevel=3)
