"""Fashion-MNIST from local files only (four IDX files or one ``.npz``): lrtools never downloads."""

from __future__ import annotations

import os
import zipfile

import numpy as np

from lrtools._typing import check_flag, fail
from lrtools.data._dataset import Dataset, host_fraction, host_integer, layout
from lrtools.data._dataset import standardize as _standardize
from lrtools.data._dataset import stratified_split
from lrtools.data._idx import read_idx

_CALL = "load_fashion_mnist"
_NUM_CLASSES = 10
_FILES = {  # split -> (images, labels), the names used by zalandoresearch/fashion-mnist
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_HINT = ("Get the IDX files from https://github.com/zalandoresearch/fashion-mnist (folder data/fashion), "
         "or point path at an .npz with keys x_train, y_train, x_test, y_test (like keras' mnist.npz).")


def _find(directory: str, name: str) -> str | None:
  for candidate in (name, name + ".gz"):
    full = os.path.join(directory, candidate)
    if os.path.isfile(full):
      return full
  return None


def _from_directory(directory: str) -> dict[str, np.ndarray]:
  names = [name for split in ("train", "test") for name in _FILES[split]]
  found = {name: _find(directory, name) for name in names}
  missing = [f"{name}[.gz]" for name, full in found.items() if full is None]
  if missing:
    raise FileNotFoundError(
        f"`{_CALL}(path=...)` is missing {len(missing)} of the 4 Fashion-MNIST files in "
        f"{os.path.abspath(directory)!r}: {', '.join(missing)} (each looked for raw and with .gz). "
        f"{_HINT}")
  arrays = {}
  for split in ("train", "test"):
    images, labels = _FILES[split]
    arrays[f"x_{split}"] = read_idx(found[images], ndim=3)
    arrays[f"y_{split}"] = read_idx(found[labels], ndim=1)
  return arrays


def _from_npz(path: str) -> dict[str, np.ndarray]:
  try:
    npz = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f"`{_CALL}(path=...)` must be a directory of IDX files or a readable .npz "
                     f"({e}), got path={path!r}") from e
  if not isinstance(npz, np.lib.npyio.NpzFile):  # a single .npy array
    raise ValueError(f"`{_CALL}(path=...)` must be an .npz archive, not a single .npy array, "
                     f"got path={path!r}")
  with npz:
    missing = [k for k in _NPZ_KEYS if k not in npz.files]
    if missing:
      raise ValueError(f"`{_CALL}(path=...)` is an .npz without the keys {', '.join(missing)} "
                       f"(it has {', '.join(npz.files) or 'none'}), got path={path!r}")
    try:
      return {k: np.asarray(npz[k]) for k in _NPZ_KEYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # a damaged member
      raise ValueError(f"`{_CALL}(path=...)` is a corrupt .npz ({e}), got path={path!r}") from e


def _check_split(arrays: dict[str, np.ndarray], split: str, path: str) -> None:
  x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]

  def fail(problem):
    raise ValueError(f"`{_CALL}(path=...)` holds invalid {split} data: {problem}, got path={path!r}")

  if x.dtype != np.uint8 or x.ndim != 3:
    fail(f"images must be uint8 of shape (N, H, W), got {x.dtype} of shape {x.shape}")
  if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
    fail(f"labels must be 1-d integers, got {y.dtype} of shape {y.shape}")
  if len(x) != len(y):
    fail(f"{len(x)} images but {len(y)} labels")
  if len(y) and (y.min() < 0 or y.max() >= _NUM_CLASSES):
    fail(f"labels must lie in [0, {_NUM_CLASSES}), got range [{y.min()}, {y.max()}]")


def load_fashion_mnist(path: str | os.PathLike, flat: bool = False, validation_fraction: float | None = None,
                       standardize: bool = True, seed: int = 0) -> Dataset:
  """Fashion-MNIST (28x28 grayscale clothing, 10 classes) from local IDX files or an ``.npz``.

  ``path`` is either a directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each raw or ``.gz``), or an ``.npz`` file with
  keys ``x_train, y_train, x_test, y_test`` (uint8 images ``(N, H, W)``, integer labels). Nothing is
  downloaded. The image size is read from the files, so MNIST in the same format loads too.

  Validation split: by default (``validation_fraction=None``) the official 10 000-image t10k split is the
  validation set, as in D2L. With a fraction, a stratified, seeded part of the 60 000 training images is
  held out instead and t10k is left untouched (it must still be present).

  Pixels are scaled to ``[0, 1]``; with ``standardize=True`` they are then standardized with the TRAIN
  split's global (scalar) mean and std, the usual choice for images (a per-pixel std would blow up the
  nearly-always-black border pixels).

  Args:
    path: a directory of the four IDX files, or an ``.npz`` file.
    flat: ``x`` of shape ``(N, H*W)`` when True (an MLP), ``(N, H, W, 1)`` when False (a CNN).
    validation_fraction: None to validate on t10k, or a fraction in (0, 1) of train to hold out.
    standardize: standardize with train statistics (True) or keep pixels in ``[0, 1]`` (False).
    seed: non-negative integer seed of the split, fits int32 (used only with a ``validation_fraction``).

  Returns:
    A :class:`Dataset` with ``num_classes=10``, ``name="fashion_mnist"``, ``image_shape=(H, W, 1)``.

  Raises:
    FileNotFoundError: ``path`` does not exist, or the directory lacks some of the four files (all named).
    ValueError: a corrupt file (IDX magic, dimensions or length; npz keys, dtypes or labels) or argument.

  >>> import os, tempfile
  >>> import numpy as np
  >>> rng = np.random.default_rng(0)
  >>> path = os.path.join(tempfile.mkdtemp(), "fashion_mnist.npz")
  >>> np.savez(path, x_train=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), y_train=np.arange(50) % 10,
  ...          x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), y_test=np.arange(20) % 10)
  >>> ds = load_fashion_mnist(path)
  >>> ds.x_train.shape, ds.x_valid.shape, ds.image_shape
  ((50, 28, 28, 1), (20, 28, 28, 1), (28, 28, 1))
  >>> load_fashion_mnist(path, flat=True, validation_fraction=0.2).x_valid.shape
  (10, 784)

  References:
    Xiao, Rasul & Vollgraf 2017, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning
    Algorithms", arXiv:1708.07747; Dive into Deep Learning, ch. 4 ("The Image Classification Dataset").
  """
  if not isinstance(path, (str, os.PathLike)):
    fail(_CALL, "path", path, "must be a path to a directory or an .npz file")
  check_flag(_CALL, "flat", flat)
  if validation_fraction is not None:
    validation_fraction = host_fraction(_CALL, "validation_fraction", validation_fraction)
  check_flag(_CALL, "standardize", standardize)
  seed = host_integer(_CALL, "seed", seed, 0)
  path = os.fspath(path)
  if os.path.isdir(path):
    arrays = _from_directory(path)
  elif os.path.isfile(path):
    arrays = _from_npz(path)
  else:
    raise FileNotFoundError(f"`{_CALL}(path=...)` must be an existing directory or .npz file, but "
                            f"{os.path.abspath(path)!r} does not exist, got path={path!r}. {_HINT}")
  for split in ("train", "test"):
    _check_split(arrays, split, path)
  if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
    raise ValueError(f"`{_CALL}(path=...)` holds train images of size {arrays['x_train'].shape[1:]} but "
                     f"test images of size {arrays['x_test'].shape[1:]}, got path={path!r}")

  x, y = arrays["x_train"], arrays["y_train"].astype(np.int32)
  if validation_fraction is None:
    x_train, y_train = x, y
    x_valid, y_valid = arrays["x_test"], arrays["y_test"].astype(np.int32)
  else:
    train, valid = stratified_split(y, validation_fraction, seed)
    x_train, y_train, x_valid, y_valid = x[train], y[train], x[valid], y[valid]
  x_train = x_train.astype(np.float32) / 255.0
  x_valid = x_valid.astype(np.float32) / 255.0
  if standardize:
    x_train, x_valid = _standardize(x_train, x_valid, per_feature=False)
  image_shape = (*x.shape[1:], 1)
  return Dataset(
      x_train=layout(x_train, image_shape, flat),
      y_train=y_train,
      x_valid=layout(x_valid, image_shape, flat),
      y_valid=y_valid,
      num_classes=_NUM_CLASSES,
      name="fashion_mnist",
      image_shape=image_shape,
  )
