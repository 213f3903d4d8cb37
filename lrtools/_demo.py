"""The CLI's default models and loss: small Flax classifiers for the embedded datasets."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
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
  models = {"mlp": lambda: MLP(num_classes=num_classes), "cnn": lambda: CNN(num_classes=num_classes)}
  if name not in models:
    raise ValueError(f"`classifier(name=...)` must be one of 'mlp', 'cnn', got name={name!r}")
  return models[name]()


def cross_entropy_loss(model: nn.Module):
  """``loss(params, batch)``: mean softmax cross-entropy of ``model`` on ``{"x": ..., "y": ...}``."""
  def loss(params, batch):
    logits = model.apply({"params": params}, batch["x"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
  return loss


def init_params(model: nn.Module, key: jax.Array, example_x) -> dict:
  # jitted: eager init dispatches every op of the model one by one (seconds on CPU)
  return jax.jit(model.init)(key, jnp.asarray(example_x[:1]))["params"]
