"""Small embedded datasets for the LR range test CLI and the examples, and a minibatch sampler.

- :func:`load_digits`: scikit-learn's bundled 8x8 digits (needs ``pip install "lrtools[data]"``).
- :func:`load_fashion_mnist`: Fashion-MNIST from local IDX files or an ``.npz`` (never downloads).
- :func:`batches`: ``{"x", "y"}`` minibatches with a leading step axis, sampled by epochs.

All loaders return a :class:`Dataset` of NumPy arrays (x float32, y int32), standardized with train
statistics; ``flat`` chooses ``(N, features)`` or ``(N, H, W, 1)``.
"""

from lrtools.data._batches import batches as batches
from lrtools.data._dataset import Dataset as Dataset
from lrtools.data._digits import load_digits as load_digits
from lrtools.data._fashion_mnist import load_fashion_mnist as load_fashion_mnist
from lrtools.data._idx import read_idx as read_idx

__all__ = ["Dataset", "batches", "load_digits", "load_fashion_mnist", "read_idx"]
