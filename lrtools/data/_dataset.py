"""The `Dataset` container and the helpers every loader shares (argument checks, split, standardization).

Everything here is host-side NumPy: datasets are small, loaded once, and handed to jitted code as arrays.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lrtools._typing import check_integer, check_interval, concrete, fail


class Dataset(NamedTuple):
  """An in-memory classification dataset with a train and a validation split.

  The layout of ``x`` is chosen by the loader's ``flat`` argument: ``(N, H*W*C)`` for an MLP or
  ``(N, H, W, C)`` (NHWC, as flax's ``nn.Conv`` expects) for a CNN. ``image_shape`` always records
  ``(H, W, C)``, so either layout converts to the other with ``x.reshape(-1, *image_shape)`` or
  ``x.reshape(len(x), -1)``.

  Attributes:
    x_train: float32 inputs of the training split.
    y_train: int32 labels in ``[0, num_classes)`` of the training split.
    x_valid: float32 inputs of the validation split (same layout as ``x_train``).
    y_valid: int32 labels of the validation split.
    num_classes: number of classes.
    name: short name of the dataset, e.g. ``"digits"``.
    image_shape: ``(H, W, C)`` of one image.
  """
  x_train: np.ndarray
  y_train: np.ndarray
  x_valid: np.ndarray
  y_valid: np.ndarray
  num_classes: int
  name: str
  image_shape: tuple[int, int, int]


def _on_host(call: str, name: str, value) -> None:
  if concrete(value) is None:
    fail(call, name, value, "must be concrete, not traced (data are prepared on the host, outside jit)")


def host_integer(call: str, name: str, value, minimum: int) -> int:
  """``value`` as an int, checked as every lrtools integer is (``check_integer``: no bool, fits int32) and
  concrete (a tracer has no value to sample or split with)."""
  check_integer(call, name, value, minimum)
  _on_host(call, name, value)
  return int(value)


def host_fraction(call: str, name: str, value) -> float:
  """``value`` as a float in the open interval (0, 1), concrete."""
  check_interval(call, name, value, 0.0, 1.0, low_closed=False)
  _on_host(call, name, value)
  return float(value)


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Sorted (train, valid) indices holding ``round(fraction * n_c)`` examples of each class in valid.

  The split is drawn per class with ``np.random.default_rng(seed)``, so it depends only on the labels and
  the seed (not on scikit-learn's version). Each class with at least two examples keeps at least one
  example on each side.
  """
  rng = np.random.default_rng(seed)
  valid = []
  for c in np.unique(y):
    members = rng.permutation(np.flatnonzero(y == c))
    k = int(np.floor(fraction * len(members) + 0.5))  # round half up, not to even
    if len(members) >= 2:
      k = min(max(k, 1), len(members) - 1)
    valid.append(members[:k])
  valid_idx = np.sort(np.concatenate(valid))
  train_idx = np.setdiff1d(np.arange(len(y)), valid_idx)
  return train_idx, valid_idx


def standardize(x_train: np.ndarray, x_valid: np.ndarray, per_feature: bool
                ) -> tuple[np.ndarray, np.ndarray]:
  """Standardizes both splits with the TRAIN split's statistics (the validation set must not leak in).

  ``per_feature`` uses one mean/std per column of the flattened inputs, otherwise one scalar pair. A zero
  std (a pixel that is constant in train) is replaced by 1, so that feature becomes ``x - mean``.
  """
  flat = x_train.reshape(len(x_train), -1)
  axis = 0 if per_feature else None
  # Statistics accumulate in float64; the arrays themselves stay float32 (Fashion-MNIST is 47M pixels).
  mean = flat.mean(axis=axis, dtype=np.float64).astype(np.float32)
  std = flat.std(axis=axis, dtype=np.float64)
  std = np.where(std > 0, std, 1.0).astype(np.float32)

  def apply(x):
    z = (x.reshape(len(x), -1).astype(np.float32) - mean) / std
    return z.reshape(x.shape)

  return apply(x_train), apply(x_valid)


def layout(x: np.ndarray, image_shape: tuple[int, int, int], flat: bool) -> np.ndarray:
  """``x`` as float32 ``(N, H*W*C)`` when ``flat`` else ``(N, H, W, C)``."""
  shape = (len(x), -1) if flat else (len(x), *image_shape)
  return np.ascontiguousarray(x.reshape(shape), dtype=np.float32)
