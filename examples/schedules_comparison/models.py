"""The example's models, in Flax NNX: a LeNet-style CNN for images and greydanus/mnist1d's three baselines.

Training is functional (``lrtools.train_loop`` takes a pure ``loss(params, batch)``), so a model is split once
into its static ``graphdef`` and its parameter ``State`` (``nnx.split``) and merged back inside the loss.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx


class LeNet(nnx.Module):
  """LeNet-5 (D2L 7.6) with ReLU and max-pooling: conv6 → pool → conv16 → pool → 120 → 84 → classes.

  On 28×28 images it is D2L's network (5×5 kernels, the second without padding: 16·5·5 features). Images
  smaller than 12 pixels (the 8×8 digits) cannot take a second unpadded 5×5 kernel after pooling, so there the
  second convolution is 3×3 with 'SAME' padding (16·2·2 features).
  """

  def __init__(self, image_shape: tuple[int, int, int], num_classes: int, *, rngs: nnx.Rngs):
    h, w, c = image_shape
    small = min(h, w) < 12
    self.conv1 = nnx.Conv(c, 6, (5, 5), padding="SAME", rngs=rngs)
    kernel, padding = ((3, 3), "SAME") if small else ((5, 5), "VALID")
    self.conv2 = nnx.Conv(6, 16, kernel, padding=padding, rngs=rngs)
    h2, w2 = (h // 4, w // 4) if small else ((h // 2 - 4) // 2, (w // 2 - 4) // 2)
    self.fc1 = nnx.Linear(16 * h2 * w2, 120, rngs=rngs)
    self.fc2 = nnx.Linear(120, 84, rngs=rngs)
    self.fc3 = nnx.Linear(84, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = nnx.max_pool(nnx.relu(self.conv1(x)), (2, 2), strides=(2, 2))
    x = nnx.max_pool(nnx.relu(self.conv2(x)), (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    return self.fc3(nnx.relu(self.fc2(nnx.relu(self.fc1(x)))))


class Logistic(nnx.Module):
  """Multinomial logistic regression (greydanus/mnist1d ``LinearBase``; published ≈ 32 % on MNIST-1D)."""

  def __init__(self, num_features: int, num_classes: int, *, rngs: nnx.Rngs):
    self.linear = nnx.Linear(num_features, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.linear(x.reshape((x.shape[0], -1)))


class ResidualMLP(nnx.Module):
  """greydanus/mnist1d ``MLPBase``: h = relu(W1 x); h = h + relu(W2 h); logits = W3 h (published ≈ 68 %)."""

  def __init__(self, num_features: int, num_classes: int, hidden: int = 100, *, rngs: nnx.Rngs):
    self.linear1 = nnx.Linear(num_features, hidden, rngs=rngs)
    self.linear2 = nnx.Linear(hidden, hidden, rngs=rngs)
    self.linear3 = nnx.Linear(hidden, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    h = nnx.relu(self.linear1(x.reshape((x.shape[0], -1))))
    h = h + nnx.relu(self.linear2(h))
    return self.linear3(h)


class ConvNet1D(nnx.Module):
  """greydanus/mnist1d ``ConvBase``: three 1-D convolutions (25 channels, stride 2, padding 1) and a linear
  head (published ≈ 94 %). A length-40 signal becomes 19 → 10 → 5 positions, 125 features."""

  def __init__(self, num_features: int, num_classes: int, channels: int = 25, *, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(1, channels, (5,), strides=(2,), padding=((1, 1),), rngs=rngs)
    self.conv2 = nnx.Conv(channels, channels, (3,), strides=(2,), padding=((1, 1),), rngs=rngs)
    self.conv3 = nnx.Conv(channels, channels, (3,), strides=(2,), padding=((1, 1),), rngs=rngs)
    length = num_features
    for kernel in (5, 3, 3):
      length = (length + 2 - kernel) // 2 + 1
    self.linear = nnx.Linear(channels * length, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    h = x.reshape((x.shape[0], -1, 1))  # (N, length, 1 channel): NWC, as nnx.Conv expects
    for conv in (self.conv1, self.conv2, self.conv3):
      h = nnx.relu(conv(h))
    return self.linear(h.reshape((h.shape[0], -1)))


IMAGE_MODELS = ("lenet",)
SIGNAL_MODELS = ("logistic", "mlp", "cnn")


def model_factory(name: str, input_shape: tuple[int, ...], num_classes: int) -> Callable[[nnx.Rngs], nnx.Module]:
  """``rngs -> model`` for ``name``: ``"lenet"`` on ``(H, W, C)`` images, the MNIST-1D models on ``(L,)``."""
  if name == "lenet":
    if len(input_shape) != 3:
      raise ValueError(f"`model_factory(name=...)` 'lenet' needs (H, W, C) images, got input_shape={input_shape}")
    return lambda rngs: LeNet(tuple(input_shape), num_classes, rngs=rngs)
  classes = {"logistic": Logistic, "mlp": ResidualMLP, "cnn": ConvNet1D}
  if name not in classes:
    raise ValueError(f"`model_factory(name=...)` must be one of {IMAGE_MODELS + SIGNAL_MODELS}, got name={name!r}")
  num_features = 1
  for size in input_shape:
    num_features *= int(size)
  return lambda rngs: classes[name](num_features, num_classes, rngs=rngs)


def split_model(make: Callable[[nnx.Rngs], nnx.Module]) -> nnx.GraphDef:
  """The static graph of the model, from an abstract instance (no parameters are drawn)."""
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: make(nnx.Rngs(0))))
  return graphdef


def init_params(make: Callable[[nnx.Rngs], nnx.Module], key: jax.Array) -> nnx.State:
  """Fresh parameters drawn from ``key`` (traceable: ``jax.vmap`` over keys gives one set per seed)."""
  return nnx.split(make(nnx.Rngs(params=key)))[1]


def logits_fn(graphdef: nnx.GraphDef) -> Callable[[nnx.State, jax.Array], jax.Array]:
  """``(params, x) -> logits`` of the model ``graphdef`` describes."""
  return lambda params, x: nnx.merge(graphdef, params)(jnp.asarray(x))
