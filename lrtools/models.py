"""Small Flax classifiers for the embedded datasets: the default models of `lrtools find-lr` and the examples."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax


class MLP(nn.Module):
  """ReLU multilayer perceptron; the range-test default is 64-128-128-10 on digits."""
  hidden: Sequence[int] = (128, 128)
  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    x = x.reshape((x.shape[0], -1))
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.num_classes)(x)


class CNN(nn.Module):
  """Two 3×3 convolutions and a dense head, for (N, H, W, C) images."""
  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(16, (3, 3))(x))
    x = nn.relu(nn.Conv(32, (3, 3), strides=(2, 2))(x))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(64)(x))
    return nn.Dense(self.num_classes)(x)


def classifier(name: str, num_classes: int) -> nn.Module:
  """``"mlp"`` (:class:`MLP`, 64-128-128-10 on digits) or ``"cnn"`` (:class:`CNN`) with ``num_classes`` outputs.

  >>> import jax, jax.numpy as jnp
  >>> from lrtools import models
  >>> model = models.classifier("mlp", 10)
  >>> params = models.init_params(model, jax.random.key(0), jnp.zeros((1, 64)))
  >>> model.apply({"params": params}, jnp.zeros((2, 64))).shape
  (2, 10)
  """
  models = {"mlp": lambda: MLP(num_classes=num_classes), "cnn": lambda: CNN(num_classes=num_classes)}
  if name not in models:
    raise ValueError(f"`classifier(name=...)` must be one of 'mlp', 'cnn', got name={name!r}")
  return models[name]()


def cross_entropy_loss(model: nn.Module):
  r"""``loss(params, batch)``: mean softmax cross-entropy of ``model`` on ``{"x": ..., "y": ...}``.

  .. math:: L = -\frac1B \sum_b \log \operatorname{softmax}(f(x_b))_{y_b}
  """
  def loss(params, batch):
    logits = model.apply({"params": params}, batch["x"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
  return loss


def init_params(model: nn.Module, key: jax.Array, example_x) -> dict:
  """``model.init``'s parameters (Flax's LeCun-normal kernels, zero biases), drawn with ``jax.random``."""
  return model.init(key, jnp.asarray(example_x[:1]))["params"]


def init_params_host(model: nn.Module, seed: int, example_x) -> dict:
  """The same initialisation drawn on the host with NumPy: no compilation, which ``model.init`` costs
  (about 2 s on a CPU, a third of a one-shot range test). Shapes come from ``jax.eval_shape``."""
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.asarray(example_x[:1]))["params"]
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    if path[-1].key == "bias":
      return np.zeros(leaf.shape, leaf.dtype)
    fan_in = int(np.prod(leaf.shape[:-1]))  # lecun_normal: truncated normal with variance 1/fan_in
    sample = rng.standard_normal(leaf.shape)
    while np.any(np.abs(sample) > 2):
      bad = np.abs(sample) > 2
      sample[bad] = rng.standard_normal(int(bad.sum()))
    return (sample / 0.87962566103423978 / np.sqrt(fan_in)).astype(leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)
