"""Step arithmetic shared by the schedules: integer where it decides *which* phase or cycle, float only
for the position inside it.

A float32 step is exact only below 2^24, so ``floor(t / period)`` computed in floats puts restarts and
phase changes on the wrong step (or gives 0/0) at large ``t``, and a bfloat16 hyperparameter would round
the step itself. Here the step stays an integer (int32, or the count's own integer dtype), step-valued
hyperparameters (periods, milestones, boundaries) are integers, and only offsets inside a phase, which are
small or need only relative precision, become floats of :func:`compute_dtype` (at least float32,
whatever the hyperparameters' dtype; only the returned value follows them).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from lrtools._typing import Numeric, concrete


def compute_dtype(dtype) -> jnp.dtype:
  """At least float32: bfloat16/float16 hyperparameters must not round step arithmetic."""
  dtype = jnp.dtype(dtype)
  return dtype if dtype.itemsize >= 4 else jnp.dtype(jnp.float32)


def int_dtype(count: Numeric) -> jnp.dtype:
  """The count's integer dtype (int32 by default, int64 only when the count is int64 under x64)."""
  dtype = jnp.asarray(count).dtype
  return dtype if jnp.issubdtype(dtype, jnp.signedinteger) and dtype.itemsize >= 4 else jnp.dtype(jnp.int32)


def int_steps(count: Numeric) -> jnp.ndarray:
  """The step count as a non-negative integer array (a float count is floored; negatives count as 0)."""
  c = jnp.asarray(count)
  dtype = int_dtype(c)
  if not jnp.issubdtype(c.dtype, jnp.integer):
    top = np.iinfo(dtype).max if dtype == np.int64 else np.iinfo(np.int32).max - 127  # float32's below 2^31
    c = jnp.clip(jnp.floor(c.astype(compute_dtype(c.dtype))), 0, top)
  return jnp.maximum(c.astype(dtype), 0)


def as_steps(value: Numeric, dtype) -> jnp.ndarray:
  """A step-valued hyperparameter (period, milestone, boundary) as an integer array of ``dtype``; a traced
  float is rounded to the nearest integer (concrete values are checked to be integers at construction)."""
  v = jnp.asarray(value)
  if not jnp.issubdtype(v.dtype, jnp.integer):
    v = jnp.round(v.astype(compute_dtype(v.dtype)))
  return v.astype(dtype)


def split_real(value: Numeric, cdt) -> tuple[jnp.ndarray, jnp.ndarray]:
  """A real step position ``x`` (a phase end such as ``pct·T − 1``) as ``(⌊x⌋, x − ⌊x⌋)``: an integer and
  a float in [0, 1), so that ``t − x`` is exact for any integer ``t``. Concrete values are split in float64
  on the host; traced ones in ``cdt``."""
  v = concrete(value)
  if v is not None:
    v = np.asarray(v, np.float64)
    whole = np.floor(v)
    return jnp.asarray(whole.astype(np.int64).clip(-2**31, 2**31 - 1), jnp.int32), jnp.asarray(v - whole, cdt)
  x = jnp.asarray(value, cdt)
  whole = jnp.floor(x)
  return jnp.clip(whole, -2.0**31, 2.0**31 - 256).astype(jnp.int32), x - whole


def offset(t: jnp.ndarray, whole: jnp.ndarray, frac: jnp.ndarray, cdt) -> jnp.ndarray:
  """``t − (whole + frac)`` as a float of ``cdt``, with the integer part subtracted exactly first."""
  return (t - whole.astype(t.dtype)).astype(cdt) - frac.astype(cdt)


def count_reached(t: jnp.ndarray, marks: jnp.ndarray, strict: bool = False) -> jnp.ndarray:
  """How many of the 1-D ``marks`` each step has reached (``t >= m``; ``t > m`` when ``strict``), with the
  broadcast spelled out (rank promotion may be set to raise)."""
  marks = jnp.reshape(marks, (1,) * t.ndim + (-1,)).astype(t.dtype)
  return jnp.sum(t[..., None] > marks if strict else t[..., None] >= marks, axis=-1)
