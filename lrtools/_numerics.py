"""Elementwise helpers that make every update rule right for real and complex parameters alike.

A complex parameter ``z`` is updated along the conjugate gradient (optax's convention): the second-moment
statistics accumulate ``|g|² = (g · conj g).real``, a real number, never ``g²`` (complex, and wrong), and
live in buffers of the parameter's real dtype. Real hyperparameters and real denominators meet complex
values through :func:`times` and :func:`divide`, which never rely on implicit real → complex promotion
(refused under ``jax_numpy_dtype_promotion="strict"``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lrtools._hyperparams import like


def real_dtype(x: jax.Array) -> jnp.dtype:
  """The dtype of ``x``'s real part (``x``'s own dtype when it is real)."""
  return jnp.real(jnp.zeros((), x.dtype)).dtype


def abs_sq(g: jax.Array) -> jax.Array:
  """``|g|²`` in ``g``'s real dtype: ``(g · conj g).real``, which is ``g·g`` for a real ``g``."""
  return (g * jnp.conj(g)).real if jnp.iscomplexobj(g) else g * g


def real_zeros_like(tree):
  """Zeros of each leaf's shape and real dtype: the buffers of ``|g|²`` statistics (one buffer per leaf,
  never shared, so that a state can be donated)."""
  return jax.tree.map(lambda p: jnp.zeros(p.shape, real_dtype(p)), tree)


def times(s: jax.Array, x: jax.Array) -> jax.Array:
  """``s · x`` in ``x``'s dtype for a real hyperparameter or real array ``s`` (exact for complex ``x``:
  ``s`` is cast to ``(s, 0)``)."""
  return like(s, x).astype(x.dtype) * x


def divide(x: jax.Array, d: jax.Array) -> jax.Array:
  """``x / d`` in ``x``'s dtype for a real array ``d`` of ``x``'s real dtype; a complex ``x`` divides its
  real and imaginary parts separately (one rounding each, as for a real ``x``)."""
  if jnp.iscomplexobj(x):
    return jax.lax.complex(x.real / d, x.imag / d)
  return x / d
