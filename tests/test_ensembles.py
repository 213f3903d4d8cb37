"""Snapshot/checkpoint ensembles and ensemble predictions against naive NumPy references."""

import chex
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

import reference as ref
from lrtools import schedules, train_loop
from lrtools._typing import INT32_MAX
from lrtools.ensembles import (SnapshotState, cycle_ends, ensemble_predict, snapshot_buffer, snapshot_ensemble,
                               snapshot_steps, snapshots, stack_members, top_k_members)
from lrtools.optimizers import momentum

DIM = 3
TARGETS = np.random.default_rng(0).normal(size=(16, DIM)).astype(np.float32)


def _loss(w, target):
  """A noisy quadratic; the aux is the parameters before the step, so the iterates can be read back."""
  return 0.5 * jnp.sum((w - target) ** 2), w


def _run(collector, num_steps):
  """``num_steps`` momentum steps through ``lrtools.train_loop`` (one jitted scan). Returns the final
  state and the iterates after every step (``iterates[k]`` = parameters after step k)."""
  opt = optax.chain(momentum(0.1, 0.5), collector)
  x0 = jnp.zeros(DIM, jnp.float32)
  out = jax.jit(lambda w: train_loop(_loss, opt, w, opt.init(w), TARGETS, num_steps=num_steps,
                                     has_aux=True, learning_rate=0.0))(x0)
  iterates = np.concatenate([np.asarray(out.records.aux)[1:], np.asarray(out.params)[None]])
  return out.opt_state, iterates


def _assert_collected(state, iterates, ends, num_snapshots):
  want_steps, want = ref.snapshot_collect(iterates, ends, num_snapshots)
  assert snapshot_steps(state).tolist() == want_steps
  got = np.asarray(snapshots(state))
  assert got.shape == (len(want), DIM)
  np.testing.assert_array_equal(got, np.asarray(want, got.dtype))  # exact copies


# ----- cycle ends -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cycle_steps,cycle_mult", [(7, 1.0), (5, 2.0), (4, 1.3), (3, 1.5), (2, 3.0)])
def test_cycle_ends_are_sgdr_restarts(cycle_steps, cycle_mult):
  sched = schedules.sgdr_schedule(0.1, cycle_steps, cycle_mult, min_value=1e-3, max_decay=0.95)
  values = np.asarray(jax.jit(sched)(jnp.arange(301)))
  for num_steps in (299, 300):  # one of them ends on a restart for most settings
    want = ref.sgdr_cycle_ends(cycle_steps, cycle_mult, num_steps)
    assert len(want) >= 3
    assert cycle_ends(lambda t: jnp.asarray(values)[t], num_steps).tolist() == want
  # A warmup at the start is no cycle end; the restarts move by the warmup.
  warm = schedules.warmup_schedule(sched, 6)
  assert cycle_ends(warm, 306).tolist() == [e + 6 for e in ref.sgdr_cycle_ends(cycle_steps, cycle_mult, 300)]


@settings(max_examples=8)
@given(cycle_steps=st.integers(2, 12), cycle_mult=st.sampled_from([1.0, 1.25, 1.5, 2.0, 3.0]),
       min_ratio=st.sampled_from([0.0, 0.1, 0.5]), num_steps=st.integers(40, 200))
def test_cycle_ends_property_any_sgdr(cycle_steps, cycle_mult, min_ratio, num_steps):
  sched = schedules.sgdr_schedule(1.0, cycle_steps, cycle_mult, min_value=min_ratio)
  values = jnp.asarray(sched(jnp.arange(201)))  # one shape: op-by-op evaluation is cached across examples
  want = ref.sgdr_cycle_ends(cycle_steps, cycle_mult, num_steps)
  assert cycle_ends(lambda t: values[t], num_steps).tolist() == want


@pytest.mark.parametrize("up,down", [(5, None), (30, 2)])
def test_cycle_ends_of_cyclical_schedules_are_minima_before_rises(up, down):
  sched = schedules.cyclical_schedule(0.01, 0.1, up, down)
  period = up + (up if down is None else down)
  values = np.asarray(sched(jnp.arange(4 * period + 1)))
  want = [k * period for k in (1, 2, 3)]  # the LR's minimum before it climbs again
  assert all(values[w] == values.min() < values[w + 1] for w in want)
  assert cycle_ends(sched, 4 * period).tolist() == want
  assert cycle_ends(sched, 4 * period + 1).tolist() == want + [4 * period]
  half = schedules.cyclical_schedule(0.01, 0.1, up, down, mode="triangular2")  # shrinking cycles
  assert cycle_ends(half, 4 * period).tolist() == want


def test_cycle_ends_of_joined_wsd_cycles():
  total = 40
  one = schedules.wsd_schedule(0.1, total, warmup_steps=5, decay_steps=10, decay_shape="1-sqrt")
  three = schedules.join_schedules([one, one, one], [total, 2 * total])
  values = np.asarray(three(jnp.arange(3 * total + 1)))
  assert values[total] == values[2 * total] == 0 < values[total + 1]
  # The LR reaches 0 at step `total` (the last cooldown value, then the next warmup's start): that ends a cycle.
  assert cycle_ends(three, 3 * total).tolist() == [total, 2 * total]


def test_cycle_ends_of_periods_and_steps():
  assert cycle_ends(4, 17).tolist() == [3, 7, 11, 15]
  assert cycle_ends(1, 3).tolist() == [0, 1, 2]
  assert cycle_ends(INT32_MAX, INT32_MAX).tolist() == [INT32_MAX - 1]  # no table of 2**31 steps
  assert cycle_ends([2, 5, 9], 10).tolist() == [2, 5, 9]
  assert cycle_ends(np.array([0]), 1).dtype == np.int32


def test_cycle_ends_ignores_rounding_at_a_flat_minimum():
  # A long float32 cosine is flat (and rounded) at its bottom: one end per cycle, at the cycle's last step.
  sched = schedules.sgdr_schedule(1.0, 3000, 1.0)
  assert cycle_ends(sched, 9000).tolist() == [2999, 5999, 8999]
  assert cycle_ends(schedules.constant_schedule(0.1), 100).tolist() == []
  assert cycle_ends(schedules.cosine_decay_schedule(0.1, 50), 100).tolist() == []  # falls, never rises


# ----- the collector ----------------------------------------------------------------------------------


RUN_STEPS = 60
LIST_ENDS = [0, 3, 4, 10, 31]
# Every collector under test rides on one run (one compilation): (name, collector, its cycle ends, M).
COLLECTORS = [
    *[(f"sgdr-m{m}-M{k}", snapshot_ensemble(schedules.sgdr_schedule(0.1, 4, m), k, num_steps=RUN_STEPS),
       ref.sgdr_cycle_ends(4, m, RUN_STEPS), k) for m, k in [(1.0, 1), (2.0, 3), (1.5, 8)]],
    *[(f"period{p}-M{k}", snapshot_ensemble(p, k), range(p - 1, RUN_STEPS, p), k)
      for p, k in [(1, 4), (5, 3), (7, 20)]],
    *[(f"list-M{k}", snapshot_ensemble(LIST_ENDS, k), LIST_ENDS, k) for k in (2, 8)],
]


@pytest.fixture(scope="module")
def shared_run():
  state, iterates = _run(optax.chain(*[c for _, c, _, _ in COLLECTORS]), RUN_STEPS)
  return {name: state[1][i] for i, (name, _, _, _) in enumerate(COLLECTORS)}, iterates


@pytest.mark.parametrize("name,ends,num_snapshots", [(n, e, k) for n, _, e, k in COLLECTORS],
                         ids=[n for n, _, _, _ in COLLECTORS])
def test_collects_the_parameters_after_each_cycle_end(shared_run, name, ends, num_snapshots):
  states, iterates = shared_run
  state = states[name]
  assert isinstance(state, SnapshotState) and state.count.dtype == jnp.int32 and int(state.count) == RUN_STEPS
  assert len(list(ends)) >= 3
  _assert_collected(state, iterates, ends, num_snapshots)
  assert int(state.num_taken) == len(list(ends))


def test_ring_buffer_order_and_empty_slots(shared_run):
  states, _ = shared_run
  buf = snapshot_buffer(states["list-M2"])
  assert buf.steps.tolist() == [10, 31] and buf.valid.tolist() == [True, True]
  # Before the buffer fills, empty slots come last and are marked invalid.
  buf = snapshot_buffer(states["list-M8"])
  assert buf.steps.tolist() == LIST_ENDS + [-1, -1, -1]
  assert buf.valid.tolist() == [True] * 5 + [False] * 3
  assert np.asarray(snapshots(states["list-M8"])).shape == (5, DIM)
  np.testing.assert_array_equal(np.asarray(buf.members[5:]), 0.0)


def test_vmap_over_seeds_and_traced_periods():
  periods = jnp.array([2, 3, 5], jnp.int32)
  x0s = jnp.asarray(np.random.default_rng(1).normal(size=(3, DIM)), jnp.float32)

  def run(period, x0):
    opt = optax.chain(momentum(0.1, 0.5), snapshot_ensemble(period, 4))
    out = train_loop(_loss, opt, x0, opt.init(x0), TARGETS, num_steps=23, has_aux=True, learning_rate=0.0)
    return out, snapshot_buffer(out.opt_state)

  outs, bufs = jax.jit(jax.vmap(run))(periods, x0s)
  for i, period in enumerate([2, 3, 5]):
    iterates = np.concatenate([np.asarray(outs.records.aux[i])[1:], np.asarray(outs.params[i])[None]])
    state = jax.tree.map(lambda x: x[i], outs.opt_state)
    _assert_collected(state, iterates, range(period - 1, 23, period), 4)
    steps, want = ref.snapshot_collect(iterates, range(period - 1, 23, period), 4)
    assert bufs.steps[i].tolist() == steps  # the jittable buffer, vmapped, agrees with the host reading
    np.testing.assert_array_equal(np.asarray(bufs.members[i]), np.asarray(want, np.float32))


def test_no_recompilation_across_steps():
  opt = optax.chain(optax.sgd(0.1), snapshot_ensemble([1, 2, 5], 2))

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(params, state):
    updates, state = opt.update(params, state, params)
    return optax.apply_updates(params, updates), state

  params = {"a": jnp.ones(2), "b": jnp.ones((2, 2))}
  state = opt.init(params)
  for _ in range(7):
    params, state = step(params, state)
  assert snapshot_steps(state).tolist() == [2, 5]
  assert jax.tree.map(jnp.shape, snapshots(state)) == {"a": (2, 2), "b": (2, 2, 2)}


def test_periods_past_int32_saturation():
  # The phase keeps the rhythm once the count saturates at 2**31 − 1: no overflow, no table.
  opt = snapshot_ensemble(3, 2)
  params = jnp.zeros(())
  state = opt.init(params)._replace(count=jnp.asarray(INT32_MAX - 2, jnp.int32), phase=jnp.asarray(1, jnp.int32))
  taken = []
  for k in range(7):
    _, state = opt.update(jnp.asarray(float(k + 1)), state, params)
    taken.append(int(state.num_taken))
  assert int(state.count) == INT32_MAX
  assert taken == [0, 1, 1, 1, 2, 2, 2]
  big = snapshot_ensemble(INT32_MAX, 1)  # a period of 2**31 − 1
  state = big.init(params)._replace(phase=jnp.asarray(INT32_MAX - 2, jnp.int32))
  _, state = big.update(jnp.ones(()), state, params)
  _, state = big.update(jnp.ones(()), state, params)
  assert int(state.num_taken) == 1 and int(state.phase) == 0


def test_non_finite_snapshots_are_flagged_and_can_be_skipped():
  opt = optax.chain(optax.sgd(1.0), snapshot_ensemble(1, 3))
  params = jnp.zeros(2)
  state = opt.init(params)
  for g in ([-1.0, -1.0], [np.nan, 0.0], [0.0, 0.0]):
    updates, state = opt.update(jnp.asarray(g, jnp.float32), state, params)
    params = optax.apply_updates(params, updates)
  buf = snapshot_buffer(state)
  assert buf.finite.tolist() == [True, False, False]  # NaN stays in the parameters after step 1
  assert np.isnan(np.asarray(snapshots(state))).any()
  np.testing.assert_array_equal(np.asarray(snapshots(state, finite_only=True)), [[1.0, 1.0]])
  apply_fn = lambda w, x: x * w[None, :]
  mean = ensemble_predict(apply_fn, buf.members, jnp.ones((1, 2)), mask=buf.valid & buf.finite)
  np.testing.assert_allclose(np.asarray(mean), [[0.5, 0.5]], rtol=1e-6)
  assert np.isnan(np.asarray(ensemble_predict(apply_fn, buf.members, jnp.ones((1, 2))))).all()


def test_save_restore_continues_identically():
  sched = schedules.sgdr_schedule(0.1, 3, 2.0)
  opt = optax.chain(momentum(sched, 0.5), snapshot_ensemble(sched, 2, num_steps=32))
  run = jax.jit(lambda w, s, n: train_loop(lambda w, t: _loss(w, t)[0], opt, w, s, TARGETS, num_steps=n,
                                           learning_rate=0.0), static_argnums=2)
  x0 = jnp.zeros(DIM, jnp.float32)
  whole = run(x0, opt.init(x0), 32)
  half = run(x0, opt.init(x0), 16)  # 16 steps = one pass over TARGETS, so the second half sees the same batches
  restored = flax.serialization.from_bytes(opt.init(x0), flax.serialization.to_bytes(half.opt_state))
  chex.assert_trees_all_equal(restored, half.opt_state)
  rest = run(half.params, restored, 16)
  chex.assert_trees_all_close((rest.params, rest.opt_state), (whole.params, whole.opt_state), rtol=1e-6, atol=0)
  assert snapshot_steps(rest.opt_state).tolist() == snapshot_steps(whole.opt_state).tolist() == [8, 20]


# ----- predictions and members ------------------------------------------------------------------------


def _linear_members():
  rng = np.random.default_rng(5)
  members = {"w": rng.normal(size=(4, 6, 3)).astype(np.float32), "b": rng.normal(size=(4, 3)).astype(np.float32)}
  x = rng.normal(size=(7, 6)).astype(np.float32)
  apply_fn = lambda p, x: x @ p["w"] + p["b"][None, :]
  logits = np.stack([x.astype(np.float64) @ members["w"][m] + members["b"][m] for m in range(4)])
  return apply_fn, members, x, logits


@pytest.mark.parametrize("method", ["mean_probs", "mean_logits"])
def test_ensemble_predict_is_the_manual_average(method):
  apply_fn, members, x, logits = _linear_members()
  got = jax.jit(ensemble_predict, static_argnums=(0, 3))(apply_fn, members, x, method)
  assert got.shape == (7, 3)
  np.testing.assert_allclose(np.asarray(got), ref.ensemble_average(logits, method), rtol=2e-5, atol=2e-6)
  mask = np.array([True, False, True, False])
  got = ensemble_predict(apply_fn, members, x, method, mask=jnp.asarray(mask))
  np.testing.assert_allclose(np.asarray(got), ref.ensemble_average(logits[mask], method), rtol=2e-5, atol=2e-6)
  if method == "mean_probs":
    np.testing.assert_allclose(np.asarray(got).sum(-1), 1.0, rtol=1e-5)


def test_ensemble_of_snapshots_of_a_flax_model():
  import flax.linen as nn
  model = nn.Dense(3)
  x = jnp.ones((2, 4))
  params = model.init(jax.random.key(0), x)["params"]
  opt = optax.chain(optax.sgd(0.1), snapshot_ensemble(2, 3))
  state = opt.init(params)
  for _ in range(6):
    grads = jax.grad(lambda p: jnp.sum(model.apply({"params": p}, x) ** 2))(params)
    updates, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  members = snapshots(state)
  apply_fn = lambda p, x: model.apply({"params": p}, x)
  want = np.mean([np.asarray(apply_fn(jax.tree.map(lambda m: m[i], members), x)) for i in range(3)], axis=0)
  np.testing.assert_allclose(np.asarray(ensemble_predict(apply_fn, members, x, "mean_logits")), want, rtol=1e-5,
                             atol=1e-6)


def test_top_k_members_and_stacking():
  scores = np.array([0.3, np.nan, 0.1, 0.2, np.inf, 0.1], np.float32)
  members = {"lr": np.arange(6, dtype=np.float32), "p": np.arange(12, dtype=np.float32).reshape(6, 2)}
  best = jax.jit(top_k_members, static_argnums=2)(members, scores, 3)
  assert best.indices.tolist() == [2, 5, 3]  # ties in input order
  np.testing.assert_array_equal(np.asarray(best.members["p"]), members["p"][[2, 5, 3]])
  worst_first = top_k_members(members, scores, 2, minimize=False)
  assert worst_first.indices.tolist() == [0, 3]  # non-finite scores are never "best"
  assert top_k_members(members, scores, 6).indices.tolist()[-2:] in ([1, 4], [4, 1])
  stacked = stack_members([{"a": jnp.zeros(2)}, {"a": jnp.ones(2)}, {"a": jnp.full(2, 2.0)}])
  assert stacked["a"].tolist() == [[0, 0], [1, 1], [2, 2]]


# ----- bad inputs -------------------------------------------------------------------------------------


def _raises(name, fn, *args, **kwargs):
  with pytest.raises(ValueError, match=rf"\({name}=\.\.\.") as info:
    fn(*args, **kwargs)
  return info


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "3", None, INT32_MAX + 1])
def test_snapshot_ensemble_rejects_bad_periods_and_sizes(value):
  _raises("period_or_schedule", snapshot_ensemble, value, 2)
  _raises("num_snapshots", snapshot_ensemble, 3, value)


@pytest.mark.parametrize("steps", [[3, 2], [], [1, 1], [-1, 2], [0, INT32_MAX], [[1, 2]], [0.5]])
def test_snapshot_ensemble_rejects_bad_steps(steps):
  _raises("period_or_schedule", snapshot_ensemble, steps, 2)


def test_bad_inputs_name_the_argument():
  sgdr = schedules.sgdr_schedule(0.1, 5)
  _raises("num_steps", snapshot_ensemble, sgdr, 2)
  _raises("num_steps", snapshot_ensemble, sgdr, 2, num_steps=0)
  _raises("period_or_schedule", snapshot_ensemble, schedules.constant_schedule(0.1), 2, num_steps=50)
  _raises("num_steps", cycle_ends, sgdr, 0)
  _raises("num_steps", cycle_ends, sgdr, 2**24 + 1)
  _raises("num_steps", cycle_ends, 1, INT32_MAX)
  _raises("rtol", cycle_ends, sgdr, 10, rtol=0.0)
  _raises("rtol", cycle_ends, sgdr, 10, rtol=1.0)
  _raises("schedule_or_period_or_steps", cycle_ends, [3, 12], 10)
  _raises("schedule_or_period_or_steps", cycle_ends, lambda t: jnp.full(jnp.shape(t), jnp.nan), 10)
  opt = snapshot_ensemble(2, 2)
  _raises("params", opt.update, jnp.ones(2), opt.init(jnp.ones(2)))
  _raises("opt_state", snapshots, optax.sgd(0.1).init(jnp.ones(2)))
  _raises("finite_only", snapshots, opt.init(jnp.ones(2)), finite_only="yes")
  apply_fn, members, x, _ = _linear_members()
  _raises("method", ensemble_predict, apply_fn, members, x, "mean")
  _raises("apply_fn", ensemble_predict, None, members, x)
  _raises("members", ensemble_predict, apply_fn, {"w": members["w"], "b": members["b"][:3]}, x)
  _raises("members", ensemble_predict, apply_fn, {}, x)
  _raises("mask", ensemble_predict, apply_fn, members, x, mask=jnp.ones(3, bool))
  _raises("mask", ensemble_predict, apply_fn, members, x, mask=jnp.ones(4))
  _raises("k", top_k_members, members, jnp.zeros(4), 5)
  _raises("k", top_k_members, members, jnp.zeros(4), 0)
  _raises("scores", top_k_members, members, jnp.zeros(3), 2)
  _raises("minimize", top_k_members, members, jnp.zeros(4), 2, minimize=1)
  _raises("trees", stack_members, [])
  _raises("trees", stack_members, [{"a": 1}, {"b": 1}])
