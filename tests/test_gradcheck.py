"""grad_check against an independent NumPy float64 centred difference (tests/reference.py): a correct
gradient passes, a planted wrong one is caught and its leaf named, ReLU kinks are flagged, every leaf is
checked, and the caller's dtypes and JAX configuration are left as they were."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrtools import models
from lrtools.data import load_digits
from lrtools.diagnostics import GradCheckReport, grad_check
from tests import reference as ref

DS = load_digits()
X, Y = DS.x_train[:16], DS.y_train[:16]  # float32 inputs, int32 labels
H = 1e-5


def tanh_params(hidden=6, seed=0):
  k1, k2 = jax.random.split(jax.random.key(seed))
  return {"w1": 0.3 * jax.random.normal(k1, (64, hidden)), "b1": jnp.linspace(-0.1, 0.1, hidden)[None],
          "w2": 0.3 * jax.random.normal(k2, (hidden, 10)), "b2": jnp.linspace(0.05, -0.05, 10)[None]}


def tanh_loss(p):
  """Softmax cross-entropy of a tanh MLP on 16 digits (biases of shape (1, n): no implicit broadcast)."""
  logits = jnp.tanh(X @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
  return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), Y[:, None], axis=1))


def reference_loss(p):
  return ref.softmax_cross_entropy(ref.tanh_mlp_scores(p["w1"], p["b1"], p["w2"], p["b2"], X), Y)


def reference_numeric(p, row, h=H):
  """The row's coordinates differenced one at a time with NumPy, the other leaves held fixed."""
  base = {k: np.asarray(v, np.float64) for k, v in p.items()}

  def f(leaf):
    return reference_loss({**base, row.path: leaf})
  return np.array([ref.centred_difference(f, base[row.path], i, h) for i in row.indices])


def test_correct_gradient_passes_on_a_tanh_softmax_net():
  p = tanh_params()
  report = grad_check(tanh_loss, p, num_coords=4)
  assert isinstance(report, GradCheckReport)
  assert report.verdict == "correct", str(report)
  assert [r.path for r in report.rows] == ["b1", "b2", "w1", "w2"]
  assert report.max_rel_error < 1e-7
  assert report.warnings == ()
  for row in report.rows:
    chex.assert_shape([row.analytic, row.numeric, row.kinks, row.rel_errors, row.rounding], (4,))
    assert not row.kinks.any()
    # The numeric gradient is the textbook centred difference (two float64 programs: rounding of the loss
    # divided by 2h, about 1e-10 absolute).
    chex.assert_trees_all_close(row.numeric, reference_numeric(p, row), rtol=1e-6, atol=1e-9)
    chex.assert_trees_all_close(row.analytic, row.numeric, rtol=1e-6, atol=1e-9)
    expected = [ref.relative_error(a, n) for a, n in zip(row.analytic, row.numeric)]
    chex.assert_trees_all_close(row.rel_errors, np.array(expected), rtol=1e-12, atol=0.0)
    assert row.max_rel_error == pytest.approx(max(expected), rel=1e-12)
  text = str(report)
  assert "correct" in text and all(name in text for name in ("w1", "b1", "w2", "b2"))


def test_a_planted_wrong_gradient_is_caught_and_its_leaf_named():
  strength = 0.5
  loss = lambda p: tanh_loss(p) + strength * jnp.sum(p["w2"] ** 2)  # noqa: E731

  def backward(p):  # the regularizer's gradient misses its factor 2
    g = jax.grad(tanh_loss)(p)
    return {**g, "w2": g["w2"] + strength * p["w2"]}

  report = grad_check(loss, tanh_params(), grad_fn=backward)
  verdicts = {r.path: r.verdict for r in report.rows}
  assert verdicts == {"b1": "correct", "b2": "correct", "w1": "correct", "w2": "wrong"}, str(report)
  assert report.verdict == "wrong" and report.max_rel_error > 1e-2
  assert [line for line in str(report).splitlines() if line.startswith("w2")][0].endswith("wrong")
  # With the factor: correct.
  def fixed(p):
    g = jax.grad(tanh_loss)(p)
    return {**g, "w2": g["w2"] + 2 * strength * p["w2"]}
  assert grad_check(loss, tanh_params(), grad_fn=fixed).verdict == "correct"


def test_regularization_dominating_the_data_loss_is_warned():
  reg = lambda strength: (lambda p: strength * jnp.sum(p["w1"] ** 2))  # noqa: E731
  strong = grad_check(tanh_loss, tanh_params(), reg_fn=reg(10.0))
  assert strong.verdict == "correct"
  assert any("regularization" in w and "dominates" in w for w in strong.warnings), strong.warnings
  weak = grad_check(tanh_loss, tanh_params(), reg_fn=reg(1e-6))
  assert not any("regularization" in w for w in weak.warnings), weak.warnings


def relu_setup(offsets, dead=False):
  """A ReLU net whose hidden unit j has pre-activation ``offsets[j]`` (kinks within h of the point) on
  example 0; with ``dead``, unit 3 has zero weights and bias: its pre-activations are exactly 0."""
  k1, k2 = jax.random.split(jax.random.key(3))
  w1 = 0.3 * jax.random.normal(k1, (64, 4))
  if dead:
    w1 = w1.at[:, 3].set(0.0)
  w2 = jax.random.normal(k2, (4, 10))
  z0 = np.asarray(X[0], np.float64) @ np.asarray(w1, np.float64)
  b1 = jnp.asarray((np.asarray(offsets) - z0)[None], w1.dtype)
  if dead:
    b1 = b1.at[0, 3].set(0.0)
  z0 = z0 + np.asarray(b1, np.float64)[0]  # the pre-activations after rounding b1 to the params' dtype

  def pre(p):
    return X[:2] @ p["w1"] + p["b1"]

  def loss(p):
    logits = jax.nn.relu(pre(p)) @ p["w2"]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), Y[:2, None], axis=1))
  return loss, pre, {"w1": w1, "b1": b1, "w2": w2}, z0


def test_a_relu_kink_is_flagged_instead_of_failing():
  # Unit 0 two tenths of h from its kink, unit 1 a thousandth of h (the centred differences with h and
  # h/10 disagree), unit 3 exactly at it (they agree, but the one-sided slopes' jump does not scale with
  # h), unit 2 far from its kink.
  loss, pre, p, z0 = relu_setup([2e-6, 1e-8, 0.5, 0.0], dead=True)
  assert H / 10 < abs(z0[0]) < H and abs(z0[1]) < H / 100 and abs(z0[2]) > 0.4 and z0[3] == 0
  report = grad_check(loss, p)
  b1 = report.rows[0]
  assert b1.path == "b1"
  np.testing.assert_array_equal(b1.kinks, [True, True, False, True])
  assert np.all(b1.rel_errors[[0, 1, 3]] > 1e-3)  # they would have failed the check
  assert b1.max_rel_error < 1e-7  # ... but are left out of it
  assert report.verdict == "correct", str(report)
  # The other leaves' coordinates that move unit 0 or 1 past its kink are flagged too; none fails.
  assert all(r.verdict == "correct" for r in report.rows)
  # The same point seen through the sign pattern of the pre-activations.
  with_fn = grad_check(loss, p, kink_fn=pre)
  np.testing.assert_array_equal(with_fn.rows[0].kinks, [True, True, False, True])
  assert with_fn.verdict == "correct"
  # A piecewise-linear function, each detector alone. Exactly at a kink (w = 0) both centred differences
  # give the mean slope 1/2 (the analytic gradient says 0): only the one-sided slopes' jump, h·f'' for a
  # smooth function, tells. At w = 9h/99 that jump is exactly 10× the jump at h/10, as for a smooth
  # function: only the centred differences with h and h/10 disagree (0.545 and 0.955). NumPy float64
  # parameters keep w exact in every leg.
  hinge = grad_check(lambda q: jnp.sum(jax.nn.relu(q["w"])), {"w": np.array([0.0, 1.0, -1.0, H * 9 / 99])})
  np.testing.assert_array_equal(hinge.rows[0].kinks, [True, False, False, True])
  np.testing.assert_allclose(hinge.rows[0].numeric, [0.5, 1.0, 0.0, 6 / 11], rtol=1e-9)
  assert hinge.verdict == "correct" and hinge.rows[0].rel_errors[0] == 1.0
  # Without kinks near the point, nothing is flagged.
  loss, pre, p, _ = relu_setup([0.3, -0.4, 0.5, -0.7])
  assert not any(r.kinks.any() for r in grad_check(loss, p).rows)


def test_every_leaf_of_a_flax_model_is_checked_with_the_explicit_key():
  model = models.MLP(hidden=(3, 5), num_classes=10)
  params = models.init_params(model, jax.random.key(0), X[:1])

  def loss(p):
    logits = model.apply({"params": p}, X)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), Y[:, None], axis=1))
  report = grad_check(loss, params, num_coords=4, key=jax.random.key(7))
  paths = [r.path for r in report.rows]
  assert paths == ["Dense_0/bias", "Dense_0/kernel", "Dense_1/bias", "Dense_1/kernel", "Dense_2/bias",
                   "Dense_2/kernel"]
  sizes = [leaf.size for leaf in jax.tree_util.tree_leaves(params)]
  for row, size in zip(report.rows, sizes):
    assert len(row.indices) == min(size, 4) and len(set(row.indices.tolist())) == len(row.indices)
    assert 0 <= row.indices.min() and row.indices.max() < size
  np.testing.assert_array_equal(report.rows[0].indices, np.arange(3))  # a leaf smaller than num_coords: all
  again = grad_check(loss, params, num_coords=4, key=jax.random.key(7))
  other = grad_check(loss, params, num_coords=4, key=jax.random.key(8))
  assert all(np.array_equal(a.indices, b.indices) for a, b in zip(report.rows, again.rows))
  assert not all(np.array_equal(a.indices, b.indices) for a, b in zip(report.rows, other.rows))
  assert report.verdict in ("correct", "suspicious") and report.max_rel_error < 1e-4  # ReLU: kinks possible


def test_dtypes_and_configuration_are_restored():
  x64, promotion = jax.config.jax_enable_x64, jax.config.jax_numpy_dtype_promotion
  p = jax.tree_util.tree_map(lambda leaf: leaf.astype(jnp.float32), tanh_params())  # float32 in every leg
  before = jax.tree_util.tree_map(np.array, p)
  report = grad_check(tanh_loss, p)
  assert report.dtype == "float64"
  assert jax.config.jax_enable_x64 == x64 and jax.config.jax_numpy_dtype_promotion == promotion
  assert jnp.zeros(()).dtype == jnp.result_type(float)
  chex.assert_trees_all_equal(p, before)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(p))
  assert all(r.analytic.dtype == np.float64 and r.numeric.dtype == np.float64 for r in report.rows)


def test_tiny_gradients_and_non_finite_values_are_reported():
  tiny = grad_check(lambda p: 1e-13 * tanh_loss(p), tanh_params())
  assert any("tiny" in w and "scale the loss" in w for w in tiny.warnings), tiny.warnings
  bad = grad_check(lambda p: jnp.sum(jnp.log(p["w"])), {"w": jnp.array([1.0, -1.0])})
  assert bad.verdict == "wrong" and bad.max_rel_error == np.inf
  assert any("non-finite" in w for w in bad.warnings)


def test_differences_within_rounding_pass_but_are_shown():
  # |f| = 1e4: a float64 difference resolves about eps·1e4/h = 2e-7 of gradient; w's gradient is 1e-7.
  report = grad_check(lambda p: 1e4 + 1e-7 * jnp.sum(p["w"]) + jnp.sum(p["v"] ** 2),
                      {"w": jnp.ones(3), "v": jnp.ones(3)})
  v, w = report.rows
  assert w.rounding.all() and w.max_rel_error > 1e-3 and w.verdict == "correct"
  assert v.verdict == "correct" and report.verdict == "correct"
  assert report.max_rel_error == w.max_rel_error


def test_perturbed_losses_are_one_vectorized_program():
  def counted(traces):
    def loss(p):
      traces.append(1)  # runs once per trace, never per evaluation
      return tanh_loss(p)
    return loss
  few, many = [], []
  grad_check(counted(few), tanh_params(), num_coords=1)
  report = grad_check(counted(many), tanh_params(), num_coords=12)
  assert len(many) == len(few) <= 4  # 4·48 perturbed losses: no Python loop over coordinates
  chunked = grad_check(tanh_loss, tanh_params(), num_coords=12, batch_size=7)
  for a, b in zip(report.rows, chunked.rows):
    chex.assert_trees_all_close(a.numeric, b.numeric, rtol=0.0, atol=1e-9)  # two programs: rounding


def test_linen_module_float32_data_meet_float64_parameters():
  dense = nn.Dense(3)
  p = dense.init(jax.random.key(1), X[:1])
  report = grad_check(lambda v: jnp.mean(jnp.tanh(dense.apply(v, X)) ** 2), p)
  assert report.verdict == "correct" and [r.path for r in report.rows] == ["params/bias", "params/kernel"]


@pytest.mark.parametrize("kwargs, name", [
    (dict(fn=1), "fn"),
    (dict(params={}), "params"),
    (dict(params={"w": jnp.arange(3)}), "params"),
    (dict(num_coords=0), "num_coords"),
    (dict(num_coords=True), "num_coords"),
    (dict(step=0.0), "step"),
    (dict(step=-1e-5), "step"),
    (dict(step="1e-5"), "step"),
    (dict(key="key"), "key"),
    (dict(key=0), "key"),
    (dict(grad_fn=lambda p: {"w": jnp.zeros(2)}), "grad_fn"),
    (dict(grad_fn="grad"), "grad_fn"),
    (dict(kink_fn=3), "kink_fn"),
    (dict(reg_fn=3), "reg_fn"),
    (dict(batch_size=0), "batch_size"),
    (dict(fn=lambda p: p["w"] * 2), "fn"),
])
def test_bad_inputs_raise_naming_the_argument(kwargs, name):
  args = dict(fn=lambda p: jnp.sum(p["w"] ** 2), params={"w": jnp.ones(3)})
  args.update(kwargs)
  fn, params = args.pop("fn"), args.pop("params")
  with pytest.raises(ValueError, match=rf"`grad_check\({name}=\.\.\.\)`"):
    grad_check(fn, params, **args)
