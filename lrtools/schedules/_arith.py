"""Exact step arithmetic shared by the schedules.

A cycle or phase index computed as ``floor(t / period)`` in float32 can land one step early or late when
``t`` is large; the helpers here correct the estimate with products that are exact for integer inputs.
"""

from __future__ import annotations

import jax.numpy as jnp

from lrtools._typing import Numeric


def steps(count: Numeric, dtype) -> jnp.ndarray:
  """The step count as a float array of ``dtype`` (exact for counts below 2^24 in float32)."""
  return jnp.asarray(count).astype(dtype)


def floor_div(t: jnp.ndarray, period: jnp.ndarray) -> jnp.ndarray:
  """``floor(t / period)`` for ``t >= 0``, exact whenever ``t`` and ``period`` are integers."""
  q = jnp.floor(t / period)
  q = jnp.where(q * period > t, q - 1, q)
  return jnp.where((q + 1) * period <= t, q + 1, q)


def geometric_sum(ratio: jnp.ndarray, n: jnp.ndarray) -> jnp.ndarray:
  """``1 + r + … + r^(n−1) = (r^n − 1)/(r − 1)`` for ``r > 1``, by integer arithmetic when ``r`` is an integer.

  ``n`` holds integral floats. Integer powers are exact up to the default int's range (2^31 under float32),
  where float powers of e.g. 9^8 already round.
  """
  int_dtype = jnp.asarray(0).dtype
  r_int = jnp.round(ratio)
  r_i = jnp.maximum(r_int, 2).astype(int_dtype)
  n_i = jnp.maximum(n, 0).astype(int_dtype)
  as_int = ((r_i ** n_i - 1) // (r_i - 1)).astype(ratio.dtype)
  as_float = (ratio ** n - 1) / (ratio - 1)
  return jnp.where(ratio == r_int, as_int, as_float)
