"""ema_params / polyak_params against NumPy averages of the same iterates."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import reference as ref
from lrtools.optimizers import current_hyperparams, momentum
from lrtools.transforms import averaged_params, ema_params, polyak_params

STEPS = 60
_rng = np.random.default_rng(3)
NOISE = _rng.normal(size=(STEPS, 4))
X0 = _rng.normal(size=4)


def _run(averager, x0=X0, noise=NOISE):
  """Iterates and averages after every step of noisy momentum SGD on ||x||²/2, one jitted scan."""
  opt = optax.chain(momentum(0.05, 0.8), averager)

  @jax.jit
  def go(x0):
    def body(carry, n):
      x, state = carry
      updates, state = opt.update(x + n, state, x)
      x = optax.apply_updates(x, updates)
      return (x, state), (x, averaged_params(state))

    _, (xs, avgs) = jax.lax.scan(body, (x0, opt.init(x0)), jnp.asarray(noise, x0.dtype))
    return jnp.concatenate([x0[None], xs]), avgs

  xs, avgs = go(jnp.asarray(x0))
  return np.asarray(xs), np.asarray(avgs)


@pytest.mark.parametrize("debias", [True, False])
@pytest.mark.parametrize("start_step", [0, 7])
def test_ema_matches_reference(debias, start_step):
  xs, avgs = _run(ema_params(0.9, debias=debias, start_step=start_step))
  np.testing.assert_allclose(avgs, ref.ema_average(xs, 0.9, debias, start_step), rtol=1e-12, atol=1e-14)


def test_ema_with_scheduled_decay():
  table = 0.5 + 0.45 * np.sin(np.arange(STEPS) / 9) ** 2
  decay = lambda t: jnp.asarray(table)[t]
  for debias in (True, False):
    xs, avgs = _run(ema_params(decay, debias=debias, start_step=3))
    np.testing.assert_allclose(avgs, ref.ema_average(xs, table, debias, 3), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("start_step,every", [(0, 1), (10, 1), (5, 4)])
def test_polyak_matches_reference(start_step, every):
  xs, avgs = _run(polyak_params(start_step, every))
  np.testing.assert_allclose(avgs, ref.polyak_average(xs, start_step, every), rtol=1e-12, atol=1e-14)


def test_float32_and_trees():
  params = {"a": jnp.ones(3, jnp.float32), "b": jnp.zeros((2, 2), jnp.float32)}
  opt = optax.chain(optax.sgd(0.1), ema_params(0.9))
  state = opt.init(params)
  updates, state = opt.update(jax.tree.map(jnp.ones_like, params), state, params)
  avg = averaged_params(state)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(avg))
  np.testing.assert_allclose(np.asarray(avg["a"]), 0.9)  # debiased: the first step gives x_1 itself
  assert float(current_hyperparams(state)["ema_decay"]) == pytest.approx(0.9)


def test_vmap_over_decay():
  decays = jnp.array([0.5, 0.9, 0.99])

  def final(d):
    opt = optax.chain(optax.sgd(0.1), ema_params(d))
    x = jnp.ones(2)
    state = opt.init(x)
    for _ in range(5):
      updates, state = opt.update(x, state, x)
      x = optax.apply_updates(x, updates)
    return averaged_params(state)

  got = jax.vmap(final)(decays)
  xs = [np.ones(2) * 0.9 ** k for k in range(6)]
  for i, d in enumerate([0.5, 0.9, 0.99]):
    np.testing.assert_allclose(np.asarray(got[i]), ref.ema_average(xs, d)[-1], rtol=1e-12)


def test_errors():
  opt = ema_params(0.9)
  with pytest.raises(ValueError, match="needs the parameters"):
    opt.update(jnp.ones(2), opt.init(jnp.ones(2)))
  with pytest.raises(ValueError, match="found no"):
    averaged_params(optax.sgd(0.1).init(jnp.ones(2)))
  with pytest.raises(ValueError, match=r"`ema_params\(decay=\.\.\.\)`"):
    ema_params(1.0)
  with pytest.raises(ValueError, match=r"`ema_params\(start_step=\.\.\.\)`"):
    ema_params(0.9, start_step=-1)
  with pytest.raises(ValueError, match=r"`polyak_params\(every=\.\.\.\)`"):
    polyak_params(every=0)
  with pytest.raises(ValueError, match=r"`polyak_params\(start_step=\.\.\.\)`"):
    polyak_params(start_step=1.5)


@pytest.mark.parametrize("averager", [ema_params(0.9), polyak_params()], ids=["ema", "polyak"])
def test_state_can_be_donated(averager):
  opt = optax.chain(optax.sgd(0.1), averager)

  def step(p, s):
    updates, s = opt.update(jnp.ones_like(p), s, p)
    return optax.apply_updates(p, updates), s

  step = jax.jit(step, donate_argnums=(0, 1))
  params = jnp.ones(2)
  state = opt.init(params)
  for _ in range(3):
    params, state = step(params, state)
  assert np.all(np.isfinite(np.asarray(averaged_params(state))))
