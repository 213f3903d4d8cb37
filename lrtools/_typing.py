"""Shared types and construction-time argument checks.

Every hyperparameter may be a Python number, a NumPy/JAX array or a tracer. The checks below run on the
values that are concrete and silently skip tracers, so a factory can validate eagerly and still be called
inside ``jax.jit``/``jax.vmap``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

Schedule = optax.Schedule
ScalarOrSchedule = optax.ScalarOrSchedule
Numeric = Any  # float | int | np.ndarray | jax.Array | tracer


def concrete(value: Numeric) -> np.ndarray | None:
  """``value`` as a NumPy array, or ``None`` when it is a tracer (its value is unknown until run time)."""
  try:
    return np.asarray(value)
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    return None


def _fail(call: str, name: str, value: Numeric, requirement: str) -> None:
  raise ValueError(f"`{call}({name}=...)` {requirement}, got {name}={value!r}")


def _numeric(call: str, name: str, value: Numeric) -> np.ndarray | None:
  """``concrete(value)``, rejecting what is not a number (a string, ``None``) with a ValueError."""
  v = concrete(value)
  if v is not None and not (v.dtype == bool or jnp.issubdtype(v.dtype, jnp.number)):  # bfloat16 is kind 'V'
    _fail(call, name, value, "must be a real number or an array of them")
  return v


def check_finite(call: str, name: str, value: Numeric) -> None:
  v = _numeric(call, name, value)
  if v is not None and not np.all(np.isfinite(v)):
    _fail(call, name, value, "must be finite")


def check_positive(call: str, name: str, value: Numeric) -> None:
  check_finite(call, name, value)
  v = _numeric(call, name, value)
  if v is not None and not np.all(v > 0):
    _fail(call, name, value, "must be positive")


def check_nonnegative(call: str, name: str, value: Numeric) -> None:
  check_finite(call, name, value)
  v = _numeric(call, name, value)
  if v is not None and not np.all(v >= 0):
    _fail(call, name, value, "must be non-negative")


def check_integer(call: str, name: str, value: Any, minimum: int) -> None:
  """Checks a concrete ``value`` is an integer ``>= minimum`` (tracers skip the check)."""
  v = _numeric(call, name, value)
  if v is not None and not (np.all(np.isfinite(v)) and np.all(v == np.round(v)) and np.all(v >= minimum)):
    kind = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"
    raise ValueError(f"`{call}({name}=...)` must be {kind}, got {name}={value!r}")


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
    _fail(call, name, value, f"must lie in {interval}")


def check_le(call: str, low_name: str, low: Numeric, high_name: str, high: Numeric) -> None:
  """Checks ``low <= high`` for two arguments of the same call."""
  lo, hi = _numeric(call, low_name, low), _numeric(call, high_name, high)
  if lo is not None and hi is not None and not np.all(lo <= hi):
    raise ValueError(f"`{call}({low_name}=..., {high_name}=...)` needs {low_name} <= {high_name}, "
                     f"got {low_name}={low!r}, {high_name}={high!r}")


def check_one_of(call: str, name: str, value: str, options: Sequence[str]) -> None:
  if value not in options:
    choices = ", ".join(repr(o) for o in options)
    _fail(call, name, value, f"must be one of {choices}")


def check_callable(call: str, name: str, value: Any) -> None:
  if not callable(value):
    _fail(call, name, value, "must be callable")


def check_increasing(call: str, name: str, values: Numeric, strict: bool = True) -> None:
  """Checks a 1-D sequence is non-negative and (strictly) increasing."""
  v = _numeric(call, name, values)
  if v is None:
    return
  if v.ndim != 1:
    _fail(call, name, values, "must be a 1-D sequence")
  check_nonnegative(call, name, values)
  steps = np.diff(v)
  if not np.all(steps > 0 if strict else steps >= 0):
    _fail(call, name, values, f"must be {'strictly ' if strict else ''}increasing")


def float_dtype(*values: Numeric) -> jnp.dtype:
  """The float dtype of a computation on ``values``: float32 by default, float64 under x64, or the
  dtype of the float arrays among ``values`` (a float16 input gives float16 output)."""
  return jnp.result_type(float, *(v for v in values if not callable(v)))


def resolve(value: ScalarOrSchedule, count: jax.Array) -> jax.Array:
  """The value of a scalar-or-schedule hyperparameter at step ``count``."""
  return value(count) if callable(value) else value
