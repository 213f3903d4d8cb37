"""A reader for the IDX format of (Fashion-)MNIST, raw or gzip-compressed.

Layout (all integers big-endian): two zero bytes, a type code, the number of dimensions ``d``; then ``d``
uint32 sizes; then the data, row-major. Fashion-MNIST images have magic 0x00000803 (ubyte, 3 dims) and
labels 0x00000801 (ubyte, 1 dim).
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from lrtools._typing import check_integer, fail

# Type code -> big-endian NumPy dtype, from the format description on yann.lecun.com/exdb/mnist.
_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: str) -> bytes:
  with open(path, "rb") as f:
    raw = f.read()
  # An IDX file starts with a zero byte, so the gzip magic is unambiguous: sniff it rather than trust ".gz".
  if raw[:2] != _GZIP_MAGIC:
    return raw
  try:
    return gzip.decompress(raw)
  except (OSError, EOFError, zlib.error) as e:
    raise ValueError(f"`read_idx(path=...)` is a corrupt gzip file ({e}), got path={path!r}") from e


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
  """Reads one IDX file (raw, or gzip-compressed whatever its name) into a NumPy array.

  The magic number, the number of dimensions and the exact file length are validated, so a truncated
  download or a wrong file fails here with a ``ValueError`` rather than as garbage pixels later.

  Args:
    path: the file, e.g. ``train-images-idx3-ubyte`` or ``train-images-idx3-ubyte.gz``.
    ndim: the expected number of dimensions (3 for images, 1 for labels), or None to accept any.

  Returns:
    An array of the shape stored in the header, in native byte order (uint8 for (Fashion-)MNIST).

  >>> import os, struct, tempfile
  >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
  >>> with open(path, "wb") as f:
  ...   _ = f.write(struct.pack(">II", 0x00000801, 3) + bytes([7, 0, 9]))
  >>> read_idx(path, ndim=1).tolist()
  [7, 0, 9]

  References:
    LeCun, Cortes & Burges, "The MNIST database of handwritten digits" (the IDX format);
    Xiao, Rasul & Vollgraf 2017, "Fashion-MNIST", arXiv:1708.07747.
  """
  if not isinstance(path, (str, os.PathLike)):
    fail("read_idx", "path", path, "must be a path to an IDX file")
  if ndim is not None:
    check_integer("read_idx", "ndim", ndim, 1, 255)  # one header byte
  path = os.fspath(path)
  raw = _read_bytes(path)
  if len(raw) < 4:
    raise ValueError(f"`read_idx(path=...)` is too short for an IDX header ({len(raw)} bytes), "
                     f"got path={path!r}")
  zero, code, dims = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
  if zero != 0 or code not in _DTYPES or dims == 0:
    got = int.from_bytes(raw[:4], "big")
    hint = f" (expected 0x{0x800 + ndim:08x})" if ndim is not None else ""
    raise ValueError(f"`read_idx(path=...)` has an invalid IDX magic number 0x{got:08x}{hint}, "
                     f"got path={path!r}")
  if ndim is not None and dims != ndim:
    raise ValueError(f"`read_idx(path=...)` holds a {dims}-d array where a {ndim}-d one was expected "
                     f"(magic 0x{int.from_bytes(raw[:4], 'big'):08x}), got path={path!r}")
  header = 4 + 4 * dims
  if len(raw) < header:
    raise ValueError(f"`read_idx(path=...)` is truncated inside its header ({len(raw)} of {header} bytes), "
                     f"got path={path!r}")
  shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=dims, offset=4))
  dtype = _DTYPES[code]
  expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(raw) != expected:
    what = "truncated" if len(raw) < expected else "longer than its header says"
    raise ValueError(f"`read_idx(path=...)` is {what}: shape {shape} needs {expected} bytes, found "
                     f"{len(raw)}, got path={path!r}")
  data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
  return data.astype(dtype.newbyteorder("="))  # a writable copy in native byte order
