"""Shared types and construction-time argument checks.

Every hyperparameter may be a Python number, a NumPy/JAX array of shape ``()`` or a tracer. The checks
below reject what can never be right (a bool, a string, ``None``, a complex number, a vector where a
scalar belongs: shapes and dtypes are known even for tracers) and check the values that are concrete,
skipping tracers, so a factory validates eagerly and can still be called inside ``jax.jit``/``jax.vmap``.

Every failure is a ``ValueError`` of one form: the call, the argument and the value,
``\\`sgdr_schedule(cycle_steps=...)\\` must be positive, got cycle_steps=0``.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

Schedule = optax.Schedule
ScalarOrSchedule = optax.ScalarOrSchedule
Numeric = Any  # float | int | np.ndarray | jax.Array | tracer

INT32_MAX = 2**31 - 1  # every step count, period and milestone feeds int32 arithmetic


def concrete(value: Numeric) -> np.ndarray | None:
  """``value`` as a NumPy array, or ``None`` when it is a tracer (its value is unknown until run time)."""
  if isinstance(value, jax.core.Tracer):
    return None
  try:
    return np.asarray(value)
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    return None


def fail(call: str, name: str, value: Any, requirement: str) -> None:
  """Raises the one error form: ``\\`call(name=...)\\` requirement, got name=value``."""
  raise ValueError(f"`{call}({name}=...)` {requirement}, got {name}={value!r}")


def _is_bool(value: Any) -> bool:
  return isinstance(value, (bool, np.bool_)) or getattr(value, "dtype", None) == np.dtype(bool)


def _numeric(call: str, name: str, value: Numeric, ndim: int | None = 0) -> np.ndarray | None:
  """``concrete(value)`` after rejecting what is not a real number (or, with ``ndim``, not of that rank).

  Tracers are checked too (their dtype and shape are static); their values are not (``None`` returned).
  """
  if _is_bool(value):
    fail(call, name, value, "must be a number, not a bool")
  if isinstance(value, jax.core.Tracer):
    dtype, shape, v = value.dtype, value.shape, None
  else:
    try:  # a Python int beyond int64 would become an object array: compare it as a float (inf beyond)
      v = np.asarray(_big_int_as_float(value) if isinstance(value, int) and abs(value) > 2**62 else value)
    except (TypeError, ValueError):  # ragged sequences and other non-arrays
      fail(call, name, value, "must be a real number")
    if v.dtype.kind == "f" and v.dtype.itemsize > 8:  # long double: JAX has no such type
      fail(call, name, value, "must be a real number of at most 64 bits")
    dtype, shape = v.dtype, v.shape
  if not jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.complexfloating):
    fail(call, name, value, "must be a real number" if ndim == 0 else "must be real numbers")
  if ndim is not None and len(shape) != ndim:
    fail(call, name, value, "must be a scalar (shape ())" if ndim == 0 else f"must be a {ndim}-D sequence")
  return v


def _big_int_as_float(value: int) -> float:
  try:
    return float(value)
  except OverflowError:
    return float("inf") if value > 0 else float("-inf")


def check_number(call: str, name: str, value: Numeric) -> None:
  """A real scalar (any value, ±inf and NaN included)."""
  _numeric(call, name, value)


def check_finite(call: str, name: str, value: Numeric) -> None:
  v = _numeric(call, name, value)
  if v is not None and not np.all(np.isfinite(v)):
    fail(call, name, value, "must be finite")


def check_positive(call: str, name: str, value: Numeric) -> None:
  check_finite(call, name, value)
  v = concrete(value)
  if v is not None and not np.all(v > 0):
    fail(call, name, value, "must be positive")


def check_nonnegative(call: str, name: str, value: Numeric) -> None:
  check_finite(call, name, value)
  v = concrete(value)
  if v is not None and not np.all(v >= 0):
    fail(call, name, value, "must be non-negative")


def check_integer(call: str, name: str, value: Any, minimum: int, maximum: int = INT32_MAX,
                  ndim: int | None = 0) -> None:
  """An integer (an integral float passes) in ``[minimum, maximum]``; ``maximum`` defaults to int32's."""
  v = _numeric(call, name, value, ndim)
  if v is None:
    return
  ok = np.all(np.isfinite(v)) and np.all(v == np.round(v)) and np.all(v >= minimum) and np.all(v <= maximum)
  if not ok:
    if maximum == INT32_MAX:
      kind = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
      kind += " that fits int32 (<= 2**31 - 1)"
    else:
      kind = f"an integer in [{minimum}, {maximum}]"
    fail(call, name, value, f"must be {'' if ndim == 0 else 'made of '}{kind}")


def check_interval(call: str, name: str, value: Numeric, low: float, high: float,
                   low_closed: bool = True, high_closed: bool = False) -> None:
  """Checks ``low <= value < high`` (brackets chosen by ``low_closed``/``high_closed``)."""
  v = _numeric(call, name, value)
  if v is None:
    return
  above = v >= low if low_closed else v > low
  below = v <= high if high_closed else v < high
  if not (np.all(~np.isnan(v)) and np.all(above) and np.all(below)):  # ±inf fail unless a closed bound
    interval = f"{'[' if low_closed else '('}{low:g}, {high:g}{']' if high_closed else ')'}"
    fail(call, name, value, f"must lie in {interval}")


def check_le(call: str, low_name: str, low: Numeric, high_name: str, high: Numeric) -> None:
  """Checks ``low <= high`` for two arguments of the same call."""
  lo, hi = _numeric(call, low_name, low), _numeric(call, high_name, high)
  if lo is not None and hi is not None and not np.all(lo <= hi):
    raise ValueError(f"`{call}({low_name}=..., {high_name}=...)` needs {low_name} <= {high_name}, "
                     f"got {low_name}={low!r}, {high_name}={high!r}")


def check_flag(call: str, name: str, value: Any) -> None:
  """A real bool: ``"False"``, ``0`` or ``None`` would otherwise be silently truthy or falsy."""
  if not isinstance(value, (bool, np.bool_)):
    fail(call, name, value, "must be True or False")


def check_one_of(call: str, name: str, value: str, options: Sequence[str]) -> None:
  if not isinstance(value, str) or value not in options:
    fail(call, name, value, f"must be one of {', '.join(repr(o) for o in options)}")


def check_callable(call: str, name: str, value: Any) -> None:
  if not callable(value):
    fail(call, name, value, "must be callable")


def check_regex(call: str, name: str, value: Any) -> None:
  """A string that compiles as a regular expression."""
  if not isinstance(value, str):
    fail(call, name, value, "must be a string (a regular expression)")
  try:
    re.compile(value)
  except re.error as e:
    fail(call, name, value, f"must be a valid regular expression ({e})")


def check_steps(call: str, name: str, values: Numeric) -> None:
  """A 1-D sequence (or one number) of strictly increasing step counts in ``[0, 2**31 − 1]`` (milestones,
  boundaries)."""
  if isinstance(values, (list, tuple)) and any(_is_bool(v) for v in values):
    fail(call, name, values, "must be step counts, not bools")
  try:
    ndim = np.ndim(values)
  except ValueError:  # ragged
    fail(call, name, values, "must be a 1-D sequence")
  if ndim > 1:
    fail(call, name, values, "must be a 1-D sequence")
  check_integer(call, name, values, 0, ndim=None)
  v = concrete(values)
  if v is not None and not np.all(np.diff(v.reshape(-1)) > 0):
    fail(call, name, values, "must be strictly increasing")


def float_dtype(*values: Numeric) -> jnp.dtype:
  """The float dtype of a computation on ``values``: float32 by default, float64 under x64, or the
  dtype of the float arrays among ``values`` (a bfloat16 input gives bfloat16 output)."""
  return jnp.result_type(float, *(v for v in values if not callable(v)))

