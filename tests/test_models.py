"""lrtools.models: the Flax classifiers build, initialise alike on device and host, and reject bad
arguments with the one error form instead of failing inside Flax."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrtools import models

X = np.zeros((2, 8, 8, 1), np.float32)


def _named(call, name):
  return rf"^`{call}\({name}=\.\.\.\)` .+, got {name}="


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_classifier_initialises_alike_on_device_and_host(name):
  model = models.classifier(name, 3)
  params = jax.eval_shape(lambda key: models.init_params(model, key, X), jax.random.key(0))  # no compile
  chex.assert_trees_all_equal_shapes_and_dtypes(params, models.init_params_host(model, 0, X))
  chex.assert_shape(jax.eval_shape(lambda p: model.apply({"params": p}, X), params), (2, 3))
  loss = models.cross_entropy_loss(model)
  chex.assert_shape(jax.eval_shape(loss, params, {"x": X, "y": jnp.zeros(2, jnp.int32)}), ())


# Generated bad inputs: bools as numbers, strings/None/complex, vectors as scalars, ints above int32.
_not_a_count = st.one_of(st.booleans(), st.text(max_size=3), st.none(), st.integers(max_value=0),
                         st.integers(min_value=2**31), st.floats(0.1, 10.0).filter(lambda f: f != round(f)),
                         st.lists(st.integers(1, 9), min_size=1, max_size=2).map(np.asarray))


@given(num_classes=_not_a_count)
def test_bad_num_classes_is_named(num_classes):
  """``classifier("mlp", 0)`` used to build a Dense layer of width 0 and fail inside Flax."""
  with pytest.raises(ValueError, match=_named("classifier", "num_classes")):
    models.classifier("mlp", num_classes)
  for module in (models.MLP, models.CNN):
    with pytest.raises(ValueError, match=_named(module.__name__, "num_classes")):
      module(num_classes=num_classes)


@pytest.mark.parametrize("hidden", [(0,), (64, -1), "128", 128, (True,), (2**31,)])
def test_bad_hidden_widths_are_named(hidden):
  with pytest.raises(ValueError, match=_named("MLP", "hidden")):
    models.MLP(hidden=hidden)


@pytest.mark.parametrize("name", ["MLP", "resnet", None, 1])
def test_bad_name_is_named(name):
  with pytest.raises(ValueError, match=_named("classifier", "name")):
    models.classifier(name, 10)


@pytest.mark.parametrize("call,kwargs,arg", [
    ("cross_entropy_loss", {"model": "mlp"}, "model"),
    ("init_params", {"model": "mlp"}, "model"),
    ("init_params", {"key": 0}, "key"),
    ("init_params", {"key": jnp.stack([jax.random.key(0)] * 2)}, "key"),
    ("init_params", {"example_x": np.zeros((0, 8, 8, 1))}, "example_x"),
    ("init_params", {"example_x": 1.0}, "example_x"),
    ("init_params", {"example_x": "x"}, "example_x"),
    ("init_params_host", {"seed": -1}, "seed"),
    ("init_params_host", {"seed": True}, "seed"),
    ("init_params_host", {"seed": 2**31}, "seed"),
    ("init_params_host", {"example_x": [[1.0], [1.0, 2.0]]}, "example_x"),
])
def test_bad_arguments_are_named(call, kwargs, arg):
  good = {"cross_entropy_loss": {"model": models.CNN(3)},
          "init_params": {"model": models.CNN(3), "key": jax.random.key(0), "example_x": X},
          "init_params_host": {"model": models.CNN(3), "seed": 0, "example_x": X}}[call]
  with pytest.raises(ValueError, match=_named(call, arg)):
    getattr(models, call)(**{**good, **kwargs})
