"""lrtools.optimizers against the NumPy references (tests/reference_optimizers.py) and optax."""

import functools

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from lrtools import optimizers as lo

DIM, STEPS = 6, 300
_rng = np.random.default_rng(0)
_q, _ = np.linalg.qr(_rng.normal(size=(DIM, DIM)))
A = _q @ np.diag(np.logspace(0, 2, DIM)) @ _q.T  # ill-conditioned quadratic, condition number 100
NOISE = 0.3 * _rng.normal(size=(STEPS, DIM))
X0 = _rng.normal(size=DIM)
T = np.arange(STEPS)

# name -> (factory, constant hyperparameters)
OPTIMIZERS = {
    "sgd": (lo.sgd, {"learning_rate": 0.015}),
    "momentum": (lo.momentum, {"learning_rate": 0.005, "momentum": 0.9}),
    "momentum_d2l": (functools.partial(lo.momentum, lr_in_velocity=False),
                     {"learning_rate": 0.005, "momentum": 0.9}),
    "nesterov": (lo.nesterov, {"learning_rate": 0.005, "momentum": 0.9}),
    "nesterov_d2l": (functools.partial(lo.nesterov, lr_in_velocity=False),
                     {"learning_rate": 0.005, "momentum": 0.9}),
    "adagrad": (lo.adagrad, {"learning_rate": 0.5, "eps": 1e-8, "initial_accumulator_value": 0.1}),
    "rmsprop": (lo.rmsprop, {"learning_rate": 0.01, "decay": 0.9, "eps": 1e-8}),
    "adadelta": (lo.adadelta, {"learning_rate": 1.0, "rho": 0.9, "eps": 1e-6}),
    "adam": (lo.adam, {"learning_rate": 0.02, "b1": 0.9, "b2": 0.999, "eps": 1e-8}),
    "adam_simplified": (functools.partial(lo.adam, bias_correction=False),
                        {"learning_rate": 0.02, "b1": 0.9, "b2": 0.999, "eps": 1e-8}),
    "yogi": (lo.yogi, {"learning_rate": 0.02, "b1": 0.9, "b2": 0.999, "eps": 1e-3}),
}
MAIN = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam", "yogi"]


def _reference(name, hp, x0=X0, noise=NOISE, steps=STEPS):
  grad = lambda x, t: A @ x + noise[t]
  h = hp
  calls = {
      "sgd": lambda: ref.sgd(grad, x0, steps, h["learning_rate"]),
      "momentum": lambda: ref.momentum(grad, x0, steps, h["learning_rate"], h["momentum"]),
      "momentum_d2l": lambda: ref.momentum(grad, x0, steps, h["learning_rate"], h["momentum"], False),
      "nesterov": lambda: ref.nesterov(grad, x0, steps, h["learning_rate"], h["momentum"]),
      "nesterov_d2l": lambda: ref.nesterov(grad, x0, steps, h["learning_rate"], h["momentum"], False),
      "adagrad": lambda: ref.adagrad(grad, x0, steps, h["learning_rate"], h["eps"],
                                     h["initial_accumulator_value"]),
      "rmsprop": lambda: ref.rmsprop(grad, x0, steps, h["learning_rate"], h["decay"], h["eps"]),
      "adadelta": lambda: ref.adadelta(grad, x0, steps, h["learning_rate"], h["rho"], h["eps"]),
      "adam": lambda: ref.adam(grad, x0, steps, h["learning_rate"], h["b1"], h["b2"], h["eps"]),
      "adam_simplified": lambda: ref.adam(grad, x0, steps, h["learning_rate"], h["b1"], h["b2"],
                                          h["eps"], bias_correction=False),
      "yogi": lambda: ref.yogi(grad, x0, steps, h["learning_rate"], h["b1"], h["b2"], h["eps"]),
  }
  return calls[name]()


def trajectory_jax(opt, x0=X0, noise=NOISE):
  """Iterates of ``opt`` on the noisy quadratic as one scan, shape (steps + 1, dim); traceable (vmap)."""
  a = jnp.asarray(A)

  def body(carry, n):
    x, state = carry
    updates, state = opt.update(a @ x + n, state, x)
    x = optax.apply_updates(x, updates)
    return (x, state), x

  x0 = jnp.asarray(x0)
  _, xs = jax.lax.scan(body, (x0, opt.init(x0)), jnp.asarray(noise))
  return jnp.concatenate([x0[None], xs])


def trajectory(opt, x0=X0, noise=NOISE):
  """:func:`trajectory_jax`, jitted, as NumPy."""
  return np.asarray(jax.jit(lambda x0, noise: trajectory_jax(opt, x0, noise))(jnp.asarray(x0), jnp.asarray(noise)))


def _table(values):
  """A schedule sampled from a per-step table, so the reference sees exactly the same values."""
  arr = jnp.asarray(values)
  return lambda count: arr[count]


def _scheduled(hp):
  """Per-step tables for every hyperparameter: rates and eps wave up and down, decays dip below their
  base (staying in [0, 1))."""
  out = {}
  for k, v in hp.items():
    if k == "initial_accumulator_value":
      out[k] = v
    elif k in ("learning_rate", "eps"):
      out[k] = v * (1 + 0.5 * np.sin(T / 7))
    else:
      out[k] = v * (1 - 0.05 * (1 - np.cos(T / 11)))
  return out


def _assert_close(got, want, rtol=1e-9):
  np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("scheduled", [False, True], ids=["constant", "scheduled"])
def test_matches_reference(name, scheduled):
  factory, hp = OPTIMIZERS[name]
  if scheduled:
    hp = _scheduled(hp)
    opt = factory(**{k: _table(v) if np.ndim(v) else v for k, v in hp.items()})
  else:
    opt = factory(**hp)
  _assert_close(trajectory(opt), _reference(name, hp))


OPTAX = {
    "sgd": lambda h: optax.sgd(h["learning_rate"]),
    "momentum": lambda h: optax.sgd(h["learning_rate"], h["momentum"]),
    "momentum_d2l": lambda h: optax.sgd(h["learning_rate"], h["momentum"]),
    "nesterov": lambda h: optax.sgd(h["learning_rate"], h["momentum"], nesterov=True),
    "nesterov_d2l": lambda h: optax.sgd(h["learning_rate"], h["momentum"], nesterov=True),
    "rmsprop": lambda h: optax.rmsprop(h["learning_rate"], h["decay"], h["eps"], eps_in_sqrt=False),
    "adadelta": lambda h: optax.adadelta(h["learning_rate"], h["rho"], h["eps"]),
    "adam": lambda h: optax.adam(h["learning_rate"], h["b1"], h["b2"], h["eps"]),
}


@pytest.mark.parametrize("name", list(OPTAX))
def test_matches_optax(name):
  factory, hp = OPTIMIZERS[name]
  _assert_close(trajectory(factory(**hp)), trajectory(OPTAX[name](hp)))


def test_adagrad_close_to_optax():
  # optax puts eps inside the root; with a positive initial accumulator and tiny eps they coincide.
  ours = lo.adagrad(0.5, eps=1e-14, initial_accumulator_value=0.1)
  theirs = optax.adagrad(0.5, initial_accumulator_value=0.1, eps=0.0)
  _assert_close(trajectory(ours), trajectory(theirs))


def test_velocity_forms_differ_only_when_the_rate_is_scheduled():
  lr = _table(0.005 * (1 + 0.5 * np.sin(T / 7)))
  cs231n, d2l = trajectory(lo.momentum(lr, 0.9)), trajectory(lo.momentum(lr, 0.9, lr_in_velocity=False))
  _assert_close(d2l, trajectory(optax.sgd(lr, 0.9)))  # optax's is the rate-outside form
  assert np.abs(cs231n - d2l).max() > 1e-4
  constant = trajectory(lo.momentum(0.005, 0.9)), trajectory(lo.momentum(0.005, 0.9, lr_in_velocity=False))
  _assert_close(*constant, rtol=1e-12)


def _run(opt, f, x0, steps):
  def body(carry, _):
    x, state = carry
    updates, state = opt.update(jax.grad(f)(x), state, x)
    return (optax.apply_updates(x, updates), state), None

  (x, _), _ = jax.jit(lambda x0: jax.lax.scan(body, (x0, opt.init(x0)), None, length=steps))(x0)
  return float(f(x))


CONVERGENCE = {  # name -> (quadratic optimizer, Rosenbrock optimizer, Rosenbrock loss bound)
    "sgd": (lo.sgd(0.015), lo.sgd(2e-3), 1e-5),
    "momentum": (lo.momentum(0.005, 0.9), lo.momentum(1e-3, 0.9), 1e-10),
    "nesterov": (lo.nesterov(0.005, 0.9), lo.nesterov(1e-3, 0.9), 1e-10),
    "adagrad": (lo.adagrad(0.5), lo.adagrad(1.0), 1e-2),
    "rmsprop": (lo.rmsprop(0.01), lo.rmsprop(lambda t: 3e-3 / (1 + t / 500)), 1e-2),
    # Adadelta is slow on Rosenbrock's curved valley (a known weakness); it still gains 20x.
    "adadelta": (lo.adadelta(), lo.adadelta(), 0.6),
    "adam": (lo.adam(0.05), lo.adam(0.02), 1e-10),
    "yogi": (lo.yogi(0.05), lo.yogi(0.02), 1e-6),
}


@pytest.mark.parametrize("name", MAIN)
def test_converges(name):
  quad_opt, rosen_opt, bound = CONVERGENCE[name]
  quadratic = lambda x: 0.5 * x @ (jnp.asarray(A) @ x)
  x0 = jnp.ones(DIM)
  assert _run(quad_opt, quadratic, x0, 500) < 1e-4 * float(quadratic(x0))
  rosenbrock = lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
  assert _run(rosen_opt, rosenbrock, jnp.array([-1.5, 2.0]), 5000) < bound


VMAP_CASES = [(n, k) for n in MAIN for k in OPTIMIZERS[n][1]]


@pytest.mark.parametrize("name,key", VMAP_CASES)
def test_vmap_over_each_hyperparameter(name, key):
  factory, hp = OPTIMIZERS[name]
  values = jnp.asarray(hp[key]) * jnp.array([0.8, 1.0, 0.9])

  def final(value):
    opt = factory(**{**hp, key: value})

    def body(carry, n):
      x, state = carry
      updates, state = opt.update(jnp.asarray(A) @ x + n, state, x)
      return (optax.apply_updates(x, updates), state), None

    x0 = jnp.asarray(X0)
    (x, state), _ = jax.lax.scan(body, (x0, opt.init(x0)), jnp.asarray(NOISE[:20]))
    return x, lo.current_hyperparams(state)[key if key != "initial_accumulator_value" else "eps"]

  batched, recorded = jax.jit(jax.vmap(final))(values)
  single = jax.jit(final)
  for i, v in enumerate(values):
    np.testing.assert_allclose(batched[i], single(v)[0], rtol=1e-12, atol=1e-14)
  if key != "initial_accumulator_value":
    np.testing.assert_allclose(recorded, values)


def test_vmap_over_a_schedule_parameter():
  # Smith's cyclical momentum whose amplitude is batched: one compiled run for all amplitudes.
  def final(amplitude):
    return trajectory_jax(lo.nesterov(0.005, lambda t: 0.9 - amplitude * (1 + jnp.cos(t / 5.0)) / 2))

  amplitudes = [0.0, 0.05, 0.1]
  batched = jax.jit(jax.vmap(final))(jnp.asarray(amplitudes))
  for i, amp in enumerate(amplitudes):
    mu = 0.9 - amp * (1 + np.cos(T / 5.0)) / 2
    _assert_close(np.asarray(batched[i]), _reference("nesterov", {"learning_rate": 0.005, "momentum": mu}))


@pytest.mark.parametrize("name", MAIN)
def test_no_recompilation_when_hyperparameters_change(name):
  factory, hp = OPTIMIZERS[name]
  traces = []

  @jax.jit
  def step(x, hyper):
    traces.append(1)
    opt = factory(**hyper)
    updates, state = opt.update(x, opt.init(x), x)
    return optax.apply_updates(x, updates), lo.current_hyperparams(state)

  x = jnp.ones(3)
  for scale in (1.0, 0.5, 0.7):
    _, recorded = step(x, {k: v * scale for k, v in hp.items()})
  assert len(traces) == 1
  assert all(np.isclose(float(recorded[k]), hp[k] * 0.7) for k in recorded)


def test_current_hyperparams_reads_the_last_step():
  opt = optax.apply_if_finite(lo.adam(lambda t: 0.1 / (1 + t), b1=lambda t: 0.9 - 0.01 * t), 3)
  state = opt.init(jnp.zeros(2))
  hp = lo.current_hyperparams(state)  # before any step: the values the first step will use
  assert np.isclose(float(hp["learning_rate"]), 0.1) and np.isclose(float(hp["b1"]), 0.9)
  for _ in range(4):
    _, state = opt.update(jnp.ones(2), state)
  hp = lo.current_hyperparams(state)
  assert np.isclose(float(hp["learning_rate"]), 0.1 / 4) and np.isclose(float(hp["b1"]), 0.87)
  assert set(hp) == {"learning_rate", "b1", "b2", "eps"}


@pytest.mark.parametrize("name", MAIN + ["adam_simplified"])
def test_float32_params_stay_float32(name):
  factory, hp = OPTIMIZERS[name]
  opt = factory(**hp)
  x = jnp.asarray(X0, jnp.float32)
  state = opt.init(x)
  for n in NOISE[:50]:
    updates, state = opt.update((jnp.asarray(A, jnp.float32) @ x + jnp.asarray(n, jnp.float32)), state, x)
    x = optax.apply_updates(x, updates)
  assert updates.dtype == jnp.float32 and x.dtype == jnp.float32
  for leaf in jax.tree.leaves(state):
    if leaf.ndim:  # per-parameter buffers follow the parameters
      assert leaf.dtype == jnp.float32
  want = _reference(name, hp, steps=50)[-1]
  np.testing.assert_allclose(np.asarray(x), want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("name", MAIN)
def test_nonfinite_gradients_propagate_and_apply_if_finite_skips_them(name):
  factory, hp = OPTIMIZERS[name]
  x = jnp.ones(3)
  opt = factory(**hp)
  updates, _ = opt.update(jnp.array([1.0, jnp.nan, 1.0]), opt.init(x), x)
  assert np.isnan(np.asarray(updates)[1])

  guarded = optax.apply_if_finite(factory(**hp), max_consecutive_errors=3)
  state = guarded.init(x)
  updates, state = guarded.update(jnp.ones(3), state, x)
  x = optax.apply_updates(x, updates)
  before = state.inner_state
  updates, state = guarded.update(jnp.array([1.0, jnp.inf, 1.0]), state, x)
  np.testing.assert_array_equal(np.asarray(updates), 0.0)
  assert int(state.notfinite_count) == 1
  jax.tree.map(np.testing.assert_array_equal, state.inner_state, before)
  updates, state = guarded.update(jnp.ones(3), state, x)
  assert np.all(np.isfinite(np.asarray(updates))) and int(state.notfinite_count) == 0


@pytest.mark.parametrize("name", MAIN)
def test_state_survives_serialization(name):
  factory, hp = OPTIMIZERS[name]
  opt = factory(**hp)
  step = jax.jit(lambda x, s, n: _step(opt, x, s, n))
  x, state = jnp.asarray(X0), opt.init(jnp.asarray(X0))
  for n in NOISE[:5]:
    x, state = step(x, state, n)
  blob = flax.serialization.to_bytes(state)
  restored = flax.serialization.from_bytes(opt.init(jnp.zeros(DIM)), blob)
  x1, s1, x2, s2 = x, state, x, restored
  for n in NOISE[5:10]:
    x1, s1 = step(x1, s1, n)
    x2, s2 = step(x2, s2, n)
  np.testing.assert_array_equal(np.asarray(x1), np.asarray(x2))
  jax.tree.map(np.testing.assert_array_equal, s1, s2)


def _step(opt, x, state, n):
  updates, state = opt.update(jnp.asarray(A) @ x + n, state, x)
  return optax.apply_updates(x, updates), state


BAD = [
    (lo.sgd, {"learning_rate": -0.1}, "learning_rate"),
    (lo.sgd, {"learning_rate": float("nan")}, "learning_rate"),
    (lo.momentum, {"learning_rate": float("inf")}, "learning_rate"),
    (lo.momentum, {"learning_rate": 0.1, "momentum": 1.0}, "momentum"),
    (lo.nesterov, {"learning_rate": 0.1, "momentum": -0.1}, "momentum"),
    (lo.adagrad, {"learning_rate": 0.1, "eps": 0.0}, "eps"),
    (lo.adagrad, {"learning_rate": 0.1, "initial_accumulator_value": -1.0}, "initial_accumulator_value"),
    (lo.rmsprop, {"learning_rate": 0.1, "decay": 1.0}, "decay"),
    (lo.rmsprop, {"learning_rate": 0.1, "eps": -1e-8}, "eps"),
    (lo.adadelta, {"rho": 1.5}, "rho"),
    (lo.adadelta, {"eps": 0.0}, "eps"),
    (lo.adadelta, {"learning_rate": -1.0}, "learning_rate"),
    (lo.adam, {"learning_rate": 0.1, "b1": 1.5}, "b1"),
    (lo.adam, {"learning_rate": 0.1, "b2": 1.0}, "b2"),
    (lo.adam, {"learning_rate": 0.1, "eps": 0.0}, "eps"),
    (lo.yogi, {"learning_rate": 0.1, "b1": -0.5}, "b1"),
    (lo.yogi, {"learning_rate": 0.1, "b2": float("nan")}, "b2"),
    (lo.yogi, {"learning_rate": -1e-3}, "learning_rate"),
    (lo.scale_by_momentum, {"momentum": 2.0}, "momentum"),
    (lo.scale_by_adam, {"b1": 1.0}, "b1"),
    (lo.scale_by_learning_rate, {"learning_rate": -1.0}, "learning_rate"),
]


@pytest.mark.parametrize("factory,kwargs,arg", BAD)
def test_bad_arguments_raise_naming_the_argument(factory, kwargs, arg):
  with pytest.raises(ValueError, match=rf"`{factory.__name__}\({arg}=\.\.\.\)`"):
    factory(**kwargs)


def test_schedules_skip_construction_checks():
  lo.adam(lambda t: 1e-3, b1=lambda t: 0.9, b2=lambda t: 0.99, eps=lambda t: 1e-8)
  lo.momentum(lambda t: 0.1, momentum=lambda t: 0.9)


@jax.jit
def _both_momentum_forms(lr, mu):
  x = jnp.asarray(X0[:3])
  outs = []
  for opt in (lo.momentum(lr, mu), lo.momentum(lr, mu, lr_in_velocity=False)):
    state, y = opt.init(x), x
    for g in NOISE[:4, :3]:
      u, state = opt.update(jnp.asarray(g), state, y)
      y = optax.apply_updates(y, u)
    outs.append(y)
  return outs


@given(st.floats(0.0, 0.99), st.floats(1e-4, 1.0))
def test_momentum_forms_agree_for_constant_rates(mu, lr):
  cs231n, d2l = _both_momentum_forms(lr, mu)
  np.testing.assert_allclose(np.asarray(cs231n), np.asarray(d2l), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["rmsprop", "adadelta", "adam", "yogi"])
def test_bfloat16_moments_move(name):
  # bfloat16 rounds 0.999 to 1: the complement 1 − β must be formed before the cast, or v stays 0.
  factory, hp = OPTIMIZERS[name]
  opt = factory(**hp)
  x = jnp.ones(3, jnp.bfloat16)
  updates, state = opt.update(jnp.full(3, 2.0, jnp.bfloat16), opt.init(x), x)
  assert updates.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(updates, np.float32)))
  buffers = [leaf for leaf in jax.tree.leaves(state) if leaf.ndim]
  assert all(b.dtype == jnp.bfloat16 for b in buffers)
  second = state[0].nu if hasattr(state[0], "nu") else state[0].e_g
  assert np.all(np.asarray(second, np.float32) > 0)


@pytest.mark.parametrize("name", MAIN)
def test_state_can_be_donated(name):
  # Every state field owns its buffer (no aliasing between fields or with the caller's arrays).
  factory, hp = OPTIMIZERS[name]
  opt = factory(**{k: jnp.asarray(v) for k, v in hp.items()})
  step = jax.jit(lambda x, s, n: _step(opt, x, s, n), donate_argnums=(0, 1))
  x = jnp.asarray(X0)
  state = opt.init(x)
  for n in NOISE[:3]:
    x, state = step(x, state, n)
  _assert_close(np.asarray(x), _reference(name, hp, steps=3)[-1])
