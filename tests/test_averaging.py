"""ema_params / polyak_params against NumPy averages of the same iterates."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from lrtools._typing import INT32_MAX
from lrtools.optimizers import current_hyperparams, momentum
from lrtools.transforms import (EmaParamsState, PolyakParamsState, averaged_params, ema_params,
                                polyak_params)

STEPS = 60
_rng = np.random.default_rng(3)
NOISE = _rng.normal(size=(STEPS, 4))
X0 = _rng.normal(size=4)


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
  """The parameters' dtype; float64 runs with x64 on for this test only."""
  if request.param == "float32":
    yield np.float32
  else:
    with jax.enable_x64(True):
      yield np.float64


def _run(averager, dtype, noise=NOISE):
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

  xs, avgs = go(jnp.asarray(X0, dtype))
  return np.asarray(xs), np.asarray(avgs)


def _assert_average_close(avgs, reference, xs):
  """``avgs`` within the rounding error of the stored update x̄ ← x̄ + w·(x − x̄) of the reference's
  ``(averages, weights)``. With u = eps/2 and M = max|x|, a step rounds x − x̄ (≤ 2uM), w (≤ 3u
  relative: 1 − ∏d, its division, the cast), w·(x − x̄) and the sum (≤ uM): at most uM·(1 + 10w) of new
  error, while the error already in x̄ is multiplied by 1 − w. The reference averages the same
  (rounded) iterates, so only the averaging's own rounding is measured."""
  want, weights = reference
  assert avgs.dtype == xs.dtype
  unit = np.finfo(xs.dtype).eps / 2 * np.max(np.abs(xs))
  error, atol = 0.0, 0.0
  for w in weights:
    error = (1 - w) * error + unit * (1 + 10 * w)
    atol = max(atol, error)
  chex.assert_trees_all_close(avgs, want.astype(avgs.dtype), rtol=0.0, atol=atol)


@pytest.mark.parametrize("debias", [True, False])
@pytest.mark.parametrize("start_step", [0, 7])
def test_ema_matches_reference(debias, start_step, dtype):
  xs, avgs = _run(ema_params(0.5, debias=debias, start_step=start_step), dtype)
  _assert_average_close(avgs, ref.ema_average(xs, 0.5, debias, start_step, weights=True), xs)
  # 0.9 is not a float32 number: the reference gets the decay the state holds.
  d = float(jnp.asarray(0.9, jnp.result_type(float)))
  xs, avgs = _run(ema_params(0.9, debias=debias, start_step=start_step), dtype)
  _assert_average_close(avgs, ref.ema_average(xs, d, debias, start_step, weights=True), xs)


def test_ema_with_scheduled_decay(dtype):
  table = (0.5 + 0.45 * np.sin(np.arange(STEPS) / 9) ** 2).astype(jnp.result_type(float))
  decay = lambda t: jnp.asarray(table)[t]
  for debias in (True, False):
    xs, avgs = _run(ema_params(decay, debias=debias, start_step=3), dtype)
    _assert_average_close(avgs, ref.ema_average(xs, table.astype(np.float64), debias, 3, weights=True), xs)


@pytest.mark.parametrize("start_step,every", [(0, 1), (10, 1), (5, 4)])
def test_polyak_matches_reference(start_step, every, dtype):
  xs, avgs = _run(polyak_params(start_step, every), dtype)
  _assert_average_close(avgs, ref.polyak_average(xs, start_step, every, weights=True), xs)


def test_float32_and_trees():
  params = {"a": jnp.ones(3, jnp.float32), "b": jnp.zeros((2, 2), jnp.float32)}
  opt = optax.chain(optax.sgd(0.1), ema_params(0.9))
  state = opt.init(params)
  updates, state = opt.update(jax.tree.map(jnp.ones_like, params), state, params)
  avg = averaged_params(state)
  chex.assert_trees_all_equal_shapes_and_dtypes(avg, params)
  # debiased: the first step gives x_1 = 1 − 0.1 itself (two roundings in float32)
  chex.assert_trees_all_close(avg["a"], jnp.full(3, 0.9, jnp.float32), rtol=2 * np.finfo(np.float32).eps)
  assert float(current_hyperparams(state)["ema_decay"]) == pytest.approx(0.9)


def test_vmap_over_decay():
  decays = jnp.array([0.5, 0.9, 0.99])

  def iterates_and_average(d):
    opt = optax.chain(optax.sgd(0.1), ema_params(d))
    x = jnp.ones(2)
    xs, state = [x], opt.init(x)
    for _ in range(5):
      updates, state = opt.update(x, state, x)
      x = optax.apply_updates(x, updates)
      xs.append(x)
    return jnp.stack(xs), averaged_params(state)

  xs, got = jax.jit(jax.vmap(iterates_and_average))(decays)
  for i, d in enumerate(np.asarray(decays, np.float64)):
    want, weights = ref.ema_average(np.asarray(xs[i], np.float64), d, weights=True)
    _assert_average_close(np.asarray(got[i]), (want[-1], weights), np.asarray(xs[i]))


# Beyond 2**31 − 1 steps: the count saturates (optax.safe_increment) and the average goes on.

def _feed(tx, state, x, steps):
  """``steps`` updates whose new parameters are ``x``; the averages after each."""
  out = []
  for _ in range(steps):
    _, state = tx.update(jnp.zeros_like(x), state, x)
    chex.assert_tree_all_finite(state)
    out.append(np.asarray(state.average))
  return state, out


@pytest.mark.parametrize("start_step", [0, INT32_MAX - 10])
@pytest.mark.parametrize("debias", [True, False])
def test_ema_past_the_int32_count(start_step, debias):
  d = 0.5
  tx = ema_params(d, debias=debias, start_step=start_step)
  n0 = INT32_MAX - 1 - start_step  # iterates averaged when the count is 2**31 − 2
  product = np.float64(d) ** min(n0, 2000)  # underflows to 0 for start_step 0, as the state does
  x, avg = jnp.full(2, 4.0), jnp.zeros(2)
  state = EmaParamsState(jnp.int32(INT32_MAX - 1), avg, jnp.asarray(product, jnp.result_type(float)),
                         {"ema_decay": jnp.asarray(d, jnp.result_type(float))})
  state, got = _feed(tx, state, x, 4)
  assert int(state.count) == INT32_MAX
  want, a = [], np.zeros(2)
  for _ in range(4):  # x̄ ← x̄ + w (x − x̄), w = (1 − d)/(1 − dⁿ) with n = n0 + 1, n0 + 2, ...
    product *= d
    w = (1 - d) / (1 - product) if debias else 1 - d
    a = a + w * (4.0 - a)
    want.append(a.copy())
  chex.assert_trees_all_close(np.stack(got), np.stack(want), rtol=4 * np.finfo(np.float32).eps)
  assert float(state.decay_product) == pytest.approx(product, rel=1e-6, abs=0.0)


@pytest.mark.parametrize("every", [1, 3])
def test_polyak_past_the_int32_count(every):
  tx = polyak_params(every=every)
  x, avg = jnp.full(2, 10.0), jnp.zeros(2)
  count = INT32_MAX - 1
  # After count iterates: count // every averaged, phase count % every (its rhythm goes on from there).
  state = PolyakParamsState(jnp.int32(count), avg, jnp.int32(4), jnp.int32(count % every))
  state, got = _feed(tx, state, x, 6)
  want, a, n = [], 0.0, 4
  for k in range(count + 1, count + 7):
    if k % every == 0:
      n += 1
      a += (10.0 - a) / n
    want.append(np.full(2, a))
  chex.assert_trees_all_close(np.stack(got), np.stack(want), rtol=4 * np.finfo(np.float32).eps)
  assert int(state.count) == INT32_MAX and int(state.num_averaged) == n


def test_polyak_mean_at_the_int32_limit_of_averaged_iterates():
  """Once 2**31 − 1 iterates are averaged, num_averaged saturates and each further iterate enters
  with weight 1/(2**31 − 1): the mean keeps moving, as an exponential average of that weight."""
  tx = polyak_params()
  x = jnp.full(1, 2.0**31)
  state = PolyakParamsState(jnp.int32(INT32_MAX - 1), jnp.zeros(1), jnp.int32(INT32_MAX - 1), jnp.int32(0))
  state, got = _feed(tx, state, x, 3)
  assert int(state.num_averaged) == INT32_MAX
  want, a = [], 0.0
  for _ in range(3):
    a += (2.0**31 - a) / INT32_MAX
    want.append([a])
  chex.assert_trees_all_close(np.stack(got), np.asarray(want), rtol=4 * np.finfo(np.float32).eps)


def _decay(t):
  return 0.5 + 0.4 / (1 + jnp.asarray(t, jnp.result_type(float)))


@pytest.mark.parametrize("averager", [ema_params(_decay, start_step=2),
                                      polyak_params(start_step=1, every=2)], ids=["ema", "polyak"])
def test_state_survives_a_numpy_round_trip(averager):
  """A checkpoint is a tree of NumPy arrays: restored, the state continues identically, no retrace."""
  opt = optax.chain(optax.sgd(0.1), averager)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(p, s):
    updates, s = opt.update(jnp.sin(p), s, p)
    return optax.apply_updates(p, updates), s

  params = jnp.arange(3.0)
  state = opt.init(params)
  for _ in range(3):
    params, state = step(params, state)
  restored = jax.tree.map(jnp.asarray, jax.tree.map(np.asarray, state))
  chex.assert_trees_all_equal_shapes_and_dtypes(restored, state)
  a, b = (params, state), (params, restored)
  for _ in range(4):
    a, b = step(*a), step(*b)
  chex.assert_trees_all_equal(a, b)


def test_errors():
  opt = ema_params(0.9)
  with pytest.raises(ValueError, match=r"^`ema_params.update\(params=\.\.\.\)` must be given.+got params=None"):
    opt.update(jnp.ones(2), opt.init(jnp.ones(2)))
  with pytest.raises(ValueError, match=r"`averaged_params\(opt_state=\.\.\.\)` found no"):
    averaged_params(optax.sgd(0.1).init(jnp.ones(2)))
  with pytest.raises(ValueError, match=r"`ema_params\(decay=\.\.\.\)` must lie in \[0, 1\), got decay=1.0"):
    ema_params(1.0)
  with pytest.raises(ValueError, match=r"`ema_params\(start_step=\.\.\.\)`"):
    ema_params(0.9, start_step=-1)
  with pytest.raises(ValueError, match=r"`polyak_params\(every=\.\.\.\)`"):
    polyak_params(every=0)
  with pytest.raises(ValueError, match=r"`polyak_params\(start_step=\.\.\.\)`"):
    polyak_params(start_step=1.5)


# Generated bad inputs: bools as numbers, strings/None/complex, vectors as scalars, ints above int32.
_not_a_number = st.one_of(st.booleans(), st.text(max_size=3), st.none(),
                          st.complex_numbers(min_magnitude=0.1, max_magnitude=0.5).filter(lambda z: z.imag != 0),
                          st.lists(st.floats(0.0, 0.5), min_size=1, max_size=3).map(np.asarray))
_not_a_step = st.one_of(_not_a_number, st.integers(min_value=2**31), st.integers(max_value=-1),
                        st.floats(0.1, 10.0).filter(lambda f: f != round(f)))
_not_a_flag = st.one_of(st.integers(0, 1), st.sampled_from(["False", "True", "", "no"]), st.none(),
                        st.just(np.asarray([True])))


@given(case=st.one_of(
    st.tuples(st.just("ema_params"), st.just("decay"), _not_a_number | st.sampled_from([1.0, -0.1, np.nan])),
    st.tuples(st.just("ema_params"), st.just("debias"), _not_a_flag),
    st.tuples(st.just("ema_params"), st.just("start_step"), _not_a_step),
    st.tuples(st.just("polyak_params"), st.just("start_step"), _not_a_step),
    st.tuples(st.just("polyak_params"), st.just("every"), _not_a_step | st.just(0))))
def test_bad_arguments_are_named(case):
  call, name, value = case
  kwargs = {"decay": 0.9} if call == "ema_params" else {}
  with pytest.raises(ValueError, match=rf"^`{call}\({name}=\.\.\.\)` .+, got {name}="):
    {"ema_params": ema_params, "polyak_params": polyak_params}[call](**{**kwargs, name: value})


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
  chex.assert_tree_all_finite(averaged_params(state))
