"""loss_landscape against the exact slices of quadratics, filter normalization against NumPy, and its plot."""

import chex
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from lrtools.diagnostics import loss_landscape  # noqa: E402
from lrtools.plotting import plot_landscape  # noqa: E402
from tests.reference import filter_normalize_reference, quadratic_slice_reference  # noqa: E402

RNG = np.random.default_rng(0)
A = RNG.normal(size=(8, 8))
HESSIAN = A @ A.T / 8 + np.eye(8)  # symmetric positive definite, on the 8 entries of a (4, 2) kernel
W0 = RNG.normal(size=(4, 2))
SHIFT = RNG.normal(size=8) * 0.1  # the centre is not the minimum: a linear term too


def dtype():
  return jnp.result_type(float)


def quadratic(scale=1.0):
  """L(θ) = ½ (w − w*)ᵀ H (w − w*) · scale on the flattened kernel; the bias does not matter."""
  h = jnp.asarray(HESSIAN * scale, dtype())
  target = jnp.asarray(W0.reshape(-1) - SHIFT, dtype())
  def loss(params, batch):
    v = params["kernel"].reshape(-1) - target
    return 0.5 * v @ h @ v + 0.0 * jnp.sum(params["bias"])
  return loss


def params0():
  return {"kernel": jnp.asarray(W0, dtype()), "bias": jnp.ones(2, dtype())}


def tol():
  return dict(rtol=1e-4, atol=1e-4) if dtype() == jnp.float32 else dict(rtol=1e-10, atol=1e-10)


def test_1d_slice_is_the_analytic_quadratic():
  r = loss_landscape(quadratic(), params0(), None, key=jax.random.key(3), num_points=11, radius=0.5)
  d = np.asarray(r.directions[0]["kernel"], np.float64).reshape(-1)
  alphas = np.linspace(-0.5, 0.5, 11)
  ref = quadratic_slice_reference(HESSIAN, HESSIAN @ SHIFT, 0.5 * SHIFT @ HESSIAN @ SHIFT, d, alphas)
  chex.assert_shape(r.losses, (11,))
  assert r.betas is None
  chex.assert_trees_all_close(np.asarray(r.losses, np.float64), ref, **tol())
  chex.assert_trees_all_close(np.asarray(r.alphas, np.float64), np.linspace(-0.5, 0.5, 11), **tol())
  chex.assert_trees_all_close(float(r.center_loss), ref[5], **tol())
  chex.assert_trees_all_close(float(r.sharpness), float(np.mean(ref - ref[5])), **tol())


def test_2d_slice_is_the_analytic_quadratic_chunked():
  r = loss_landscape(quadratic(), params0(), None, key=jax.random.key(4), directions=2, num_points=7,
                     radius=1.0, chunk_size=5)  # 49 points in chunks of 5 (the last one partial)
  d, e = (np.asarray(x["kernel"], np.float64).reshape(-1) for x in r.directions)
  axis = np.linspace(-1.0, 1.0, 7)
  ref = quadratic_slice_reference(HESSIAN, HESSIAN @ SHIFT, 0.5 * SHIFT @ HESSIAN @ SHIFT, d, axis, e, axis)
  chex.assert_shape(r.losses, (7, 7))
  chex.assert_trees_all_close(np.asarray(r.losses, np.float64), ref, **tol())
  inside = np.hypot(*np.meshgrid(axis, axis, indexing="ij")) <= 1.0 + 1e-9  # the disk of radius r
  chex.assert_trees_all_close(float(r.sharpness), float(np.mean((ref - ref[3, 3])[inside])), **tol())
  assert not np.allclose(d, e)  # two different directions


def test_directions_are_filter_normalized():
  params = {"conv": jnp.asarray(RNG.normal(size=(3, 3, 2, 4)), dtype()), "bias": jnp.ones(4, dtype()),
            "scale": jnp.ones((), dtype())}
  r = loss_landscape(lambda p, b: jnp.sum(p["conv"] ** 2), params, None, key=jax.random.key(0), num_points=3)
  d = r.directions[0]
  for name in params:
    ref = filter_normalize_reference(d[name], params[name])
    chex.assert_trees_all_close(np.asarray(d[name], np.float64), ref, **tol())
  norms = np.linalg.norm(np.asarray(d["conv"], np.float64).reshape(-1, 4), axis=0)
  chex.assert_trees_all_close(norms, np.linalg.norm(np.asarray(params["conv"], np.float64).reshape(-1, 4), axis=0),
                              **tol())
  assert not np.any(np.asarray(d["bias"])) and float(d["scale"]) == 0.0


def test_sharper_minimum_scores_higher_and_scale_invariance():
  params = {"kernel": jnp.asarray(W0, dtype()), "bias": jnp.zeros(2, dtype())}
  at_min = lambda s: (lambda p, b: s * 0.5 * jnp.sum((p["kernel"] - jnp.asarray(W0, dtype())) ** 2))
  flat = loss_landscape(at_min(1.0), params, None, key=jax.random.key(0))
  sharp = loss_landscape(at_min(30.0), params, None, key=jax.random.key(0))
  assert float(sharp.sharpness) == pytest.approx(30 * float(flat.sharpness), rel=1e-4)
  assert float(flat.sharpness) > 0
  # Filter normalization: rescaling the kernel by c rescales the directions by c too, so L(cθ) = L'(θ)'s slice
  # matches the original's (Li et al.'s argument against unnormalized plots).
  c = 10.0
  scaled = {"kernel": params["kernel"] * c, "bias": params["bias"]}
  rescaled_loss = lambda p, b: 0.5 * jnp.sum((p["kernel"] / c - jnp.asarray(W0, dtype())) ** 2)
  same = loss_landscape(rescaled_loss, scaled, None, key=jax.random.key(0))
  chex.assert_trees_all_close(same.losses, flat.losses, **tol())


def test_non_finite_losses_make_sharpness_inf():
  loss = lambda p, b: jnp.where(p["w"][0, 0] > 1.5, jnp.nan, jnp.sum(p["w"] ** 2))
  r = loss_landscape(loss, {"w": jnp.ones((2, 2), dtype())}, None, key=jax.random.key(0), radius=3.0,
                     normalization="none")
  assert np.isnan(np.asarray(r.losses)).any() and float(r.sharpness) == np.inf
  assert np.isfinite(float(r.center_loss))


def test_plot_1d_and_2d(tmp_path):
  fig = Figure(figsize=(10, 4), layout="constrained")
  a1, a2 = fig.subplots(1, 2)
  r1 = loss_landscape(quadratic(), params0(), None, key=jax.random.key(0), num_points=9)
  r2 = loss_landscape(quadratic(), params0(), None, key=jax.random.key(0), directions=2, num_points=9)
  assert plot_landscape(r1, a1) is a1 and plot_landscape(r2, a2, log=True) is a2
  assert "sharpness" in a1.get_title() and len(a1.lines) == 2
  fig.savefig(tmp_path / "landscape.png")
  assert (tmp_path / "landscape.png").stat().st_size > 1000
  with pytest.raises(ValueError, match=r"`plot_landscape\(result="):
    plot_landscape({"losses": 1}, a1)
  with pytest.raises(ValueError, match=r"`plot_landscape\(levels="):
    plot_landscape(r2, a2, levels=1)


@pytest.mark.parametrize("kwargs,name", [
    ({"loss_fn": 3}, "loss_fn"),
    ({"params": {}}, "params"),
    ({"params": {"i": jnp.ones(2, jnp.int32)}}, "params"),
    ({"key": 0}, "key"),
    ({"directions": 3}, "directions"),
    ({"directions": True}, "directions"),
    ({"num_points": 1}, "num_points"),
    ({"radius": 0.0}, "radius"),
    ({"radius": float("nan")}, "radius"),
    ({"normalization": "layer"}, "normalization"),
    ({"chunk_size": 0}, "chunk_size"),
])
def test_bad_arguments_name_themselves(kwargs, name):
  args = {"loss_fn": quadratic(), "params": params0(), "batch": None, "key": jax.random.key(0), **kwargs}
  with pytest.raises(ValueError, match=rf"`loss_landscape\({name}="):
    loss_landscape(**args)
