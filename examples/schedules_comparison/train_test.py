"""The example end to end on a tiny budget (the MLP, 2 epochs, 2 seeds: two compiled programs), the models'
shapes, MNIST-1D's generator and the configuration checks."""

import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

sys.path.insert(0, str(Path(__file__).parent))

import models  # noqa: E402
import train  # noqa: E402
from configs.default import SCHEDULES, get_config  # noqa: E402


def run_every_schedule(config):
  """``train_and_evaluate`` on every schedule, in two calls (one per compiled program) merged into one output.

  optax's schedule-free AdamW is not strict-promotion clean (its Adam bias correction raises a Python float
  to an int32 power, as tests/test_optimizers.py notes), so it runs under standard promotion; the strict leg
  checks lrtools and this example's code on the scheduled runs.
  """
  scheduled = ",".join(n for n in SCHEDULES if n != "schedule_free")
  out = train.train_and_evaluate(dataclasses.replace(config, schedules=scheduled))
  with jax.numpy_dtype_promotion("standard"):
    free = train.train_and_evaluate(dataclasses.replace(config, schedules="schedule_free"))
  assert free["budget"] == out["budget"]
  out["rows"] += free["rows"]
  out["curves"].update(free["curves"])
  out["compile_seconds"].update(free["compile_seconds"])
  return out


def test_every_schedule_trains_and_records_its_rate():
  config = get_config(model="mlp", num_epochs=2, num_seeds=2)
  out = run_every_schedule(config)
  rows = {r["schedule"]: r for r in out["rows"]}
  assert list(rows) == list(SCHEDULES)
  for name, row in rows.items():
    assert row["diverged"] == 0, row
    assert np.isfinite(row["train_loss"]).all(), row
    assert row["valid_acc"][0] > 0.75, row  # chance is 0.1; two epochs of the MLP reach ~0.9
  assert rows["constant"]["valid_acc"][0] > 0.9, rows["constant"]
  assert any(row["valid_acc"][1] > 0 for row in rows.values())  # seeds differ: the std is measured
  # The rate each step used, read from the optimizer state across epoch boundaries, is the schedule at the
  # GLOBAL step (train_loop restarts its own step count every epoch; the optimizer's count must not).
  budget = train.Budget(**{k: out["budget"][k] for k in ("steps_per_epoch", "warmup_steps")}, num_epochs=2)
  steps = jnp.arange(budget.total_steps)
  # To a few float32 ulps of the peak: the schedule compiled inside the training program may round an
  # operation differently from this one (fused multiply-adds), and near the end of the cosine 1 + cos(πt/T)
  # cancels, so the error there is absolute in the peak, not relative to the small rate (as in test_loop.py).
  eps = float(np.finfo(np.float32).eps)  # the runs record float32 rates in every leg
  for name, schedule in train.make_schedules(jnp.float32(config.peak_lr), budget).items():
    np.testing.assert_allclose(out["curves"][name]["learning_rate"], schedule(steps), rtol=8 * eps,
                               atol=8 * eps * config.peak_lr, err_msg=name)
  lr = np.asarray(out["curves"]["constant"]["learning_rate"])
  np.testing.assert_allclose(lr, config.peak_lr, rtol=1e-7)
  wsd = np.asarray(out["curves"]["wsd_1_sqrt"]["learning_rate"])
  assert wsd[0] == 0 and wsd.max() == np.float32(config.peak_lr) and wsd[-1] < 0.1 * config.peak_lr
  free = np.asarray(out["curves"]["schedule_free"]["learning_rate"])  # linear warmup, then constant
  free_tol = dict(rtol=8 * eps, atol=8 * eps * config.schedule_free_lr)
  np.testing.assert_allclose(free[budget.warmup_steps:], config.schedule_free_lr, **free_tol)
  np.testing.assert_allclose(free[:budget.warmup_steps],
                             config.schedule_free_lr * np.arange(budget.warmup_steps) / budget.warmup_steps,
                             **free_tol)
  assert len(out["compile_seconds"]) == 2  # one program for the eleven schedules, one for schedule-free


@pytest.mark.parametrize("shape, features", [((8, 8, 1), 16 * 2 * 2), ((28, 28, 1), 16 * 5 * 5)])
def test_lenet_shapes(shape, features):
  model = nnx.eval_shape(lambda: models.LeNet(shape, 10, rngs=nnx.Rngs(0)))
  assert model.fc1.in_features == features
  make = models.model_factory("lenet", shape, 10)
  forward = models.logits_fn(models.split_model(make))
  # Shapes only (compiling a conv net costs seconds; the full run in the README trains this model).
  logits = jax.eval_shape(lambda key, x: forward(models.init_params(make, key), x), jax.random.key(0),
                          jnp.ones((3, *shape)))
  assert logits.shape == (3, 10)


def test_mnist1d_models_match_the_published_sizes():
  # greydanus/mnist1d: ConvBase has 5 210 parameters (125 features before the head), MLPBase 15 210.
  def count(name):
    make = models.model_factory(name, (40,), 10)
    params = jax.eval_shape(lambda key: models.init_params(make, key), jax.random.key(0))  # shapes only
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))
  assert count("cnn") == 5210
  assert count("mlp") == 15210
  assert count("logistic") == 410


def test_mnist1d_generates_offline():
  pytest.importorskip("mnist1d")
  import input_pipeline
  ds = input_pipeline.load_mnist1d()
  assert ds.x_train.shape == (4000, 40) and ds.x_valid.shape == (1000, 40)
  assert ds.x_train.dtype == np.float32 and sorted(np.unique(ds.y_train).tolist()) == list(range(10))


@pytest.mark.parametrize("override, name", [
    (dict(schedules="cosine,bogus"), "config.schedules"), (dict(dataset="mnist"), "config.dataset"),
    (dict(num_seeds=1), "config.num_seeds"), (dict(peak_lr=0.0), "config.peak_lr"),
    (dict(dataset="fashion_mnist"), "data_dir"), (dict(batch_size=5000), "config.batch_size")])
def test_bad_config_raises_naming_it(override, name):
  with pytest.raises(ValueError, match=name):
    train.train_and_evaluate(get_config(**override))
