"""Find the learning rate with the range test, then train with one-cycle at that peak (Smith 2018's recipe).

The whole training run is one ``lax.scan`` over steps (``lrtools.train_loop``, the loop the range test
shares, recording the loss and learning rate of every step); the schedule and the cyclical momentum are
lrtools schedules fed to the CS231n momentum optimizer (``lrtools.momentum``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import lrtools as lrt
from lrtools import models


def accuracy(model, params, x, y) -> float:
  logits = model.apply({"params": params}, jnp.asarray(x))
  return float(jnp.mean(jnp.argmax(logits, -1) == jnp.asarray(y)))


def train_and_evaluate(config) -> dict:
  """Runs the range test, then trains; returns the suggestion, the curve's size and the accuracies."""
  ds = lrt.data.load_digits(seed=config.seed, flat=config.model == "mlp")
  model = models.classifier(config.model, ds.num_classes)
  loss = models.cross_entropy_loss(model)
  params = models.init_params(model, jax.random.key(config.seed), ds.x_train)

  # 1. Find: the range test on fresh parameters, with the optimizer we will train with.
  finder_batches = lrt.data.batches(ds.x_train, ds.y_train, config.batch_size, config.finder_steps, config.seed)
  result = lrt.lr_range_test(loss, params, lambda lr: lrt.momentum(lr, config.momentum), finder_batches,
                             start_lr=config.start_lr, end_lr=config.end_lr, num_steps=config.finder_steps)
  peak = result.suggest(config.suggestion)
  if not np.isfinite(peak):
    raise RuntimeError(f"the range test gave no {config.suggestion!r} suggestion; widen start_lr/end_lr")

  # 2. Train: one-cycle LR with momentum cycling the other way, the whole run in one scan.
  steps_per_epoch = len(ds.x_train) // config.batch_size
  total = config.num_epochs * steps_per_epoch
  opt = lrt.momentum(lrt.one_cycle_schedule(total, peak, pct_start=config.pct_start),
                     lrt.one_cycle_momentum_schedule(total, 0.85, 0.95, pct_start=config.pct_start))
  batches = lrt.data.batches(ds.x_train, ds.y_train, config.batch_size, total, config.seed + 1)

  @jax.jit
  def run(params, batches):
    return lrt.train_loop(loss, opt, params, opt.init(params), batches)

  params, state, records = run(params, batches)
  return {
      "suggested_lr": peak,
      "finder_steps_run": result.num_steps_run,
      "finder_stop_reason": result.stop_reason,
      "final_train_loss": float(jnp.mean(records.loss[-steps_per_epoch:])),
      "peak_recorded_lr": float(jnp.max(records.learning_rate)),
      "last_hyperparams": {k: float(v) for k, v in lrt.current_hyperparams(state).items()},
      "train_accuracy": accuracy(model, params, ds.x_train, ds.y_train),
      "valid_accuracy": accuracy(model, params, ds.x_valid, ds.y_valid),
  }
