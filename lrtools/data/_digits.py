"""scikit-learn's bundled 8x8 handwritten digits: the default dataset of the LR range test CLI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from lrtools._typing import check_flag
from lrtools.data._dataset import Dataset, host_fraction, host_integer, layout
from lrtools.data._dataset import standardize as _standardize
from lrtools.data._dataset import stratified_split

_CALL = "load_digits"
_IMAGE_SHAPE = (8, 8, 1)


def _bundled_digits() -> np.ndarray:
  """scikit-learn's ``datasets/data/digits.csv.gz``, read directly: importing scikit-learn (and SciPy) just
  for ``sklearn.datasets.load_digits`` costs more than a second, a third of a one-shot range test."""
  spec = importlib.util.find_spec("sklearn")
  if spec is None or not spec.submodule_search_locations:
    raise ImportError('`load_digits()` reads the copy bundled with scikit-learn; install it with '
                      '`pip install "lrtools[data]"`')
  path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
  if not path.exists():  # a future layout: fall back to the public API
    from sklearn import datasets
    bunch = datasets.load_digits()
    return np.column_stack([bunch.data, bunch.target]).astype(np.float64)
  return np.loadtxt(path, delimiter=",", dtype=np.float64)


def load_digits(validation_fraction: float = 0.2, seed: int = 0, flat: bool = True,
                standardize: bool = True) -> Dataset:
  """The 1797 8x8 handwritten digits bundled with scikit-learn (no download), split into train/validation.

  The split is stratified (each class keeps ``round(validation_fraction * n_class)`` validation examples)
  and deterministic: it is drawn from ``np.random.default_rng(seed)`` per class, so it does not change with
  the scikit-learn version. Both splits keep the original order of the examples.

  Pixels (integers in ``[0, 16]``) are standardized with the TRAIN split's per-pixel mean and std; pixels
  that are constant in train (a zero std) are only centred. With ``standardize=False`` they are scaled to
  ``[0, 1]`` instead.

  Args:
    validation_fraction: fraction of each class held out for validation, in (0, 1).
    seed: non-negative integer seed of the split (fits int32).
    flat: ``x`` of shape ``(N, 64)`` when True (an MLP), ``(N, 8, 8, 1)`` when False (a CNN).
    standardize: standardize with train statistics (True) or divide by 16 (False).

  Returns:
    A :class:`Dataset` with ``num_classes=10``, ``name="digits"``, ``image_shape=(8, 8, 1)``.

  Raises:
    ImportError: scikit-learn, an optional dependency, is not installed.

  >>> ds = load_digits()
  >>> ds.x_train.shape, ds.x_valid.shape, ds.num_classes
  ((1438, 64), (359, 64), 10)
  >>> load_digits(flat=False).x_train.shape
  (1438, 8, 8, 1)

  References:
    Alpaydin & Kaynak 1998, "Cascading Classifiers", Kybernetika 34(4); the UCI "Optical Recognition of
    Handwritten Digits" data set (https://archive.ics.uci.edu/dataset/80).
  """
  validation_fraction = host_fraction(_CALL, "validation_fraction", validation_fraction)
  seed = host_integer(_CALL, "seed", seed, 0)
  check_flag(_CALL, "flat", flat)
  check_flag(_CALL, "standardize", standardize)
  table = _bundled_digits()
  x = table[:, :-1]  # (1797, 64), integers 0..16
  y = table[:, -1].astype(np.int32)
  train, valid = stratified_split(y, validation_fraction, seed)
  x_train, x_valid = x[train], x[valid]
  if standardize:
    x_train, x_valid = _standardize(x_train, x_valid, per_feature=True)
  else:
    x_train, x_valid = x_train / 16.0, x_valid / 16.0
  return Dataset(
      x_train=layout(x_train, _IMAGE_SHAPE, flat),
      y_train=y[train],
      x_valid=layout(x_valid, _IMAGE_SHAPE, flat),
      y_valid=y[valid],
      num_classes=10,
      name="digits",
      image_shape=_IMAGE_SHAPE,
  )
