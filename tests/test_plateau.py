"""reduce_on_plateau against a NumPy transcription of the ReduceLROnPlateau rule (fixed for negatives)."""

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from lrtools.optimizers import current_hyperparams, sgd
from lrtools.transforms import plateau_scale, reduce_on_plateau

LENGTH = 40
_COMPILED = {}


def _scales(metrics, mode="min", threshold_mode="rel", **hp):
  """Scale after each evaluation, from one jitted scan; the numeric hyperparameters are traced
  arguments, so each (mode, threshold_mode) compiles once for the whole module."""
  key = (mode, threshold_mode)
  if key not in _COMPILED:
    def run(metrics, hp):
      tx = reduce_on_plateau(mode=mode, threshold_mode=threshold_mode, **hp)

      def body(state, value):
        _, state = tx.update(jnp.ones(1), state, value=value)
        return state, state.scale

      return jax.lax.scan(body, tx.init(jnp.ones(1)), metrics)[1]

    _COMPILED[key] = jax.jit(run)
  full = {"factor": 0.1, "patience": 10, "threshold": 1e-4, "cooldown": 0, "min_scale": 0.0, **hp}
  return np.asarray(_COMPILED[key](jnp.asarray(metrics, jnp.float64), full))


_ties = st.sampled_from([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
# XLA flushes subnormals to zero, so metrics (and threshold·|metric|) stay well clear of them.
_metric = st.one_of(_ties, st.floats(-10, 10, allow_nan=False).map(lambda x: 0.0 if abs(x) < 1e-200 else x))


@given(metrics=st.lists(_metric, min_size=LENGTH, max_size=LENGTH),
       factor=st.sampled_from([0.0, 0.1, 0.5, 0.9]),
       patience=st.integers(0, 4),
       threshold=st.sampled_from([0.0, 1e-4, 0.05, 0.5]),
       threshold_mode=st.sampled_from(["rel", "abs"]),
       mode=st.sampled_from(["min", "max"]),
       cooldown=st.integers(0, 3),
       min_scale=st.sampled_from([0.0, 1e-3, 0.2]))
def test_matches_reference(metrics, factor, patience, threshold, threshold_mode, mode, cooldown,
                           min_scale):
  hp = dict(factor=factor, patience=patience, threshold=threshold, cooldown=cooldown, min_scale=min_scale)
  got = _scales(metrics, mode, threshold_mode, **hp)
  want = ref.reduce_on_plateau(metrics, threshold_mode=threshold_mode, mode=mode, **hp)
  np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("mode", ["min", "max"])
def test_random_walks_with_negative_values(mode):
  rng = np.random.default_rng(1)
  for _ in range(5):
    metrics = np.cumsum(rng.normal(0.0, 1.0, LENGTH)) - 5.0  # mostly negative, wandering
    got = _scales(metrics, mode, "rel", patience=2, factor=0.5, cooldown=1)
    want = ref.reduce_on_plateau(metrics, mode=mode, patience=2, factor=0.5, cooldown=1)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_negative_plateau_is_detected():
  # A loss stuck just above −1: the rule best·(1 − threshold) would call −0.99995 an improvement on
  # −1 at every step and never reduce; the |best| rule sees the plateau.
  metrics = [-1.0] + [-0.99995] * (LENGTH - 1)
  scales = _scales(metrics, patience=3, threshold=1e-4)
  assert scales[3] == 1.0 and scales[4] == pytest.approx(0.1)
  np.testing.assert_allclose(scales, ref.reduce_on_plateau(metrics, patience=3))


def test_nan_metric_counts_as_bad():
  scales = _scales([1.0, np.nan, np.nan, 0.5] + [0.5] * (LENGTH - 4), patience=1, factor=0.5)
  assert scales[1] == 1.0 and scales[2] == 0.5 and scales[3] == 0.5


def test_accumulation_averages_the_metric():
  rng = np.random.default_rng(2)
  metrics = rng.normal(size=36)
  tx = reduce_on_plateau(patience=1, factor=0.5, accumulation_size=3)
  state = tx.init(jnp.ones(1))
  scales = []
  for m in metrics:
    _, state = tx.update(jnp.ones(1), state, value=m)
    scales.append(float(state.scale))
  want = ref.reduce_on_plateau(metrics.reshape(-1, 3).mean(axis=1), patience=1, factor=0.5)
  np.testing.assert_allclose(scales[2::3], want)  # an evaluation on every third update
  np.testing.assert_allclose(scales[0::3], np.concatenate([[1.0], want[:-1]]))
  np.testing.assert_allclose(scales[1::3], np.concatenate([[1.0], want[:-1]]))


def test_scales_the_updates_in_a_chain():
  opt = optax.chain(sgd(0.1), reduce_on_plateau(patience=0, factor=0.5))
  params = {"w": jnp.ones(2, jnp.float32)}
  state = opt.init(params)
  for loss in [1.0, 1.0]:
    updates, state = opt.update({"w": jnp.ones(2, jnp.float32)}, state, params, value=loss)
  assert updates["w"].dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(updates["w"]), -0.05)
  hp = current_hyperparams(state)
  assert float(hp["plateau_scale"]) == 0.5 and float(plateau_scale(state)) == 0.5


def test_vmap_over_factor_and_patience():
  metrics = jnp.asarray([3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])

  def run(factor, patience):
    tx = reduce_on_plateau(factor=factor, patience=patience)
    state = tx.init(jnp.ones(1))
    state = jax.lax.fori_loop(0, 8, lambda i, s: tx.update(jnp.ones(1), s, value=metrics[i])[1], state)
    return state.scale

  got = jax.vmap(run)(jnp.array([0.5, 0.1, 0.5]), jnp.array([1, 2, 6]))
  for i, (f, p) in enumerate([(0.5, 1), (0.1, 2), (0.5, 6)]):
    assert float(got[i]) == pytest.approx(ref.reduce_on_plateau(metrics, factor=f, patience=p)[-1])


def test_state_round_trip():
  tx = reduce_on_plateau(patience=1)
  state = tx.init(jnp.ones(1))
  for m in [1.0, 2.0]:
    _, state = tx.update(jnp.ones(1), state, value=m)
  restored = flax.serialization.from_bytes(tx.init(jnp.ones(1)), flax.serialization.to_bytes(state))
  jax.tree.map(np.testing.assert_array_equal, restored, state)
  _, a = tx.update(jnp.ones(1), state, value=3.0)
  _, b = tx.update(jnp.ones(1), restored, value=3.0)
  assert float(a.scale) == float(b.scale) == pytest.approx(0.1)


@pytest.mark.parametrize("kwargs,arg", [
    ({"factor": 1.0}, "factor"), ({"factor": -0.1}, "factor"), ({"patience": -1}, "patience"),
    ({"patience": 2.5}, "patience"), ({"threshold": -1e-4}, "threshold"),
    ({"threshold_mode": "relative"}, "threshold_mode"), ({"mode": "avg"}, "mode"),
    ({"cooldown": -1}, "cooldown"), ({"min_scale": 1.5}, "min_scale"),
    ({"min_scale": -0.1}, "min_scale"), ({"accumulation_size": 0}, "accumulation_size"),
])
def test_bad_arguments(kwargs, arg):
  with pytest.raises(ValueError, match=rf"`reduce_on_plateau\({arg}=\.\.\.\)`"):
    reduce_on_plateau(**kwargs)


def test_state_can_be_donated():
  opt = optax.chain(sgd(0.1), reduce_on_plateau(patience=0))

  def step(p, s, loss):
    updates, s = opt.update(jnp.ones_like(p), s, p, value=loss)
    return optax.apply_updates(p, updates), s

  step = jax.jit(step, donate_argnums=(0, 1))
  params, state = jnp.ones(2), opt.init(jnp.ones(2))
  for loss in (1.0, 1.0, 1.0):
    params, state = step(params, state, loss)
  np.testing.assert_allclose(np.asarray(params), 1 - 0.1 * (1 + 0.1 + 0.01))
