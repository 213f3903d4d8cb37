"""lrtools.optimizers against the NumPy references (tests/reference.py) and optax.

Comparisons with the float64 references take the ``x64`` fixture; float32 runs get their own tolerances,
stated in units of float32's epsilon where they are set.
"""

import functools

import importlib
import inspect
import warnings

import chex
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

F32_EPS = float(np.finfo(np.float32).eps)
INT32_MAX = 2**31 - 1

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


def _reference(name, hp, x0=X0, noise=NOISE, steps=STEPS, mask=None):
  grad = lambda x, t: A @ x + noise[t]
  h = hp
  wd = h.get("weight_decay", 0.0)
  calls = {
      "sgd": lambda: ref.sgd(grad, x0, steps, h["learning_rate"], wd, mask),
      "momentum": lambda: ref.momentum(grad, x0, steps, h["learning_rate"], h["momentum"], True, wd, mask),
      "momentum_d2l": lambda: ref.momentum(grad, x0, steps, h["learning_rate"], h["momentum"], False, wd,
                                           mask),
      "nesterov": lambda: ref.nesterov(grad, x0, steps, h["learning_rate"], h["momentum"], True, wd, mask),
      "nesterov_d2l": lambda: ref.nesterov(grad, x0, steps, h["learning_rate"], h["momentum"], False, wd,
                                           mask),
      "adagrad": lambda: ref.adagrad(grad, x0, steps, h["learning_rate"], h["eps"],
                                     h["initial_accumulator_value"]),
      "rmsprop": lambda: ref.rmsprop(grad, x0, steps, h["learning_rate"], h["decay"], h["eps"]),
      "adadelta": lambda: ref.adadelta(grad, x0, steps, h["learning_rate"], h["rho"], h["eps"]),
      "adam": lambda: ref.adam(grad, x0, steps, h["learning_rate"], h["b1"], h["b2"], h["eps"],
                               weight_decay=wd, mask=mask),
      "adam_simplified": lambda: ref.adam(grad, x0, steps, h["learning_rate"], h["b1"], h["b2"],
                                          h["eps"], bias_correction=False),
      "yogi": lambda: ref.yogi(grad, x0, steps, h["learning_rate"], h["b1"], h["b2"], h["eps"]),
  }
  return calls[name]()


_crng = np.random.default_rng(1)
X0C = X0 + 1j * _crng.normal(size=DIM)  # a complex start and complex noise for the complex-parameter runs
NOISEC = NOISE + 0.3j * _crng.normal(size=(STEPS, DIM))

# name -> hyperparameters with decoupled weight decay (the optimizers that take it)
DECAYED = {
    "sgd": {"learning_rate": 0.015, "weight_decay": 0.5},
    "momentum": {"learning_rate": 0.005, "momentum": 0.9, "weight_decay": 0.5},
    "momentum_d2l": {"learning_rate": 0.005, "momentum": 0.9, "weight_decay": 0.5},
    "nesterov": {"learning_rate": 0.005, "momentum": 0.9, "weight_decay": 0.5},
    "nesterov_d2l": {"learning_rate": 0.005, "momentum": 0.9, "weight_decay": 0.5},
    "adam": {"learning_rate": 0.02, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.1},
}


WITH_DECAY = {"adamw": "adam", "sgdw": "sgd"}  # extra names: an OPTIMIZERS entry with DECAYED's values


def _optimizer(name, decayed=False):
  """``(factory, hyperparameters)`` of ``name`` (or of a WITH_DECAY name), with weight decay when
  ``decayed`` or asked for by name."""
  if name in WITH_DECAY:
    name, decayed = WITH_DECAY[name], True
  factory, hp = OPTIMIZERS[name]
  return factory, (DECAYED[name] if decayed else hp)


def trajectory_jax(opt, x0=X0, noise=NOISE):
  """Iterates of ``opt`` on the noisy quadratic as one scan, shape (steps + 1, dim), in ``x0``'s dtype (real
  or complex); traceable (vmap)."""
  x0 = jnp.asarray(x0)
  a, noise = jnp.asarray(A, x0.dtype), jnp.asarray(noise, x0.dtype)

  def body(carry, n):
    x, state = carry
    updates, state = opt.update(a @ x + n, state, x)
    x = optax.apply_updates(x, updates)
    return (x, state), x

  _, xs = jax.lax.scan(body, (x0, opt.init(x0)), noise)
  return jnp.concatenate([x0[None], xs])


def trajectory(opt, x0=X0, noise=NOISE, dtype=None):
  """:func:`trajectory_jax`, jitted, as NumPy; ``dtype`` None: JAX's default for the inputs."""
  run = jax.jit(lambda x0, noise: trajectory_jax(opt, x0, noise))
  return np.asarray(run(jnp.asarray(x0, dtype), jnp.asarray(noise, dtype)))


def _table(values):
  """A schedule sampled from a per-step table, so the reference sees exactly the same values."""
  arr = jnp.asarray(values)
  return lambda count: arr[count]


def _scheduled(hp):
  """Per-step tables for every hyperparameter: rates, eps and weight decay wave up and down, decays dip
  below their base (staying in [0, 1))."""
  out = {}
  for k, v in hp.items():
    if k == "initial_accumulator_value":
      out[k] = v
    elif k in ("learning_rate", "eps", "weight_decay"):
      out[k] = v * (1 + 0.5 * np.sin(T / 7))
    else:
      out[k] = v * (1 - 0.05 * (1 - np.cos(T / 11)))
  return out


def _float(t):
  """A step count as JAX's default float (strict promotion refuses int32 · float)."""
  return t.astype(float)


def _theirs(fn, *args, **kwargs):
  """Runs ``fn`` (an optax computation) with standard dtype promotion: optax is not strict-promotion clean
  (its bias correction raises a Python float to an int32 power), and the strict leg checks lrtools."""
  with jax.numpy_dtype_promotion("standard"):
    return fn(*args, **kwargs)


def _build(factory, hp):
  return factory(**{k: _table(v) if np.ndim(v) else v for k, v in hp.items()})


def _assert_close(got, want, rtol=1e-9):
  np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


# Two float32 runs of the same rule (lrtools vs optax, batched vs single) differ by rounding only, relative
# to the largest coordinate: on this quadratic a perturbation decays by ~(1 − η·λ_min) per step, so ~1 eps
# of rounding per step adds up over at most ~1/(η·λ_min) steps. Measured: ≤ 1.5 eps for the plain rules,
# 29 eps for Adam (optax rounds its bias corrections differently); 200 eps leaves a 7x margin.
F32_RUN_RTOL = 200 * F32_EPS
# A float32 run against the float64 reference over 50 steps: float32's rounding of the iterates and of the
# hyperparameters themselves (0.015 is not a float32); measured ≤ 1e-4, so 1e-3 (about 8000 eps).
F32_REF_RTOL = 1e-3


@pytest.mark.x64
@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("scheduled", [False, True], ids=["constant", "scheduled"])
def test_matches_reference(name, scheduled):
  factory, hp = OPTIMIZERS[name]
  hp = _scheduled(hp) if scheduled else hp
  _assert_close(trajectory(_build(factory, hp)), _reference(name, hp))


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


@pytest.fixture(params=["float64", "float32"])
def precision(request):
  """``(dtype, rtol)``: float64 (x64 on, agreement to 1e-9) or float32 (cast explicitly, any leg)."""
  if request.param == "float64":
    request.getfixturevalue("x64")
    return None, 1e-9
  return jnp.float32, F32_RUN_RTOL


@pytest.mark.parametrize("name", list(OPTAX))
def test_matches_optax(name, precision):
  dtype, rtol = precision
  factory, hp = OPTIMIZERS[name]
  _assert_close(trajectory(factory(**hp), dtype=dtype), _theirs(trajectory, OPTAX[name](hp), dtype=dtype), rtol)


def test_adagrad_close_to_optax(precision):
  # optax puts eps inside the root; with a positive initial accumulator and tiny eps they coincide.
  dtype, rtol = precision
  ours = lo.adagrad(0.5, eps=1e-14, initial_accumulator_value=0.1)
  theirs = optax.adagrad(0.5, initial_accumulator_value=0.1, eps=0.0)
  _assert_close(trajectory(ours, dtype=dtype), _theirs(trajectory, theirs, dtype=dtype), rtol)


@pytest.mark.x64
def test_velocity_forms_differ_only_when_the_rate_is_scheduled():
  lr = _table(0.005 * (1 + 0.5 * np.sin(T / 7)))
  cs231n, d2l = trajectory(lo.momentum(lr, 0.9)), trajectory(lo.momentum(lr, 0.9, lr_in_velocity=False))
  _assert_close(d2l, _theirs(trajectory, optax.sgd(lr, 0.9)))  # optax's is the rate-outside form
  assert np.abs(cs231n - d2l).max() > 1e-4
  constant = trajectory(lo.momentum(0.005, 0.9)), trajectory(lo.momentum(0.005, 0.9, lr_in_velocity=False))
  _assert_close(*constant, rtol=1e-12)


# ------------------------------------------------------------------------------------------------------
# Complex parameters: |g|² (optax's convention), never g².
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_complex_first_step_follows_the_gradient(name):
  # g = 1j: the update must be −c·1j with c > 0. Squaring g (g·g = −1) gave Adam the step 1+0j.
  factory, hp = OPTIMIZERS[name]
  opt = factory(**hp)
  x = jnp.zeros(1, jnp.complex64)
  updates, state = opt.update(jnp.array([1j], jnp.complex64), opt.init(x), x)
  chex.assert_type(updates, jnp.complex64)
  ratio = complex(np.asarray(updates)[0] / 1j)
  assert ratio.real < 0 and abs(ratio.imag) <= 4 * F32_EPS * abs(ratio), ratio
  chex.assert_tree_all_finite(state)


def test_complex_adam_step_equals_optax(x64):
  g = jnp.array([1j, -2.0 + 0.5j, 3e-3])
  ours, _ = lo.scale_by_adam().update(g, lo.scale_by_adam().init(g))
  theirs, _ = _theirs(optax.scale_by_adam().update, g, optax.scale_by_adam().init(g))
  chex.assert_trees_all_close(ours, theirs, rtol=1e-12, atol=0)
  assert float(ours[0].real) == 0.0  # along g = 1j; its length is 1/(1 + eps)
  chex.assert_trees_all_close(ours[0], 1j, rtol=2e-8, atol=0)


# optax's _alias_test complex parabola (rates from its list; adadelta, which optax skips, at its default).
PARABOLA = {
    "sgd": lo.sgd(1e-3), "momentum": lo.momentum(1e-3, 0.9), "nesterov": lo.nesterov(1e-3, 0.9),
    "adagrad": lo.adagrad(1.0), "rmsprop": lo.rmsprop(5e-3), "adadelta": lo.adadelta(),
    "adam": lo.adam(1e-1), "adamw": lo.adam(1e-1, weight_decay=1e-4), "yogi": lo.yogi(1e-1),
}


@pytest.mark.parametrize("name", list(PARABOLA))
def test_complex_parabola(name):
  opt = PARABOLA[name]
  target = jnp.array([1.0, -1.0, 1.0], jnp.complex64) * (1 + 1j)
  objective = lambda z: jnp.sum((z - target) * jnp.conj(z - target)).real

  def body(carry, _):
    z, state = carry
    # The conjugate of JAX's gradient of a real function is its steepest-ascent direction in z.
    updates, state = opt.update(jnp.conj(jax.grad(objective)(z)), state, z)
    return (optax.apply_updates(z, updates), state), None

  z0 = jnp.array([-1.0, 10.0, 1.0], jnp.complex64)
  (z, _), _ = jax.jit(lambda z0: jax.lax.scan(body, (z0, opt.init(z0)), None, length=10_000))(z0)
  chex.assert_type(z, jnp.complex64)
  chex.assert_trees_all_close(z, target, rtol=3e-2, atol=3e-2)  # optax's tolerance for this test


@pytest.mark.x64
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_complex_matches_reference(name):
  factory, hp = OPTIMIZERS[name]
  got = trajectory(factory(**hp), X0C, NOISEC)
  assert got.dtype == np.complex128
  _assert_close(got, _reference(name, hp, X0C, NOISEC))


@pytest.mark.parametrize("name", [n for n in OPTAX if n != "adadelta"])  # optax's adadelta squares g
def test_complex_matches_optax(name, precision):
  dtype, rtol = precision
  dtype = dtype and jnp.complex64
  factory, hp = OPTIMIZERS[name]
  ours = trajectory(factory(**hp), X0C, NOISEC, dtype)
  theirs = _theirs(trajectory, OPTAX[name](hp), X0C, NOISEC, dtype)
  _assert_close(ours, theirs, rtol)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.complex64])
@pytest.mark.parametrize("name", list(OPTIMIZERS) + ["adamw"])
def test_state_shapes_and_dtypes_are_stable(name, dtype):
  # optax's state-stability check: an update returns a state of the init's shapes and dtypes (a scan
  # carry), |g|² buffers in the real dtype, updates in the parameters' dtype.
  factory, hp = _optimizer(name)
  opt = factory(**hp)
  x = jnp.ones(3, dtype) * (1 - 2j if dtype == jnp.complex64 else 1)
  state = opt.init(x)
  updates, new_state = jax.jit(opt.update)(x, state, x)
  chex.assert_type(updates, dtype)
  chex.assert_trees_all_equal_shapes_and_dtypes(state, new_state)
  chex.assert_tree_all_finite(new_state)


# ------------------------------------------------------------------------------------------------------
# Decoupled weight decay.
# ------------------------------------------------------------------------------------------------------


@pytest.mark.x64
@pytest.mark.parametrize("name", list(DECAYED))
@pytest.mark.parametrize("scheduled", [False, True], ids=["constant", "scheduled"])
def test_weight_decay_matches_reference(name, scheduled):
  factory, hp = _optimizer(name, decayed=True)
  hp = _scheduled(hp) if scheduled else hp
  want = _reference(name, hp)
  _assert_close(trajectory(_build(factory, hp)), want)
  # The decay matters on this run: far above the tolerance from the run without it.
  assert np.abs(want - _reference(name, {**hp, "weight_decay": 0.0})).max() > 1e-3


@pytest.mark.parametrize("name", list(DECAYED))
def test_weight_decay_float32(name):
  factory, hp = _optimizer(name, decayed=True)
  x = trajectory(factory(**hp), X0, NOISE[:50], jnp.float32)
  assert x.dtype == np.float32
  want = _reference(name, hp, steps=50)
  _assert_close(x, want, F32_REF_RTOL)


@pytest.mark.x64
def test_adamw_matches_optax():
  hp = DECAYED["adam"]
  theirs = optax.adamw(hp["learning_rate"], hp["b1"], hp["b2"], hp["eps"], weight_decay=hp["weight_decay"])
  _assert_close(trajectory(lo.adam(**hp)), _theirs(trajectory, theirs))


def _dict_trajectory(opt, steps=STEPS):
  """Iterates of ``opt`` on the quadratic with parameters ``{"w": x[:3], "b": x[3:]}``, flattened."""
  a, noise = jnp.asarray(A), jnp.asarray(NOISE[:steps])

  def body(carry, n):
    p, state = carry
    g = a @ jnp.concatenate([p["w"], p["b"]]) + n
    updates, state = opt.update({"w": g[:3], "b": g[3:]}, state, p)
    p = optax.apply_updates(p, updates)
    return (p, state), jnp.concatenate([p["w"], p["b"]])

  x0 = jnp.asarray(X0)
  p0 = {"w": x0[:3], "b": x0[3:]}
  (_, state), xs = jax.jit(lambda p0: jax.lax.scan(body, (p0, opt.init(p0)), noise))(p0)
  return np.asarray(jnp.concatenate([x0[None], xs])), state


@pytest.mark.x64
@pytest.mark.parametrize("mask", [{"w": True, "b": False}, lambda p: {"w": True, "b": False}],
                         ids=["tree", "callable"])
@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov_d2l", "adam"])
def test_weight_decay_mask(name, mask):
  factory, hp = _optimizer(name, decayed=True)
  xs, state = _dict_trajectory(factory(**hp, weight_decay_mask=mask))
  on = np.array([True] * 3 + [False] * 3)
  _assert_close(xs, _reference(name, hp, mask=on))
  assert np.abs(xs - _reference(name, hp)).max() > 1e-3  # the masked run is not the unmasked one
  np.testing.assert_allclose(lo.current_hyperparams(state)["weight_decay"], hp["weight_decay"])


@pytest.mark.x64
@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_weight_decay_under_jit_and_vmap(name):
  factory, hp = _optimizer(name, decayed=True)
  decays = jnp.array([0.0, 2.0, 1.0]) * hp["weight_decay"]  # 0: the run without decay

  def final(wd):
    opt = factory(**{**hp, "weight_decay": wd})
    xs = trajectory_jax(opt, X0, NOISE[:30])
    state = opt.init(xs[0])
    _, state = opt.update(jnp.asarray(X0), state, xs[0])
    return xs, lo.current_hyperparams(state)["weight_decay"]

  xs, recorded = jax.jit(jax.vmap(final))(decays)
  np.testing.assert_array_equal(recorded, decays)
  for i, wd in enumerate(np.asarray(decays)):
    _assert_close(np.asarray(xs[i]), _reference(name, {**hp, "weight_decay": float(wd)}, steps=30))


def test_default_weight_decay_adds_nothing_and_decay_needs_params():
  x = jnp.ones(2)
  plain, zero = lo.adam(0.1), lo.adam(0.1, weight_decay=0.0)
  chex.assert_trees_all_equal_structs(plain.init(x), zero.init(x))
  assert len(plain.init(x)) == 2  # scale_by_adam, scale_by_learning_rate: no decay state
  decayed = lo.adam(0.1, weight_decay=0.1)
  np.testing.assert_allclose(lo.current_hyperparams(decayed.init(x))["weight_decay"], 0.1, rtol=F32_EPS)
  with pytest.raises(ValueError, match=r"`adam\(weight_decay=\.\.\.\)`.*got params=None"):
    decayed.update(x, decayed.init(x))


# ------------------------------------------------------------------------------------------------------
# Training behaviour, jit/vmap, recompilation, state.
# ------------------------------------------------------------------------------------------------------


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
    xs = trajectory_jax(opt, X0, NOISE[:20])
    _, state = opt.update(jnp.asarray(X0), opt.init(xs[0]), xs[0])
    return xs[-1], lo.current_hyperparams(state)[key if key != "initial_accumulator_value" else "eps"]

  batched, recorded = jax.jit(jax.vmap(final))(values)
  single = jax.jit(final)
  # float32: batched and single programs may fuse differently; 20 steps of rounding (see F32_RUN_RTOL).
  rtol = 1e-12 if batched.dtype == jnp.float64 else F32_RUN_RTOL
  for i, v in enumerate(values):
    chex.assert_trees_all_close(batched[i], single(v)[0], rtol=rtol, atol=rtol * float(jnp.abs(batched).max()))
  if key != "initial_accumulator_value":
    np.testing.assert_array_equal(recorded, values)


@pytest.mark.x64
def test_vmap_over_a_schedule_parameter():
  # Smith's cyclical momentum whose amplitude is batched: one compiled run for all amplitudes.
  def final(amplitude):
    return trajectory_jax(lo.nesterov(0.005, lambda t: 0.9 - amplitude * (1 + jnp.cos(_float(t) / 5)) / 2))

  amplitudes = [0.0, 0.05, 0.1]
  batched = jax.jit(jax.vmap(final))(jnp.asarray(amplitudes))
  for i, amp in enumerate(amplitudes):
    mu = 0.9 - amp * (1 + np.cos(T / 5.0)) / 2
    _assert_close(np.asarray(batched[i]), _reference("nesterov", {"learning_rate": 0.005, "momentum": mu}))


@pytest.mark.parametrize("name", MAIN + ["adamw", "sgdw"])
def test_no_recompilation_when_hyperparameters_change(name):
  factory, hp = _optimizer(name)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(x, hyper):
    opt = factory(**hyper)
    updates, state = opt.update(x, opt.init(x), x)
    return optax.apply_updates(x, updates), lo.current_hyperparams(state)

  x = jnp.ones(3)
  for scale in (1.0, 0.5, 0.7):
    _, recorded = step(x, {k: v * scale for k, v in hp.items()})
  assert set(recorded) >= set(hp) - {"initial_accumulator_value"}
  for k in recorded:
    np.testing.assert_allclose(recorded[k], np.float32(hp[k] * 0.7), rtol=F32_EPS)


def test_current_hyperparams_reads_the_last_step():
  opt = optax.apply_if_finite(lo.adam(lambda t: 0.1 / _float(1 + t), b1=lambda t: 0.9 - 0.01 * _float(t)), 3)
  state = opt.init(jnp.zeros(2))
  hp = lo.current_hyperparams(state)  # before any step: the values the first step will use
  assert np.isclose(float(hp["learning_rate"]), 0.1) and np.isclose(float(hp["b1"]), 0.9)
  for _ in range(4):
    _, state = opt.update(jnp.ones(2), state)
  hp = lo.current_hyperparams(state)
  assert np.isclose(float(hp["learning_rate"]), 0.1 / 4) and np.isclose(float(hp["b1"]), 0.87)
  assert set(hp) == {"learning_rate", "b1", "b2", "eps"}


def test_current_hyperparams_under_partition():
  # Two lrtools optimizers side by side: a name both record is keyed by partition, never overwritten.
  opt = optax.partition({"embed": lo.adam(0.01, b1=0.8),
                         "head": lo.momentum(lambda t: 0.1 / _float(1 + t), 0.5, weight_decay=0.01)},
                        {"x": "embed", "y": "head"})
  params = {"x": jnp.ones(2), "y": jnp.ones(3)}
  state = opt.init(params)
  for _ in range(3):
    _, state = opt.update(params, state, params)
  hp = lo.current_hyperparams(state)
  assert set(hp) == {"embed/learning_rate", "head/learning_rate", "b1", "b2", "eps", "momentum",
                     "weight_decay"}
  want = {"embed/learning_rate": 0.01, "head/learning_rate": 0.1 / 3, "b1": 0.8, "momentum": 0.5,
          "weight_decay": 0.01}
  for k, v in want.items():
    np.testing.assert_allclose(hp[k], np.float32(v), rtol=F32_EPS)

  two_adams = optax.partition({"a": lo.adam(0.01), "b": lo.adam(0.02, b1=0.5)}, {"x": "a", "y": "b"})
  hp = lo.current_hyperparams(two_adams.init(params))
  assert set(hp) == {f"{p}/{k}" for p in "ab" for k in ("learning_rate", "b1", "b2", "eps")}
  assert float(hp["a/b1"]) == np.float32(0.9) and float(hp["b/b1"]) == np.float32(0.5)


@pytest.mark.parametrize("name", MAIN + ["adam_simplified"])
def test_float32_params_stay_float32(name):
  factory, hp = OPTIMIZERS[name]
  opt = factory(**hp)
  x = jnp.asarray(X0, jnp.float32)
  state = opt.init(x)
  for n in NOISE[:50]:
    updates, state = opt.update((jnp.asarray(A, jnp.float32) @ x + jnp.asarray(n, jnp.float32)), state, x)
    x = optax.apply_updates(x, updates)
  chex.assert_type([updates, x], jnp.float32)
  for leaf in jax.tree.leaves(state):
    if leaf.ndim:  # per-parameter buffers follow the parameters
      chex.assert_type(leaf, jnp.float32)
  want = _reference(name, hp, steps=50)[-1]
  np.testing.assert_allclose(np.asarray(x), want, rtol=F32_REF_RTOL, atol=1e-4 * np.abs(want).max())


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
  chex.assert_trees_all_equal(state.inner_state, before)
  updates, state = guarded.update(jnp.ones(3), state, x)
  assert np.all(np.isfinite(np.asarray(updates))) and int(state.notfinite_count) == 0


def _step(opt, x, state, n):
  updates, state = opt.update(jnp.asarray(A, x.dtype) @ x + n, state, x)
  return optax.apply_updates(x, updates), state


ROUND_TRIP = MAIN + ["adam_simplified", "adamw", "sgdw_masked"]


def _round_trip_optimizer(name):
  if name == "sgdw_masked":
    return lo.momentum(**DECAYED["momentum"], weight_decay_mask=lambda p: jax.tree.map(lambda x: x.ndim > 0, p))
  factory, hp = _optimizer(name)
  return factory(**hp)


@pytest.mark.parametrize("how", ["numpy", "flax"])
@pytest.mark.parametrize("name", ROUND_TRIP)
def test_state_round_trip_continues_identically(name, how):
  opt = _round_trip_optimizer(name)
  step = jax.jit(lambda x, s, n: _step(opt, x, s, n))
  x, state = jnp.asarray(X0), opt.init(jnp.asarray(X0))
  for n in NOISE[:5]:
    x, state = step(x, state, n)
  if how == "numpy":  # e.g. a checkpoint of NumPy arrays (np.savez) read back
    saved = jax.tree.map(np.asarray, state)
    restored = jax.tree.map(jnp.asarray, saved)
  else:
    restored = flax.serialization.from_bytes(opt.init(jnp.zeros(DIM)), flax.serialization.to_bytes(state))
  chex.assert_trees_all_equal_shapes_and_dtypes(restored, state)
  x1, s1, x2, s2 = x, state, x, restored
  for n in NOISE[5:10]:
    x1, s1 = step(x1, s1, n)
    x2, s2 = step(x2, s2, n)
  chex.assert_trees_all_equal((x1, s1), (x2, s2))


@pytest.mark.parametrize("name", MAIN + ["adam_simplified", "adamw"])
def test_count_saturates_at_int32_max(name):
  # A state whose every count is 2**31 − 1 (a run that long, or a restored one) steps on: the counts stay
  # there (optax.safe_increment), nothing overflows, and the update is the one the count implies.
  opt = _round_trip_optimizer(name)
  x = jnp.asarray(X0, jnp.float32)
  state = opt.init(x)
  for n in NOISE[:3]:
    x, state = _step(opt, x, state, jnp.asarray(n, jnp.float32))
  old = optax.tree.set(state, count=jnp.asarray(INT32_MAX, jnp.int32))
  g = jnp.asarray(A, jnp.float32) @ x
  updates, new = jax.jit(opt.update)(g, old, x)
  chex.assert_tree_all_finite((updates, new))
  counts = [c for _, c in optax.tree.get_all_with_path(new, "count")]
  assert len(counts) >= 1 and all(int(c) == INT32_MAX for c in counts)
  moments = [s for s in jax.tree.leaves(new, is_leaf=lambda s: isinstance(s, lo.AdamState))
             if isinstance(s, lo.AdamState)]
  if moments:  # β^(2**31 − 1) = 0: the bias corrections are 1, the update is −η·m/(√v + ε) (− η·λ·x)
    hp = lo.current_hyperparams(new)
    m, v = moments[0].mu, moments[0].nu
    want = -hp["learning_rate"] * (m / (jnp.sqrt(v) + hp["eps"]) + hp.get("weight_decay", 0.0) * x)
  else:  # the count only indexes schedules: the update is the one from the true count
    want, _ = jax.jit(opt.update)(g, state, x)
  chex.assert_trees_all_close(updates, want, rtol=4 * F32_EPS, atol=4 * F32_EPS * float(jnp.abs(want).max()))
  updates, new = jax.jit(opt.update)(g, new, x)  # and again, from the saturated count
  chex.assert_tree_all_finite(updates)
  assert all(int(c) == INT32_MAX for _, c in optax.tree.get_all_with_path(new, "count"))


# ------------------------------------------------------------------------------------------------------
# Input checks.
# ------------------------------------------------------------------------------------------------------

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
    (lo.adam, {"learning_rate": 0.1, "bias_correction": "False"}, "bias_correction"),
    (lo.adam, {"learning_rate": 0.1, "weight_decay": -1e-4}, "weight_decay"),
    (lo.sgd, {"learning_rate": True}, "learning_rate"),
    (lo.sgd, {"learning_rate": [0.1, 0.2]}, "learning_rate"),
    (lo.sgd, {"learning_rate": 0.1, "weight_decay_mask": {"w": 1}}, "weight_decay_mask"),
    (lo.yogi, {"learning_rate": 0.1, "b1": -0.5}, "b1"),
    (lo.yogi, {"learning_rate": 0.1, "b2": float("nan")}, "b2"),
    (lo.yogi, {"learning_rate": -1e-3}, "learning_rate"),
    (lo.scale_by_momentum, {"momentum": 2.0}, "momentum"),
    (lo.scale_by_momentum, {"nesterov": None}, "nesterov"),
    (lo.scale_by_adam, {"b1": 1.0}, "b1"),
    (lo.scale_by_learning_rate, {"learning_rate": -1.0}, "learning_rate"),
    (lo.scale_by_learning_rate, {"learning_rate": 0.1, "flip_sign": 1}, "flip_sign"),
]


@pytest.mark.parametrize("factory,kwargs,arg", BAD)
def test_bad_arguments_raise_naming_the_argument(factory, kwargs, arg):
  with pytest.raises(ValueError, match=rf"`{factory.__name__}\({arg}=\.\.\.\)`.*got {arg}="):
    factory(**kwargs)


# Every numeric argument of every public function, with its domain.
NUMERIC = {
    lo.sgd: {"learning_rate": "nonnegative", "weight_decay": "nonnegative"},
    lo.momentum: {"learning_rate": "nonnegative", "momentum": "unit", "weight_decay": "nonnegative"},
    lo.nesterov: {"learning_rate": "nonnegative", "momentum": "unit", "weight_decay": "nonnegative"},
    lo.adagrad: {"learning_rate": "nonnegative", "eps": "positive", "initial_accumulator_value": "nonnegative"},
    lo.rmsprop: {"learning_rate": "nonnegative", "decay": "unit", "eps": "positive"},
    lo.adadelta: {"learning_rate": "nonnegative", "rho": "unit", "eps": "positive"},
    lo.adam: {"learning_rate": "nonnegative", "b1": "unit", "b2": "unit", "eps": "positive",
              "weight_decay": "nonnegative"},
    lo.yogi: {"learning_rate": "nonnegative", "b1": "unit", "b2": "unit", "eps": "positive"},
    lo.scale_by_learning_rate: {"learning_rate": "nonnegative"},
    lo.scale_by_momentum: {"momentum": "unit"},
    lo.scale_by_adagrad: {"eps": "positive", "initial_accumulator_value": "nonnegative"},
    lo.scale_by_rmsprop: {"decay": "unit", "eps": "positive"},
    lo.scale_by_adadelta: {"rho": "unit", "eps": "positive"},
    lo.scale_by_adam: {"b1": "unit", "b2": "unit", "eps": "positive"},
    lo.scale_by_yogi: {"b1": "unit", "b2": "unit", "eps": "positive"},
}
FLAGS = {lo.adam: ["bias_correction"], lo.scale_by_adam: ["bias_correction"], lo.momentum: ["lr_in_velocity"],
         lo.nesterov: ["lr_in_velocity"], lo.scale_by_momentum: ["nesterov"],
         lo.scale_by_learning_rate: ["flip_sign"]}
NUMERIC_CASES = [(f, a) for f, args in NUMERIC.items() for a in args]
FLAG_CASES = [(f, a) for f, args in FLAGS.items() for a in args]

NAN, INF = float("nan"), float("inf")
NOT_A_REAL_SCALAR = st.one_of(
    st.booleans(), st.sampled_from([np.bool_(True), np.bool_(False), np.array(True)]),  # bools as numbers
    st.text(max_size=5), st.none(),  # strings, None
    st.lists(st.floats(0.1, 0.5), min_size=2, max_size=3),  # vectors as scalars
    st.builds(np.full, st.sampled_from([(2,), (1,), (1, 1)]), st.floats(0.1, 0.5)),
    st.complex_numbers(min_magnitude=0.1, max_magnitude=0.5).filter(lambda z: z.imag != 0),
)
OUT_OF_DOMAIN = {
    "nonnegative": st.one_of(st.floats(max_value=0.0, exclude_max=True), st.sampled_from([NAN, INF])),
    "positive": st.one_of(st.floats(max_value=0.0), st.sampled_from([NAN, INF])),
    "unit": st.one_of(st.floats(max_value=0.0, exclude_max=True), st.floats(min_value=1.0),
                      st.just(NAN)),
}


def _base_kwargs(factory):
  """Valid required arguments: a learning rate where the call has no default for it."""
  lr = inspect.signature(factory).parameters.get("learning_rate")
  return {"learning_rate": 0.1} if lr is not None and lr.default is inspect.Parameter.empty else {}


@pytest.mark.parametrize("factory,arg", NUMERIC_CASES, ids=[f"{f.__name__}-{a}" for f, a in NUMERIC_CASES])
@given(data=st.data())
def test_generated_bad_numbers_raise(factory, arg, data):
  value = data.draw(st.one_of(NOT_A_REAL_SCALAR, OUT_OF_DOMAIN[NUMERIC[factory][arg]]))
  with pytest.raises(ValueError, match=rf"`{factory.__name__}\({arg}=\.\.\.\)` .*, got {arg}="):
    factory(**{**_base_kwargs(factory), arg: value})


@pytest.mark.parametrize("factory,arg", FLAG_CASES, ids=[f"{f.__name__}-{a}" for f, a in FLAG_CASES])
@given(value=st.one_of(st.integers(), st.floats(), st.text(max_size=5), st.none(),
                       st.lists(st.booleans(), min_size=1, max_size=2), st.just(np.array([True]))))
def test_generated_bad_flags_raise(factory, arg, value):
  with pytest.raises(ValueError, match=rf"`{factory.__name__}\({arg}=\.\.\.\)` must be True or False"):
    factory(**{**_base_kwargs(factory), arg: value})


@pytest.mark.parametrize("factory", [lo.sgd, lo.momentum, lo.nesterov, lo.adam])
@given(mask=st.one_of(st.text(max_size=3), st.integers(), st.floats(),
                      st.dictionaries(st.sampled_from(["w", "b"]),
                                      st.one_of(st.integers(), st.text(max_size=2), st.floats()), min_size=1)))
def test_generated_bad_weight_decay_masks_raise(factory, mask):
  with pytest.raises(ValueError, match=rf"`{factory.__name__}\(weight_decay_mask=\.\.\.\)`"):
    factory(0.1, weight_decay=0.1, weight_decay_mask=mask)


@pytest.mark.parametrize("factory,arg", [(lo.sgd, "learning_rate"), (lo.adam, "b1"), (lo.adam, "weight_decay")])
def test_vector_tracers_raise_scalar_tracers_pass(factory, arg):
  build = lambda v: factory(**{**_base_kwargs(factory), arg: v}).init(jnp.zeros(2))
  with pytest.raises(ValueError, match=rf"`{factory.__name__}\({arg}=\.\.\.\)` must be a scalar"):
    jax.jit(build)(jnp.full(2, 0.5))
  chex.assert_tree_all_finite(jax.jit(jax.vmap(build))(jnp.full(2, 0.5)))  # shape () inside vmap


OPTIMIZER_MODULES = [importlib.import_module(f"lrtools.optimizers.{m}")
                     for m in ("_sgd", "_adam", "_adaptive", "_learning_rate", "_weight_decay")]


@pytest.mark.parametrize("factory", list(NUMERIC), ids=[f.__name__ for f in NUMERIC])
def test_each_argument_is_checked_once_under_the_public_name(factory, monkeypatch):
  # Aliases used to check their arguments, then have their scale_by_* check them again under its name.
  seen = []
  for module in OPTIMIZER_MODULES:
    if hasattr(module, "check"):
      monkeypatch.setattr(module, "check", lambda checker, call, name, *args: seen.append((call, name)))
    if hasattr(module, "check_flag"):
      monkeypatch.setattr(module, "check_flag", lambda call, name, value: seen.append((call, name)))
  factory(**_base_kwargs(factory))
  names = [name for _, name in seen]
  assert {call for call, _ in seen} == {factory.__name__}
  assert sorted(names) == sorted(set(inspect.signature(factory).parameters) - {"weight_decay_mask"})


def test_schedules_are_not_checked_at_construction_and_are_used():
  # A schedule is only known at run time: construction must not call it (a schedule of a tracer may
  # not exist yet); the update uses its values at the step count, read back from the state.
  calls = []

  def schedule(base, slope):
    def fn(t):
      calls.append(t)
      return base + slope * _float(t)
    return fn

  opts = {
      "adam": lo.adam(schedule(1e-3, 1e-3), b1=schedule(0.9, -0.1), b2=schedule(0.99, 0.001),
                      eps=schedule(1e-8, 1e-8), weight_decay=schedule(0.0, 0.01)),
      "momentum": lo.momentum(schedule(0.1, -0.01), momentum=schedule(0.5, 0.1),
                              weight_decay=schedule(0.01, 0.0)),
  }
  assert calls == []
  want = {"adam": {"learning_rate": 3e-3, "b1": 0.7, "b2": 0.992, "eps": 3e-8, "weight_decay": 0.02},
          "momentum": {"learning_rate": 0.08, "momentum": 0.7, "weight_decay": 0.01}}
  for name, opt in opts.items():
    x = jnp.ones(2)
    state = opt.init(x)
    for _ in range(3):  # the third update runs at count 2
      _, state = opt.update(x, state, x)
    hp = lo.current_hyperparams(state)
    assert set(hp) == set(want[name])
    for k, v in want[name].items():
      np.testing.assert_allclose(hp[k], np.float32(v), rtol=4 * F32_EPS)


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
  with jax.enable_x64(True):  # (a function-scoped fixture would be shared by every hypothesis example)
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


@pytest.mark.parametrize("name", MAIN + ["adamw"])
def test_state_can_be_donated(name):
  # Every state field owns its buffer (no aliasing between fields or with the caller's arrays): donating
  # it neither fails nor warns, and the run equals the undonated one.
  factory, hp = _optimizer(name)
  opt = factory(**{k: jnp.asarray(v) for k, v in hp.items()})
  plain = jax.jit(lambda x, s, n: _step(opt, x, s, n))
  donating = jax.jit(lambda x, s, n: _step(opt, x, s, n), donate_argnums=(0, 1))
  x0, noise = jnp.asarray(X0), jnp.asarray(NOISE[:3])
  want = (x0, opt.init(x0))
  for n in noise:
    want = plain(*want, n)
  got = (x0 + 0, opt.init(x0))
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # "Some donated buffers were not usable" included
    for n in noise:
      x_before = got[0]
      got = donating(*got, n)
      assert x_before.is_deleted()
  chex.assert_trees_all_equal(got, want)
