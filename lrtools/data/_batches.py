"""Pre-sampled minibatches with a leading step axis, the input the LR range test scans over."""

from __future__ import annotations

import jax
import numpy as np

from lrtools._typing import fail
from lrtools.data._dataset import host_integer

_CALL = "batches"


def _rng(key_or_seed) -> np.random.Generator:
  """A NumPy generator from an int seed (a scalar) or a JAX PRNG key (typed, or raw uint32 words)."""
  typed_key = jax.dtypes.issubdtype(getattr(key_or_seed, "dtype", None), jax.dtypes.prng_key)
  try:
    data = np.asarray(jax.random.key_data(key_or_seed) if typed_key else key_or_seed)
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError, TypeError, ValueError):
    data = None  # a tracer, or not an array at all (a ragged list)
  ndim = getattr(key_or_seed, "ndim", None) if data is None else data.ndim  # a tracer knows its shape
  if not typed_key and ndim == 0:  # a seed, checked as any lrtools integer
    return np.random.default_rng(host_integer(_CALL, "key_or_seed", key_or_seed, 0))
  if data is None or data.dtype != np.uint32 or data.ndim != 1:
    fail(_CALL, "key_or_seed", key_or_seed, "must be a non-negative int seed or a single concrete JAX PRNG "
         "key (batches are sampled on the host, outside jit)")
  return np.random.default_rng([int(w) for w in data])


MAX_BYTES = 4 * 2**30  # stacked batches live in host memory


def batches(dataset_x, dataset_y, batch_size: int, num_steps: int, key_or_seed) -> dict[str, np.ndarray]:
  """``num_steps`` shuffled minibatches stacked along a leading step axis: ``{"x": ..., "y": ...}``.

  Sampling is by epochs, on the host with NumPy: the indices are a stream of independent random
  permutations of ``range(N)``, one per epoch, cut into consecutive batches. So every example is seen once
  before any repeats, and each block of ``N`` consecutive draws holds every example exactly once (a batch
  may straddle two epochs; nothing is dropped). The result is a pure function of the arguments: an int seed
  or a JAX key (typed ``jax.random.key`` or raw ``jax.random.PRNGKey``) seeds ``np.random.default_rng``; a
  key and the int it was made from give different, equally deterministic streams.

  The arrays are NumPy, ready to feed to a jitted ``lax.scan`` (e.g. ``lr_range_test``); memory is
  ``num_steps * batch_size`` examples.

  Args:
    dataset_x: inputs with a leading example axis ``(N, ...)``, e.g. ``Dataset.x_train``.
    dataset_y: labels ``(N, ...)`` with the same ``N``.
    batch_size: examples per step, a positive integer (may exceed ``N``; every integer argument of lrtools
      fits int32).
    num_steps: number of steps, a positive integer.
    key_or_seed: a non-negative int seed (fits int32) or a concrete JAX PRNG key.

  Returns:
    ``{"x": (num_steps, batch_size, *x.shape[1:]), "y": (num_steps, batch_size, *y.shape[1:])}`` with the
    dtypes of the inputs.

  >>> import numpy as np
  >>> x, y = np.zeros((10, 64), np.float32), np.arange(10)
  >>> b = batches(x, y, batch_size=4, num_steps=5, key_or_seed=0)
  >>> b["x"].shape, b["y"].shape
  ((5, 4, 64), (5, 4))
  >>> sorted(b["y"].reshape(-1)[:10].tolist())  # the first epoch: every example once
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]

  References:
    Dive into Deep Learning, ch. 4 (minibatch iteration over a shuffled dataset); Smith 2017, "Cyclical
    Learning Rates for Training Neural Networks" (the LR range test these batches feed).
  """
  x, y = np.asarray(dataset_x), np.asarray(dataset_y)
  if x.ndim == 0 or y.ndim == 0 or len(x) != len(y) or len(x) == 0:
    raise ValueError(f"`{_CALL}(dataset_x=..., dataset_y=...)` must be non-empty arrays with the same "
                     f"leading length, got dataset_x.shape={x.shape}, dataset_y.shape={y.shape}")
  batch_size = host_integer(_CALL, "batch_size", batch_size, 1)
  num_steps = host_integer(_CALL, "num_steps", num_steps, 1)
  n, total = len(x), num_steps * batch_size
  size = total * (x[:1].nbytes + y[:1].nbytes)
  if size > MAX_BYTES:  # the batches are materialised on the host: refuse before allocating
    raise ValueError(f"`{_CALL}(batch_size=..., num_steps=...)` would stack {size / 2**30:.3g} GiB of batches "
                     f"(limit {MAX_BYTES / 2**30:g} GiB): pass fewer steps, or a (key, step) -> batch function "
                     f"to the range test, got batch_size={batch_size!r}, num_steps={num_steps!r}")
  rng = _rng(key_or_seed)
  epochs = -(-total // n)  # ceil
  order = np.concatenate([rng.permutation(n) for _ in range(epochs)])[:total]
  order = order.reshape(num_steps, batch_size)
  return {"x": x[order], "y": y[order]}
