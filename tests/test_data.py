"""Tests of lrtools.data: digits split/standardization, the IDX/npz Fashion-MNIST loaders on tiny files
written here, and the epoch sampler."""

import gzip
import os
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrtools import data
from lrtools.data import Dataset, batches, load_digits, load_fashion_mnist, read_idx

try:
  import sklearn  # noqa: F401
  HAVE_SKLEARN = True
except ImportError:
  HAVE_SKLEARN = False
needs_sklearn = pytest.mark.skipif(not HAVE_SKLEARN, reason='needs pip install "lrtools[data]"')

# What the strict input rules reject, generated: bools as numbers, strings/None, vectors as scalars,
# integers above 2**31 - 1, non-integral floats.
NOT_FLAGS = st.one_of(st.text(), st.none(), st.integers(), st.floats(), st.just(np.array([True])),
                      st.lists(st.booleans(), min_size=1, max_size=2))
NOT_COUNTS = st.one_of(st.booleans(), st.integers(max_value=0), st.integers(min_value=2**31), st.text(),
                       st.none(), st.floats().filter(lambda v: not (np.isfinite(v) and v == int(v) and v >= 1)),
                       st.lists(st.integers(1, 9), min_size=1, max_size=2), st.just(np.array([3])))
NOT_SEEDS = st.one_of(st.booleans(), st.integers(max_value=-1), st.integers(min_value=2**31), st.text(),
                      st.none(), st.floats().filter(lambda v: not (np.isfinite(v) and v == int(v) and v >= 0)))
NOT_FRACTIONS = st.one_of(st.booleans(), st.floats().filter(lambda v: not 0 < v < 1), st.text(), st.none(),
                          st.just([0.2]), st.just(np.array([0.2])), st.just(0.2j))

# --------------------------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits():
  if not HAVE_SKLEARN:
    pytest.skip('needs pip install "lrtools[data]"')
  return load_digits()


def test_public_names():
  assert sorted(data.__all__) == ["Dataset", "batches", "load_digits", "load_fashion_mnist", "read_idx"]


@needs_sklearn
def test_digits_shapes_and_dtypes(digits):
  assert isinstance(digits, Dataset)
  assert digits.name == "digits" and digits.num_classes == 10 and digits.image_shape == (8, 8, 1)
  assert digits.x_train.shape[1:] == (64,) and digits.x_valid.shape[1:] == (64,)
  assert len(digits.x_train) + len(digits.x_valid) == 1797
  assert len(digits.x_train) == len(digits.y_train) and len(digits.x_valid) == len(digits.y_valid)
  assert digits.x_train.dtype == np.float32 and digits.x_valid.dtype == np.float32
  assert digits.y_train.dtype == np.int32 and digits.y_valid.dtype == np.int32
  assert set(np.unique(digits.y_train)) == set(range(10))


@needs_sklearn
def test_digits_images_layout_matches_flat(digits):
  images = load_digits(flat=False)
  assert images.x_train.shape == (len(digits.x_train), 8, 8, 1)
  np.testing.assert_array_equal(images.x_train.reshape(len(images.x_train), -1), digits.x_train)
  np.testing.assert_array_equal(images.y_valid, digits.y_valid)


@needs_sklearn
def test_digits_standardized_with_train_statistics(digits):
  mean, std = digits.x_train.mean(axis=0), digits.x_train.std(axis=0)
  np.testing.assert_allclose(mean, 0.0, atol=1e-5)
  varying = std > 0  # pixels constant in train are only centred (zero-std guard)
  assert varying.sum() > 50
  np.testing.assert_allclose(std[varying], 1.0, atol=1e-4)
  np.testing.assert_array_equal(digits.x_train[:, ~varying], 0.0)
  assert np.all(np.isfinite(digits.x_valid))


@needs_sklearn
def test_digits_unstandardized_in_unit_interval():
  ds = load_digits(standardize=False)
  assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0


@needs_sklearn
def test_digits_split_deterministic_and_disjoint(digits):
  again = load_digits()
  for a, b in zip(digits[:4], again[:4]):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(load_digits(seed=1).y_valid, digits.y_valid)
  # Undo the scaling and compare multisets of (pixels, label) rows with scikit-learn's: the two splits
  # together hold every example exactly once, so they are disjoint and cover the data.
  from sklearn.datasets import load_digits as sk_load_digits
  raw = load_digits(standardize=False)

  def rows(xs, ys):
    return sorted(np.round(x * 16).astype(np.uint8).tobytes() + bytes([t]) for x, t in zip(xs, ys))

  sk = sk_load_digits()
  got = rows(raw.x_train, raw.y_train) + rows(raw.x_valid, raw.y_valid)
  assert sorted(got) == rows(sk.data / 16, sk.target)


@needs_sklearn
def test_digits_split_is_stratified(digits):
  all_counts = np.bincount(np.concatenate([digits.y_train, digits.y_valid]), minlength=10)
  valid_counts = np.bincount(digits.y_valid, minlength=10)
  np.testing.assert_array_equal(valid_counts, np.floor(0.2 * all_counts + 0.5).astype(int))
  frac = load_digits(validation_fraction=0.5)
  assert np.all(np.abs(np.bincount(frac.y_valid, minlength=10) - all_counts / 2) <= 0.5)


@pytest.mark.parametrize("kwargs, name", [
    ({"validation_fraction": 1.5}, "validation_fraction"),
    ({"validation_fraction": 0.0}, "validation_fraction"),
    ({"validation_fraction": "0.2"}, "validation_fraction"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"flat": 1}, "flat"),
    ({"standardize": None}, "standardize"),
])
def test_digits_bad_arguments(kwargs, name):
  with pytest.raises(ValueError, match=rf"`load_digits\({name}=\.\.\.\)`.*got {name}="):
    load_digits(**kwargs)


@given(st.sampled_from(["flat", "standardize"]), NOT_FLAGS)
def test_digits_flags_must_be_bools(name, value):
  with pytest.raises(ValueError, match=rf"`load_digits\({name}=\.\.\.\)` must be True or False, got {name}="):
    load_digits(**{name: value})


@given(NOT_SEEDS)
def test_digits_seed_must_be_an_int32_integer(seed):
  with pytest.raises(ValueError, match=r"`load_digits\(seed=\.\.\.\)` .*got seed="):
    load_digits(seed=seed)


@given(NOT_FRACTIONS)
def test_digits_fraction_must_be_a_scalar_in_the_open_unit_interval(fraction):
  with pytest.raises(ValueError, match=r"`load_digits\(validation_fraction=\.\.\.\)` .*got validation_fraction="):
    load_digits(validation_fraction=fraction)


@needs_sklearn
def test_digits_scalars_of_any_type(digits):
  same = load_digits(validation_fraction=np.float64(0.2), seed=np.int64(0), flat=np.bool_(True))
  np.testing.assert_array_equal(same.y_valid, digits.y_valid)
  np.testing.assert_array_equal(load_digits(seed=3.0).y_valid, load_digits(seed=3).y_valid)


def test_digits_traced_arguments_are_rejected():
  with pytest.raises(ValueError, match=r"`load_digits\(seed=\.\.\.\)` must be concrete"):
    jax.jit(lambda s: load_digits(seed=s).x_train)(0)
  with pytest.raises(ValueError, match=r"`load_digits\(validation_fraction=\.\.\.\)` must be concrete"):
    jax.jit(lambda f: load_digits(validation_fraction=f).x_train)(0.2)


def test_digits_missing_sklearn_hint(monkeypatch):
  import importlib.util
  real_find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name.startswith("sklearn") else real_find_spec(name, *a))
  with pytest.raises(ImportError, match=r'pip install "lrtools\[data\]"'):
    load_digits()


# ------------------------------------------------------------------------------ Fashion-MNIST (tiny)

H, W = 3, 2  # tiny images; the loader reads the size from the header
RNG = np.random.default_rng(0)
X_TRAIN = RNG.integers(0, 256, (20, H, W), dtype=np.uint8)
Y_TRAIN = (np.arange(20) % 10).astype(np.uint8)
X_TEST = RNG.integers(0, 256, (10, H, W), dtype=np.uint8)
Y_TEST = np.arange(10)[::-1].astype(np.uint8)
NAMES = {"train-images-idx3-ubyte": X_TRAIN, "train-labels-idx1-ubyte": Y_TRAIN,
         "t10k-images-idx3-ubyte": X_TEST, "t10k-labels-idx1-ubyte": Y_TEST}


def idx_bytes(array: np.ndarray) -> bytes:
  """IDX encoding written from the format description, independent of the reader."""
  magic = 0x00000800 | array.ndim
  return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_dir(directory, gz: bool | dict = False):
  for name, array in NAMES.items():
    use_gz = gz.get(name, False) if isinstance(gz, dict) else gz
    payload = idx_bytes(array)
    if use_gz:
      (directory / (name + ".gz")).write_bytes(gzip.compress(payload))
    else:
      (directory / name).write_bytes(payload)
  return directory


MIXED = {"train-images-idx3-ubyte": True, "t10k-labels-idx1-ubyte": True}


@pytest.mark.parametrize("gz", [False, True, MIXED], ids=["raw", "gz", "mixed"])
def test_fashion_idx_round_trip(tmp_path, gz):
  ds = load_fashion_mnist(write_idx_dir(tmp_path, gz), standardize=False)
  assert ds.name == "fashion_mnist" and ds.num_classes == 10 and ds.image_shape == (H, W, 1)
  assert ds.x_train.shape == (20, H, W, 1) and ds.x_valid.shape == (10, H, W, 1)  # t10k is validation
  assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
  np.testing.assert_array_equal(ds.x_train[..., 0], X_TRAIN / np.float32(255))
  np.testing.assert_array_equal(ds.x_valid[..., 0], X_TEST / np.float32(255))
  np.testing.assert_array_equal(ds.y_train, Y_TRAIN)
  np.testing.assert_array_equal(ds.y_valid, Y_TEST)


def test_fashion_npz_matches_idx(tmp_path):
  npz = tmp_path / "fashion.npz"
  np.savez(npz, x_train=X_TRAIN, y_train=Y_TRAIN.astype(np.int64), x_test=X_TEST, y_test=Y_TEST)
  (tmp_path / "idx").mkdir()
  from_idx = load_fashion_mnist(write_idx_dir(tmp_path / "idx"), flat=True)
  from_npz = load_fashion_mnist(str(npz), flat=True)
  assert from_npz.x_train.shape == (20, H * W)
  for a, b in zip(from_idx[:4], from_npz[:4]):
    np.testing.assert_array_equal(a, b)


def test_fashion_standardized_with_train_statistics(tmp_path):
  ds = load_fashion_mnist(write_idx_dir(tmp_path))
  assert abs(float(ds.x_train.mean())) < 1e-5 and abs(float(ds.x_train.std()) - 1) < 1e-5
  pixels = X_TRAIN / 255.0
  expected = (X_TEST / 255.0 - pixels.mean()) / pixels.std()
  np.testing.assert_allclose(ds.x_valid[..., 0], expected, rtol=1e-5, atol=1e-5)


def test_fashion_validation_fraction_splits_train(tmp_path):
  write_idx_dir(tmp_path)
  ds = load_fashion_mnist(tmp_path, validation_fraction=0.5, standardize=False, seed=3)
  assert len(ds.y_train) == len(ds.y_valid) == 10
  np.testing.assert_array_equal(np.bincount(ds.y_valid, minlength=10), 1)  # stratified: one of each class
  rows = {r.tobytes() for r in X_TRAIN}
  pixels = np.round(np.concatenate([ds.x_train, ds.x_valid])[..., 0] * 255).astype(np.uint8)
  got = [r.tobytes() for r in pixels]
  assert sorted(got) == sorted(rows)  # disjoint and covering train (t10k untouched)
  again = load_fashion_mnist(tmp_path, validation_fraction=0.5, standardize=False, seed=3)
  np.testing.assert_array_equal(ds.x_valid, again.x_valid)


@given(st.sampled_from(["flat", "standardize"]), NOT_FLAGS)
def test_fashion_flags_must_be_bools(name, value):
  # Arguments are checked before the files are looked for.
  with pytest.raises(ValueError, match=rf"`load_fashion_mnist\({name}=\.\.\.\)` must be True or False"):
    load_fashion_mnist("/nonexistent", **{name: value})


@given(NOT_SEEDS, st.one_of(st.none(), NOT_FRACTIONS))
def test_fashion_seed_and_fraction_are_checked(seed, fraction):
  with pytest.raises(ValueError, match=r"`load_fashion_mnist\((seed|validation_fraction)=\.\.\.\)`"):
    load_fashion_mnist("/nonexistent", seed=seed, validation_fraction=fraction)


def test_fashion_missing_files_are_named(tmp_path):
  write_idx_dir(tmp_path)
  os.remove(tmp_path / "t10k-images-idx3-ubyte")
  os.remove(tmp_path / "train-labels-idx1-ubyte")
  with pytest.raises(FileNotFoundError) as info:
    load_fashion_mnist(tmp_path)
  message = str(info.value)
  assert "missing 2 of the 4" in message and str(tmp_path) in message
  assert "t10k-images-idx3-ubyte[.gz]" in message and "train-labels-idx1-ubyte[.gz]" in message
  assert "train-images" not in message.split("https")[0] and "fashion-mnist" in message


def test_fashion_missing_path(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    load_fashion_mnist(tmp_path / "nowhere")


@pytest.mark.parametrize("corrupt", ["magic", "truncated", "trailing", "ndim", "gzip"])
def test_fashion_corrupt_idx_raises(tmp_path, corrupt):
  write_idx_dir(tmp_path)
  target = tmp_path / "train-images-idx3-ubyte"
  payload = target.read_bytes()
  if corrupt == "magic":
    payload = b"\x00\x00\x07\x03" + payload[4:]
  elif corrupt == "truncated":
    payload = payload[:-5]
  elif corrupt == "trailing":
    payload = payload + b"\x00"
  elif corrupt == "ndim":
    payload = idx_bytes(Y_TRAIN)
  else:
    os.remove(target)
    target = tmp_path / "train-images-idx3-ubyte.gz"
    payload = gzip.compress(payload)[:-10]
  target.write_bytes(payload)
  with pytest.raises(ValueError, match="train-images-idx3-ubyte"):
    load_fashion_mnist(tmp_path)


def test_read_idx_reports_magic_and_length(tmp_path):
  path = tmp_path / "x"
  path.write_bytes(struct.pack(">II", 0x12345678, 1))
  with pytest.raises(ValueError, match="magic number 0x12345678"):
    read_idx(path)
  path.write_bytes(struct.pack(">III", 0x00000803, 2, 2) + b"\x00" * 3)
  with pytest.raises(ValueError, match="truncated"):
    read_idx(path)
  path.write_bytes(struct.pack(">II", 0x00000803, 2))
  with pytest.raises(ValueError, match="inside its header"):
    read_idx(path)
  # Other IDX dtypes are big-endian on disk and come back native.
  values = np.array([[1.5, -2.0]], ">f4")
  path.write_bytes(struct.pack(">III", 0x00000D02, 1, 2) + values.tobytes())
  out = read_idx(path, ndim=2)
  assert out.dtype == np.float32 and out.dtype.isnative and out.tolist() == [[1.5, -2.0]]


@pytest.mark.parametrize("kwargs, name", [({"ndim": True}, "ndim"), ({"ndim": "3"}, "ndim"), ({"ndim": 0}, "ndim"),
                                          ({"ndim": 256}, "ndim"), ({"ndim": 1.5}, "ndim"), ({"path": None}, "path"),
                                          ({"path": 3}, "path")])
def test_read_idx_bad_arguments(tmp_path, kwargs, name):
  path = tmp_path / "labels"
  path.write_bytes(idx_bytes(Y_TRAIN))
  with pytest.raises(ValueError, match=rf"`read_idx\({name}=\.\.\.\)` .*got {name}="):
    read_idx(**{"path": path, **kwargs})
  assert read_idx(path, ndim=np.int64(1)).tolist() == Y_TRAIN.tolist()


@pytest.mark.parametrize("case", ["labels", "length", "keys", "dtype", "not_npz"])
def test_fashion_invalid_npz_raises(tmp_path, case):
  arrays = {"x_train": X_TRAIN, "y_train": Y_TRAIN, "x_test": X_TEST, "y_test": Y_TEST}
  if case == "labels":
    arrays["y_test"] = Y_TEST + 5
  elif case == "length":
    arrays["y_train"] = Y_TRAIN[:-1]
  elif case == "keys":
    del arrays["x_test"]
  elif case == "dtype":
    arrays["x_train"] = X_TRAIN.astype(np.float32)
  path = tmp_path / "fashion.npz"
  if case == "not_npz":
    path.write_bytes(b"not a zip file")
  else:
    np.savez(path, **arrays)
  with pytest.raises(ValueError, match=r"`load_fashion_mnist\(path=\.\.\.\)`"):
    load_fashion_mnist(path)


@pytest.mark.parametrize("kwargs, name", [
    ({"validation_fraction": 1.0}, "validation_fraction"),
    ({"flat": "yes"}, "flat"),
    ({"standardize": 0}, "standardize"),
    ({"seed": -2}, "seed"),
])
def test_fashion_bad_arguments(tmp_path, kwargs, name):
  with pytest.raises(ValueError, match=rf"`load_fashion_mnist\({name}=\.\.\.\)`.*got {name}="):
    load_fashion_mnist(write_idx_dir(tmp_path), **kwargs)
  with pytest.raises(ValueError, match=r"`load_fashion_mnist\(path=\.\.\.\)`"):
    load_fashion_mnist(None)


# ------------------------------------------------------------------------------------------- batches


def test_batches_shapes_and_dtypes():
  x = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)
  y = np.arange(7, dtype=np.int32)
  b = batches(x, y, batch_size=4, num_steps=6, key_or_seed=0)
  assert set(b) == {"x", "y"}
  assert b["x"].shape == (6, 4, 3) and b["y"].shape == (6, 4)
  assert b["x"].dtype == np.float32 and b["y"].dtype == np.int32
  np.testing.assert_array_equal(b["x"][..., 0], 3 * b["y"])  # x and y stay paired


def test_batches_image_layout():
  x, y = np.zeros((9, 8, 8, 1), np.float32), np.zeros((9,), np.int32)
  b = batches(x, y, batch_size=8, num_steps=3, key_or_seed=1)
  assert b["x"].shape == (3, 8, 8, 8, 1) and b["y"].shape == (3, 8)


def test_batches_deterministic():
  x, y = np.zeros((50, 2)), np.arange(50)
  a = batches(x, y, 5, 20, 7)
  np.testing.assert_array_equal(a["y"], batches(x, y, 5, 20, 7)["y"])
  assert not np.array_equal(a["y"], batches(x, y, 5, 20, 8)["y"])
  for key in (jax.random.key(3), jax.random.PRNGKey(3)):
    k1, k2 = batches(x, y, 5, 20, key)["y"], batches(x, y, 5, 20, key)["y"]
    np.testing.assert_array_equal(k1, k2)
  np.testing.assert_array_equal(batches(x, y, 5, 20, jax.random.key(3))["y"],
                                batches(x, y, 5, 20, jax.random.PRNGKey(3))["y"])


@pytest.mark.parametrize("n, batch_size, num_steps", [(10, 3, 17), (12, 4, 9), (5, 7, 4)])
def test_batches_epoch_coverage(n, batch_size, num_steps):
  b = batches(np.zeros((n, 1)), np.arange(n), batch_size, num_steps, key_or_seed=0)
  stream = b["y"].reshape(-1)
  full_epochs = len(stream) // n
  assert full_epochs >= 1
  for e in range(full_epochs):
    np.testing.assert_array_equal(np.sort(stream[e * n:(e + 1) * n]), np.arange(n))
  tail = stream[full_epochs * n:]
  assert len(set(tail.tolist())) == len(tail)  # the partial epoch has no repeats either
  epochs = [tuple(stream[e * n:(e + 1) * n]) for e in range(full_epochs)]
  if full_epochs > 1:
    assert len(set(epochs)) > 1  # a new permutation per epoch


@pytest.mark.parametrize("kwargs, name", [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"batch_size": True}, "batch_size"),
    ({"batch_size": [2]}, "batch_size"),
    ({"num_steps": 2**31}, "num_steps"),  # used to start sampling 2**31 batches
    ({"num_steps": -1}, "num_steps"),
    ({"key_or_seed": -1}, "key_or_seed"),
    ({"key_or_seed": "seed"}, "key_or_seed"),
    ({"key_or_seed": 1.5}, "key_or_seed"),
])
def test_batches_bad_arguments(kwargs, name):
  args = {"batch_size": 2, "num_steps": 3, "key_or_seed": 0, **kwargs}
  with pytest.raises(ValueError, match=rf"`batches\({name}=\.\.\.\)`.*got {name}="):
    batches(np.zeros((4, 1)), np.arange(4), **args)


@given(st.sampled_from(["batch_size", "num_steps"]), NOT_COUNTS)
def test_batches_counts_must_be_positive_int32_integers(name, value):
  args = {"batch_size": 2, "num_steps": 3, "key_or_seed": 0, name: value}
  with pytest.raises(ValueError, match=rf"`batches\({name}=\.\.\.\)` .*got {name}="):
    batches(np.zeros((4, 1)), np.arange(4), **args)


@given(st.one_of(NOT_SEEDS, st.just(jax.random.key(0)[None]), st.just(np.zeros(2, np.int32)),
                 st.just([[1], [1, 2]])))
def test_batches_key_or_seed_is_checked(value):
  with pytest.raises(ValueError, match=r"`batches\(key_or_seed=\.\.\.\)` .*got key_or_seed="):
    batches(np.zeros((4, 1)), np.arange(4), 2, 3, value)


def test_batches_integers_of_any_type():
  x, y = np.zeros((10, 1)), np.arange(10)
  expected = batches(x, y, 3, 4, 5)["y"]
  for args in [(np.int64(3), np.int32(4), np.uint8(5)), (3.0, 4.0, 5.0), (jnp.int32(3), np.array(4), jnp.array(5))]:
    np.testing.assert_array_equal(batches(x, y, *args)["y"], expected)


def test_batches_mismatched_data():
  with pytest.raises(ValueError, match=r"dataset_x.shape=\(4, 1\), dataset_y.shape=\(3,\)"):
    batches(np.zeros((4, 1)), np.arange(3), 2, 3, 0)
  with pytest.raises(ValueError, match="non-empty"):
    batches(np.zeros((0, 1)), np.zeros(0), 2, 3, 0)


def test_batches_rejects_traced_arguments():
  x, y = np.zeros((4, 1)), np.arange(4)
  with pytest.raises(ValueError, match="key_or_seed"):
    jax.jit(lambda k: batches(x, y, 2, 3, k)["y"])(jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match=r"`batches\(key_or_seed=\.\.\.\)` must be concrete"):
    jax.jit(lambda k: batches(x, y, 2, 3, k)["y"])(7)
  with pytest.raises(ValueError, match=r"`batches\(num_steps=\.\.\.\)` must be concrete"):
    jax.jit(lambda n: batches(x, y, 2, n, 0)["y"])(3)
