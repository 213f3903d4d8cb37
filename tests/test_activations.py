"""activation_stats and capture_activations against NumPy, on linen and NNX MLPs with planted dead and
saturated units."""

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lrtools.diagnostics import ActivationStats, activation_stats, capture_activations
from tests.reference import activation_stats_reference

RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 4)).astype(np.float32)
DEAD = 2  # units of the first layer given a bias of -100: zero (dead) for every example
KINDS = {"first": "relu", "second": "tanh"}


def dtype():
  return jnp.result_type(float)


class LinenMLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    h = nn.relu(nn.Dense(6, name="first")(x))
    h = jnp.tanh(nn.Dense(5, name="second")(h))
    return nn.Dense(3, name="out")(h)


class NnxMLP(nnx.Module):
  def __init__(self, rngs):
    self.first = nnx.Linear(4, 6, rngs=rngs)
    self.second = nnx.Linear(6, 5, rngs=rngs)
    self.out = nnx.Linear(5, 3, rngs=rngs)

  def __call__(self, x):
    return self.out(jnp.tanh(self.second(nnx.relu(self.first(x)))))


def planted(kernel0, bias0, kernel1):
  """The first DEAD units' bias -100 (dead ReLUs); the second layer's kernel ×20 (saturated tanh)."""
  return bias0.at[:DEAD].set(-100.0), kernel1 * 20.0


def linen_model():
  model = LinenMLP()
  params = model.init(jax.random.key(0), jnp.asarray(X[:1]))["params"]
  b0, k1 = planted(params["first"]["kernel"], params["first"]["bias"], params["second"]["kernel"])
  params = {**params, "first": {**params["first"], "bias": b0}, "second": {**params["second"], "kernel": k1}}
  return model, params


def nnx_model():
  model = NnxMLP(nnx.Rngs(0))
  b0, k1 = planted(model.first.kernel[...], model.first.bias[...], model.second.kernel[...])
  model.first.bias[...] = b0
  model.second.kernel[...] = k1
  return model


def numpy_forward(k0, b0, k1, b1):
  """The two hidden layers' activations, in float64."""
  a0 = np.maximum(X.astype(np.float64) @ np.asarray(k0, np.float64) + np.asarray(b0, np.float64), 0.0)
  a1 = np.tanh(a0 @ np.asarray(k1, np.float64) + np.asarray(b1, np.float64))
  return {"first": a0, "second": a1}


def check_against_numpy(stats: ActivationStats, reference_acts, bins=30):
  for layer, a in reference_acts.items():
    ref = activation_stats_reference(a, KINDS[layer], bins=bins)
    for field in ("mean", "std", "zero_fraction", "dead_fraction", "saturated_fraction", "nonfinite_fraction"):
      chex.assert_trees_all_close(np.asarray(getattr(stats, field)[layer], np.float64), ref[field],
                                  rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(np.asarray(stats.bin_edges[layer], np.float64), ref["bin_edges"], rtol=1e-5, atol=1e-6)
    # A value within rounding of an edge may fall in the neighbouring bin in float32.
    counts = np.asarray(stats.histogram[layer])
    assert counts.sum() == ref["histogram"].sum()
    assert np.abs(counts - ref["histogram"]).sum() <= 2


def test_linen_mlp_agrees_with_numpy_and_finds_planted_units():
  model, params = linen_model()
  acts = capture_activations(model, jnp.asarray(X), params)
  assert sorted(acts) == ["first", "second"]  # the logits ("out", the model's output) are left out
  stats = activation_stats(acts, nonlinearity=KINDS)
  ref = numpy_forward(params["first"]["kernel"], params["first"]["bias"], params["second"]["kernel"],
                      params["second"]["bias"])
  check_against_numpy(stats, ref)
  assert float(stats.dead_fraction["first"]) >= DEAD / 6  # the planted ones (others may die too)
  assert float(stats.saturated_fraction["second"]) > 0.3
  assert float(stats.saturated_fraction["first"]) == 0.0  # ReLU has no saturating side


def test_nnx_mlp_agrees_with_numpy_and_finds_planted_units():
  model = nnx_model()
  acts = capture_activations(model, jnp.asarray(X))
  assert sorted(acts) == ["first", "second"]
  stats = activation_stats(acts, nonlinearity=KINDS)
  ref = numpy_forward(model.first.kernel[...], model.first.bias[...], model.second.kernel[...],
                      model.second.bias[...])
  check_against_numpy(stats, ref)
  assert float(stats.dead_fraction["first"]) >= DEAD / 6
  assert float(stats.saturated_fraction["second"]) > 0.3


def test_dead_means_zero_for_every_example_not_just_some():
  z = jnp.array([[-1.0, 2.0, -3.0], [-1.0, -2.0, 3.0]], dtype())  # unit 0 dead; 1 and 2 zero once each
  stats = activation_stats({"h": z}, nonlinearity="relu")
  assert float(stats.dead_fraction["h"]) == pytest.approx(1 / 3)
  assert float(stats.zero_fraction["h"]) == pytest.approx(4 / 6)


def test_conv_units_are_channels_over_all_positions():
  z = RNG.normal(size=(2, 3, 3, 4)).astype(np.float32)
  z[..., 1] = -np.abs(z[..., 1])  # channel 1 negative everywhere: dead after ReLU
  stats = activation_stats({"conv": jnp.asarray(z, dtype())}, nonlinearity="relu")
  ref = activation_stats_reference(np.maximum(z, 0), "relu")
  assert float(stats.dead_fraction["conv"]) == pytest.approx(ref["dead_fraction"]) == pytest.approx(0.25)


@pytest.mark.parametrize("kind,z,expected", [
    ("tanh", [[3.0, -3.0, 0.1, 2.0]], 0.5),       # |tanh| >= 0.99 needs |z| >= 2.65
    ("sigmoid", [[5.0, -5.0, 0.0, 4.0]], 0.5),    # sigmoid >= 0.99 or <= 0.01 needs |z| >= 4.6
])
def test_saturation_thresholds(kind, z, expected):
  stats = activation_stats({"h": jnp.asarray(z, dtype())}, nonlinearity=kind)
  assert float(stats.saturated_fraction["h"]) == pytest.approx(expected)
  post = {"tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v))}[kind](np.asarray(z))
  already = activation_stats({"h": jnp.asarray(post, dtype())}, nonlinearity=kind, preactivations=False)
  assert float(already.saturated_fraction["h"]) == pytest.approx(expected)


def test_non_finite_values_are_counted_apart_and_excluded():
  z = jnp.array([[1.0, jnp.nan], [3.0, jnp.inf], [0.0, 2.0]], dtype())
  stats = activation_stats({"h": z}, nonlinearity="none")
  assert float(stats.nonfinite_fraction["h"]) == pytest.approx(2 / 6)
  assert float(stats.mean["h"]) == pytest.approx(1.5)
  assert int(stats.histogram["h"].sum()) == 4
  chex.assert_tree_all_finite((stats.mean, stats.std, stats.bin_edges))
  nothing = activation_stats({"h": jnp.full((2, 2), jnp.nan, dtype())})
  chex.assert_tree_all_finite((nothing.mean, nothing.std, nothing.bin_edges))
  assert int(nothing.histogram["h"].sum()) == 0


def test_constant_layer_gets_a_unit_wide_histogram():
  stats = activation_stats({"h": jnp.zeros((3, 2), dtype())}, nonlinearity="relu", bins=4)
  np.testing.assert_allclose(np.asarray(stats.bin_edges["h"]), [-0.5, -0.25, 0.0, 0.25, 0.5])
  assert np.asarray(stats.histogram["h"]).tolist() == [0, 0, 6, 0]
  assert float(stats.dead_fraction["h"]) == 1.0


def test_jittable_traces_once_and_thresholds_may_be_traced():
  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(acts, zero_tol, saturation):
    return activation_stats(acts, nonlinearity="tanh", zero_tol=zero_tol, saturation=saturation)

  acts = {"h": jnp.asarray(RNG.normal(size=(8, 3)) * 3, dtype())}
  one = run(acts, jnp.asarray(0.0, dtype()), jnp.asarray(0.99, dtype()))
  two = run(acts, jnp.asarray(0.5, dtype()), jnp.asarray(0.9, dtype()))
  ref = activation_stats_reference(np.tanh(np.asarray(acts["h"], np.float64)), "tanh", zero_tol=0.5, saturation=0.9)
  assert float(two.zero_fraction["h"]) == pytest.approx(ref["zero_fraction"])
  assert float(two.saturated_fraction["h"]) == pytest.approx(ref["saturated_fraction"])
  assert float(one.saturated_fraction["h"]) <= float(two.saturated_fraction["h"])


def test_as_dict_keys_are_quantity_slash_layer():
  stats = activation_stats({"Dense_0": jnp.ones((2, 3), dtype())})
  assert set(stats.as_dict()) == {f"{q}/Dense_0" for q in ("mean", "std", "zero_fraction", "dead_fraction",
                                                             "saturated_fraction", "nonfinite_fraction")}


def test_sown_values_repeated_calls_and_the_output():
  class Shared(nn.Module):
    @nn.compact
    def __call__(self, x):
      dense = nn.Dense(3, name="shared")
      h = dense(dense(x))  # one module, two calls
      self.sow("intermediates", "features", h)
      return h.sum(axis=-1, keepdims=True)

  model = Shared()
  x = jnp.ones((2, 3), dtype())
  params = model.init(jax.random.key(1), x)["params"]
  acts = capture_activations(model, x, params)
  assert sorted(acts) == ["features", "shared/0", "shared/1"]
  with_output = capture_activations(model, x, {"params": params}, include_output=True)
  assert "output" in with_output and with_output["output"].shape == (2, 1)


def test_capture_runs_inside_jit_for_linen():
  model, params = linen_model()
  capture = jax.jit(functools.partial(capture_activations, model))
  acts = capture(jnp.asarray(X), params)
  chex.assert_trees_all_close(acts, capture_activations(model, jnp.asarray(X), params), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs,name", [
    ({"activations": [1.0]}, "activations"),
    ({"activations": {}}, "activations"),
    ({"activations": {"h": 1.0}}, "activations"),
    ({"nonlinearity": "softplus"}, "nonlinearity"),
    ({"nonlinearity": {"h": "elu"}}, "nonlinearity"),
    ({"preactivations": "yes"}, "preactivations"),
    ({"zero_tol": -0.1}, "zero_tol"),
    ({"zero_tol": True}, "zero_tol"),
    ({"saturation": 1.0}, "saturation"),
    ({"saturation": 0.5}, "saturation"),
    ({"bins": 0}, "bins"),
    ({"bins": 2.5}, "bins"),
])
def test_bad_arguments_name_themselves(kwargs, name):
  args = {"activations": {"h": jnp.ones((2, 2), dtype())}, **kwargs}
  with pytest.raises(ValueError, match=rf"`activation_stats\({name}="):
    activation_stats(**args)


def test_capture_bad_arguments_name_themselves():
  model, params = linen_model()
  with pytest.raises(ValueError, match=r"`capture_activations\(model="):
    capture_activations(lambda x: x, X)
  with pytest.raises(ValueError, match=r"`capture_activations\(params="):
    capture_activations(model, X)
  with pytest.raises(ValueError, match=r"`capture_activations\(params="):
    capture_activations(nnx_model(), X, params)
  with pytest.raises(ValueError, match=r"`capture_activations\(include_output="):
    capture_activations(model, X, params, include_output=1)
