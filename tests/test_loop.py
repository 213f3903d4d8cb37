"""The shared training loop against a plain Python loop, under jit and vmap, without recompiling."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lrtools as lrt
from lrtools._hyperparams import find_states
from lrtools._loop import first_non_finite, train_loop, train_step

RNG = np.random.default_rng(1)
D, B, SIZE, STEPS = 4, 8, 6, 15  # 6 stacked batches, cycled over 15 steps
XS = RNG.normal(size=(SIZE, B, D))
YS = XS @ RNG.normal(size=D) + 0.3


def dtype():
  return jnp.result_type(float)  # float32, float64 under x64


def data():
  return {"x": jnp.asarray(XS, dtype()), "y": jnp.asarray(YS, dtype())}


def params0():
  return {"w": jnp.zeros(D, dtype()), "b": jnp.zeros((), dtype())}


def mse(params, batch):
  return jnp.mean((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2)


def mse_aux(params, batch):
  residual = batch["x"] @ params["w"] + params["b"] - batch["y"]
  return jnp.mean(residual ** 2), {"max_residual": jnp.max(jnp.abs(residual))}


def tol(num_steps=STEPS):
  """The same operations in the same order on both sides, but the loop is compiled as one program and the
  Python loop op by op: XLA may fuse (contract a multiply-add, keep a value in a register) and round each
  operation differently, by half an ulp. A few eps per step, accumulated over the steps of a contracting
  problem: ``8·eps·num_steps``."""
  return dict(rtol=8 * float(jnp.finfo(dtype()).eps) * num_steps, atol=8 * float(jnp.finfo(dtype()).eps) * num_steps)


def python_loop(loss_fn, opt, params, batches, has_aux=False):
  """The textbook loop, one step at a time: value_and_grad, update, apply."""
  state, losses, auxes = opt.init(params), [], []
  for batch in batches:
    value, grads = jax.value_and_grad(loss_fn, has_aux=has_aux)(params, batch)
    loss, aux = value if has_aux else (value, None)
    updates, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    losses.append(loss)
    auxes.append(aux)
  return params, state, jnp.stack(losses), auxes


def cycled(n=STEPS):
  return [jax.tree_util.tree_map(lambda x: x[t % SIZE], data()) for t in range(n)]


def test_matches_a_plain_python_loop_on_cycled_stacked_batches():
  schedule = lrt.cosine_decay_schedule(0.05, STEPS)
  opt = lrt.momentum(schedule, 0.9)
  out = jax.jit(lambda p, b: train_loop(mse, opt, p, opt.init(p), b, num_steps=STEPS))(params0(), data())
  params, state, losses, _ = python_loop(mse, opt, params0(), cycled())
  chex.assert_shape((out.records.loss, out.records.learning_rate), (STEPS,))
  chex.assert_type(out.records.loss, dtype())
  chex.assert_trees_all_close(out.records.loss, losses, **tol())
  chex.assert_trees_all_close(out.params, params, **tol())
  chex.assert_trees_all_close(out.opt_state, state, **tol())
  # The rate each step used, read back from the optimizer state: schedule(t), to a few ulps of the peak 0.05
  # (the cosine evaluated in another program may round differently; 1 + cos cancels near the end, so the
  # error is absolute, not relative to the small rates there).
  eps = float(jnp.finfo(dtype()).eps)
  chex.assert_trees_all_close(out.records.learning_rate, jax.vmap(schedule)(jnp.arange(STEPS)),
                              rtol=8 * eps, atol=8 * eps * 0.05)
  assert out.records.aux is None


def test_function_batches_and_aux_match_a_plain_python_loop():
  def make_batch(key, step):
    x = jax.random.normal(key, (B, D), dtype())
    return {"x": x, "y": x @ jnp.arange(D, dtype=dtype()) + step.astype(dtype()) / STEPS}

  key = jax.random.key(7)
  opt = lrt.adam(1e-2)
  out = jax.jit(lambda p, k: train_loop(mse_aux, opt, p, opt.init(p), make_batch, k, num_steps=STEPS,
                                        has_aux=True))(params0(), key)
  batches = [make_batch(jax.random.fold_in(key, t), jnp.int32(t)) for t in range(STEPS)]
  params, _, losses, auxes = python_loop(mse_aux, opt, params0(), batches, has_aux=True)
  chex.assert_trees_all_close(out.records.loss, losses, **tol())
  chex.assert_trees_all_close(out.records.aux, jax.tree_util.tree_map(lambda *a: jnp.stack(a), *auxes), **tol())
  chex.assert_trees_all_close(out.params, params, **tol())
  chex.assert_trees_all_equal(out.records.learning_rate, jnp.full(STEPS, 1e-2, dtype()))


@pytest.mark.parametrize("make,learning_rate,want", [
    (lambda: optax.inject_hyperparams(optax.sgd)(learning_rate=0.1), None, lambda t: 0.1),
    (lambda: optax.sgd(0.1), 0.1, lambda t: 0.1),
    (lambda: optax.sgd(lrt.exponential_decay_schedule(0.1, 0.5)), lrt.exponential_decay_schedule(0.1, 0.5),
     lambda t: 0.1 * np.exp(-0.5 * t)),
    (lambda: optax.chain(optax.clip_by_global_norm(1.0), lrt.sgd(lrt.exponential_decay_schedule(0.1, 0.5))), None,
     lambda t: 0.1 * np.exp(-0.5 * t)),
])
def test_the_learning_rate_is_read_from_the_state_or_given(make, learning_rate, want):
  opt = make()
  out = train_loop(mse, opt, params0(), opt.init(params0()), data(), learning_rate=learning_rate)
  chex.assert_trees_all_close(out.records.learning_rate, np.array([want(t) for t in range(SIZE)]),
                              rtol=4 * float(jnp.finfo(dtype()).eps), atol=0.0)


def test_a_learning_rate_that_cannot_be_read_raises():
  opt = optax.sgd(0.1)  # records nothing in its state
  with pytest.raises(ValueError, match=r"`train_loop\(learning_rate=\.\.\.\)` is needed.*no learning_rate"):
    train_loop(mse, opt, params0(), opt.init(params0()), data())
  two = optax.partition({"a": lrt.sgd(0.1), "b": lrt.sgd(0.01)}, {"w": "a", "b": "b"})
  with pytest.raises(ValueError, match=r"several: a/learning_rate, b/learning_rate"):
    train_loop(mse, two, params0(), two.init(params0()), data())


def test_vmap_over_learning_rates_equals_separate_runs_and_compiles_once():
  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(lr, params):
    opt = lrt.momentum(lr, 0.9)
    return train_loop(mse, opt, params, opt.init(params), data(), num_steps=STEPS)

  lrs = jnp.asarray([1e-3, 1e-2, 5e-2], dtype())
  together = jax.vmap(run, in_axes=(0, None))(lrs, params0())
  chex.assert_shape(together.records.loss, (3, STEPS))
  for i, lr in enumerate(lrs):  # the same program for every rate and starting point: no retrace
    alone = run(lr, params0())
    chex.assert_trees_all_close(jax.tree_util.tree_map(lambda x: x[i], together), alone, **tol())
    assert float(alone.records.learning_rate[0]) == float(lr)
  run(lrs[0], jax.tree_util.tree_map(lambda x: x + 1, params0()))


def test_non_finite_losses_are_recorded_not_masked():
  xs = XS.copy()
  xs[3, 0, 0] = np.nan  # batch 3 poisons the parameters from step 3 on
  opt = lrt.sgd(0.01)
  batches = {"x": jnp.asarray(xs, dtype()), "y": jnp.asarray(YS, dtype())}
  out = train_loop(mse, opt, params0(), opt.init(params0()), batches, num_steps=STEPS)
  losses = np.asarray(out.records.loss)
  assert np.all(np.isfinite(losses[:3])) and np.all(np.isnan(losses[3:]))
  assert int(first_non_finite(out.records.loss)) == 3
  chex.assert_tree_all_finite(out.records.loss[:3])
  rows = jnp.stack([out.records.loss, jnp.ones(STEPS, dtype())])
  assert first_non_finite(rows).tolist() == [3, -1]


def test_train_loop_agrees_with_the_range_test_step_for_step():
  # Both run train_step: the range test with a rate per step, the loop with the same rates as a schedule.
  lrs = lrt.finder.sweep_lrs(1e-4, 1e-1, STEPS)
  res = lrt.lr_range_test(mse, params0(), lambda lr: optax.sgd(lr, momentum=0.9), data(), start_lr=1e-4,
                          end_lr=1e-1, num_steps=STEPS, smoothing=0.0, diverge_threshold=float("inf"))
  rates = jnp.asarray(lrs, dtype())
  opt = optax.sgd(lambda t: rates[t], momentum=0.9)
  out = train_loop(mse, opt, params0(), opt.init(params0()), data(), num_steps=STEPS, learning_rate=lambda t: rates[t])
  assert res.stop_reason == "completed"
  chex.assert_trees_all_close(res.losses, out.records.loss, **tol())
  chex.assert_trees_all_close(out.records.learning_rate, rates, rtol=0.0, atol=0.0)


def test_train_step_is_one_step_of_the_loop():
  opt = lrt.sgd(0.1)
  batch = jax.tree_util.tree_map(lambda x: x[0], data())
  params, state, record = train_step(mse, opt, params0(), opt.init(params0()), batch, jnp.int32(0))
  out = train_loop(mse, opt, params0(), opt.init(params0()), data(), num_steps=1)
  chex.assert_trees_all_close((params, state, record.loss), (out.params, out.opt_state, out.records.loss[0]),
                              **tol(1))


@pytest.mark.parametrize("kwargs,match", [
    (dict(batches=lambda k, t: None), r"`train_loop\(num_steps=\.\.\.\)` is needed"),
    (dict(batches=lambda k, t: None, num_steps=3), r"`train_loop\(key=\.\.\.\)` is needed"),
    (dict(batches={"x": np.ones((3, 2)), "y": np.ones(4)}), r"`train_loop\(batches=\.\.\.\)`"),
    (dict(num_steps=0), r"`train_loop\(num_steps=\.\.\.\)`"),
    (dict(num_steps=2**31), r"`train_loop\(num_steps=\.\.\.\)`"),
    (dict(num_steps=True), r"`train_loop\(num_steps=\.\.\.\)`"),
    (dict(has_aux="yes"), r"`train_loop\(has_aux=\.\.\.\)`"),
])
def test_bad_arguments_raise_naming_them(kwargs, match):
  opt = lrt.sgd(0.1)
  args = {"batches": data(), **kwargs}
  with pytest.raises(ValueError, match=match):
    train_loop(mse, opt, params0(), opt.init(params0()), args.pop("batches"), **args)


@given(st.one_of(st.booleans(), st.integers(2**31, 2**64), st.integers(-3, 0),
                 st.floats(0.5, 9.5).filter(lambda v: v % 1), st.text(max_size=2), st.just([3])))
def test_generated_bad_step_counts_raise(num_steps):
  opt = lrt.sgd(0.1)
  with pytest.raises(ValueError, match=r"`train_loop\(num_steps=\.\.\.\)`"):
    train_loop(mse, opt, params0(), opt.init(params0()), data(), num_steps=num_steps)


def test_numpy_batches_as_lrtools_data_returns_them():
  """``lrtools.data.batches`` gives NumPy arrays: a traced step must index them (it raised before)."""
  xs = np.linspace(-1.0, 1.0, 24, dtype=np.float32).reshape(3, 8)
  opt = lrt.sgd(0.1)
  out = jax.jit(lambda w: lrt.train_loop(lambda p, x: jnp.mean((p * x - 3 * x) ** 2), opt, w, opt.init(w), xs,
                                         num_steps=5))(jnp.zeros((), jnp.float32))
  assert out.records.loss.shape == (5,) and np.all(np.isfinite(np.asarray(out.records.loss)))


def test_reduce_on_plateau_in_the_chain_gets_the_loss_as_value():
  # Each step's loss reaches the plateau transform as `value`, as a hand-written loop passes it.
  opt = optax.chain(lrt.sgd(0.05), lrt.reduce_on_plateau(factor=0.5, patience=2, cooldown=0))
  out = jax.jit(lambda p, s: train_loop(mse, opt, p, s, data(), num_steps=STEPS, learning_rate=0.05))(
      params0(), opt.init(params0()))
  params, state = params0(), opt.init(params0())
  for t in range(STEPS):
    batch = {k: v[t % SIZE] for k, v in data().items()}
    loss, grads = jax.value_and_grad(mse)(params, batch)
    updates, state = opt.update(grads, state, params, value=loss)
    params = optax.apply_updates(params, updates)
  chex.assert_trees_all_close(out.params, params, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(out.opt_state, state, rtol=1e-5, atol=1e-6)
  assert float(lrt.transforms.plateau_scale(state)) < 1.0  # the stacked batches' loss does plateau


def velocity(opt_state):
  (_, found), = find_states(opt_state, lrt.MomentumState)
  return found.velocity


def test_record_stacks_what_it_reads_from_the_state_after_every_step():
  opt = lrt.momentum(lrt.cosine_decay_schedule(0.05, STEPS), 0.9)
  out = jax.jit(lambda p: train_loop(mse, opt, p, opt.init(p), data(), num_steps=STEPS,
                                     record=lambda s: {"lr": lrt.current_hyperparams(s)["learning_rate"],
                                                       "velocity": velocity(s)}))(params0())
  chex.assert_trees_all_close(out.records.state["lr"], out.records.learning_rate, rtol=0, atol=0)
  _, state, _, _ = python_loop(mse, opt, params0(), cycled())
  chex.assert_trees_all_close(jax.tree_util.tree_map(lambda v: v[-1], out.records.state["velocity"]),
                              velocity(state), **tol())
  with pytest.raises(ValueError, match="record"):
    train_loop(mse, opt, params0(), opt.init(params0()), data(), record="velocity")


def test_epochs_with_first_step_equal_one_long_loop():
  # Three calls of 5 steps from first_step 0, 5, 10 (traced: one compile) are the 15-step run: the same
  # batches (entry t mod size), the same recorded schedule values, the same parameters.
  schedule = lrt.cosine_decay_schedule(0.05, STEPS)
  opt = optax.chain(optax.scale_by_schedule(lambda t: 1.0), lrt.momentum(schedule, 0.9))
  whole = train_loop(mse, opt, params0(), opt.init(params0()), data(), num_steps=STEPS, learning_rate=schedule)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def epoch(params, state, first):
    return train_loop(mse, opt, params, state, data(), num_steps=5, learning_rate=schedule, first_step=first)

  params, state, lrs = params0(), opt.init(params0()), []
  for first in (0, 5, 10):
    params, state, records = epoch(params, state, jnp.int32(first))
    lrs.append(records.learning_rate)
  chex.assert_trees_all_close(jnp.concatenate(lrs), whole.records.learning_rate, rtol=0, atol=0)
  chex.assert_trees_all_close(params, whole.params, **tol())
  with pytest.raises(ValueError, match="first_step"):
    train_loop(mse, opt, params0(), opt.init(params0()), data(), num_steps=5, first_step=2**31 - 3)
