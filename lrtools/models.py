"""Small Flax classifiers for the embedded datasets: the default models of `lrtools find-lr` and the examples.

Arguments are checked when a model or a function is built, with lrtools' one error form, rather than
failing later inside Flax (``num_classes=0`` would build a Dense layer of width 0).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrtools._typing import check_integer, check_one_of, fail


def _check_model(call: str, model: Any) -> None:
  if not isinstance(model, nn.Module):
    fail(call, "model", model, "must be a flax.linen Module (e.g. classifier('mlp', 10))")


def _check_examples(call: str, x: Any) -> None:
  """A batch of inputs: an array of real numbers with a leading batch axis of at least one example."""
  try:
    v = x if isinstance(x, jax.Array) else np.asarray(x)
  except (TypeError, ValueError):  # ragged sequences
    v = None
  if v is None or not jnp.issubdtype(v.dtype, jnp.number) or jnp.issubdtype(v.dtype, jnp.complexfloating):
    fail(call, "example_x", x, "must be an array of real numbers")
  if v.ndim < 1 or v.shape[0] < 1:
    fail(call, "example_x", x, "must be a batch (a leading axis) of at least one example")


class MLP(nn.Module):
  """ReLU multilayer perceptron; the range-test default is 64-128-128-10 on digits."""
  hidden: Sequence[int] = (128, 128)
  num_classes: int = 10

  def __post_init__(self):
    if isinstance(self.hidden, (str, bytes)) or not isinstance(self.hidden, Sequence):
      fail("MLP", "hidden", self.hidden, "must be a sequence of positive layer widths")
    for width in self.hidden:
      check_integer("MLP", "hidden", width, 1)
    check_integer("MLP", "num_classes", self.num_classes, 1)
    super().__post_init__()

  @nn.compact
  def __call__(self, x):
    x = x.reshape((x.shape[0], -1))
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.num_classes)(x)


class CNN(nn.Module):
  """Two 3×3 convolutions and a dense head, for (N, H, W, C) images."""
  num_classes: int = 10

  def __post_init__(self):
    check_integer("CNN", "num_classes", self.num_classes, 1)
    super().__post_init__()

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
  check_one_of("classifier", "name", name, ("mlp", "cnn"))
  check_integer("classifier", "num_classes", num_classes, 1)
  return MLP(num_classes=int(num_classes)) if name == "mlp" else CNN(num_classes=int(num_classes))


def cross_entropy_loss(model: nn.Module):
  r"""``loss(params, batch)``: mean softmax cross-entropy of ``model`` on ``{"x": ..., "y": ...}``.

  .. math:: L = -\frac1B \sum_b \log \operatorname{softmax}(f(x_b))_{y_b}
  """
  _check_model("cross_entropy_loss", model)
  def loss(params, batch):
    logits = model.apply({"params": params}, batch["x"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
  return loss


def init_params(model: nn.Module, key: jax.Array, example_x) -> dict:
  """``model.init``'s parameters (Flax's LeCun-normal kernels, zero biases), drawn with ``jax.random``."""
  call = "init_params"
  _check_model(call, model)
  typed = jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key) and jnp.shape(key) == ()
  raw = getattr(key, "dtype", None) == jnp.uint32 and jnp.shape(key) == (2,)
  if not (typed or raw):
    fail(call, "key", key, "must be one PRNG key (jax.random.key(seed))")
  _check_examples(call, example_x)
  return model.init(key, jnp.asarray(example_x[:1]))["params"]


def init_params_host(model: nn.Module, seed: int, example_x) -> dict:
  """The same initialisation drawn on the host with NumPy: no compilation, which ``model.init`` costs
  (about 2 s on a CPU, a third of a one-shot range test). Shapes come from ``jax.eval_shape``."""
  call = "init_params_host"
  _check_model(call, model)
  check_integer(call, "seed", seed, 0)
  _check_examples(call, example_x)
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
