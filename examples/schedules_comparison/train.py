"""Learning-rate schedules compared on one budget, every schedule trained on ``num_seeds`` seeds at once.

The D2L schedule experiment (D2L 12.11) with the schedules lrtools adds. Each run is one compiled program:
``jax.vmap`` over seeds (initialisation keys and data-order keys) of ``lax.scan`` over epochs, each epoch one
``lrtools.train_loop`` (itself a ``lax.scan`` over steps) followed by an evaluation. The schedules of the
momentum-SGD runs are built from the traced peak rate and selected by a traced index, so **one** compiled
program serves all of them (and a second one schedule-free AdamW); only the first call of each compiles.
Every schedule sees the same initialisations and data orders (seed ``k`` is the same in every row), so the
rows differ only by the schedule.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrtools as lrt
from lrtools._typing import check_integer, check_one_of, check_positive

import input_pipeline
import models
from configs.default import SCHEDULES

_CALL = "train_and_evaluate"
Schedule = Callable[[jax.Array], jax.Array]


class Budget(NamedTuple):
  """The shared training budget, in steps."""
  steps_per_epoch: int
  num_epochs: int
  warmup_steps: int

  @property
  def total_steps(self) -> int:
    return self.steps_per_epoch * self.num_epochs


class Recipe(NamedTuple):
  """How one run trains: the optimizer, which parameters to evaluate, and the rate to record."""
  optimizer: optax.GradientTransformation
  eval_params: Callable[[Any, Any], Any]  # (opt_state, params) -> the parameters to evaluate
  learning_rate: Schedule | None  # the rate at global step t; None reads it from the optimizer state


def make_schedules(peak: jax.Array, budget: Budget) -> dict[str, Schedule]:
  """Every scheduled (non schedule-free) shape, all peaking at ``peak`` (a tracer is fine) over ``budget``.

  ``inv_sqrt`` is D2L's square-root scheduler per epoch, smoothed per step: :math:`\\eta/\\sqrt{1 + t/E}` with
  ``E`` steps per epoch, written as the square root of ``inverse_time_decay_schedule(1, 1/E)`` = 1/(1 + t/E).
  """
  total, epoch, warmup = budget.total_steps, budget.steps_per_epoch, budget.warmup_steps
  inverse_time = lrt.inverse_time_decay_schedule(1.0, 1.0 / epoch)
  return {
      "constant": lrt.constant_schedule(peak),
      "step": lrt.step_decay_schedule(peak, step_size=max(1, total // 5), factor=0.5),  # halve 4 times
      "multistep": lrt.multistep_schedule(peak, [total // 2, 3 * total // 4], factor=0.1),  # D2L multi-factor
      "inv_sqrt": lambda t: peak * jnp.sqrt(inverse_time(t)),
      "cosine": lrt.cosine_decay_schedule(peak, total),
      "warmup_cosine": lrt.warmup_schedule(lrt.cosine_decay_schedule(peak, total - warmup), warmup),
      "cyclical": lrt.cyclical_schedule(peak / 10, peak, step_size_up=max(1, total // 10)),  # 5 cycles
      "one_cycle": lrt.one_cycle_schedule(total, peak),
      "sgdr": lrt.sgdr_schedule(peak, -(-total // 7), cycle_mult=2),  # cycles T0, 2T0, 4T0 cover the run
      "wsd_linear": lrt.wsd_schedule(peak, total, warmup, decay_shape="linear"),  # 20% cooldown
      "wsd_1_sqrt": lrt.wsd_schedule(peak, total, warmup, decay_shape="1-sqrt"),
  }


def select_schedule(schedules: dict[str, Schedule], index: jax.Array) -> Schedule:
  """The schedule at (traced) position ``index``: all are evaluated (a few scalars) and one is picked, so
  changing ``index`` needs no new compilation."""
  fns = tuple(schedules.values())
  return lambda t: jnp.stack([jnp.asarray(f(t), jnp.float32) for f in fns])[index]


def scheduled_recipe(config, budget: Budget, hparams: dict[str, jax.Array]) -> Recipe:
  """Momentum SGD (or Adam) on the schedule ``hparams["index"]`` peaking at ``hparams["peak_lr"]``."""
  schedule = select_schedule(make_schedules(hparams["peak_lr"], budget), hparams["index"])
  if config.optimizer == "momentum":
    optimizer = lrt.momentum(schedule, config.momentum)
  else:
    optimizer = lrt.adam(schedule)
  return Recipe(optimizer, lambda opt_state, params: params, None)


def schedule_free_recipe(config, budget: Budget, hparams: dict[str, jax.Array]) -> Recipe:
  """optax's schedule-free AdamW at ``hparams["peak_lr"]`` after the shared linear warmup, evaluated at its
  averaged parameters (``schedule_free_eval_params``), not at the interpolated point it takes gradients at."""
  lr = hparams["peak_lr"]
  optimizer = optax.contrib.schedule_free_adamw(lr, warmup_steps=budget.warmup_steps)
  # The rate it uses, as optax builds it: its state does not expose it to lrtools.current_hyperparams.
  record = optax.warmup_constant_schedule(0.0, lr, budget.warmup_steps)
  return Recipe(optimizer, optax.contrib.schedule_free_eval_params, record)


def cross_entropy(logits_fn: Callable) -> Callable:
  """``loss(params, batch)``: the mean softmax cross-entropy on ``{"x", "y"}``."""
  def loss(params, batch):
    return optax.softmax_cross_entropy_with_integer_labels(logits_fn(params, batch["x"]), batch["y"]).mean()
  return loss


def evaluate(logits_fn: Callable, params: Any, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mean cross-entropy and accuracy on ``(x, y)``, in chunks of 1000 examples (bounded memory under vmap).

  A NaN parameter gives a NaN loss (and argmax-0 predictions): it is reported, never hidden.
  """
  if x.shape[0] <= 1000:
    logits = logits_fn(params, x)
  else:
    logits = jax.lax.map(lambda xi: logits_fn(params, xi[None])[0], x, batch_size=1000)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  return loss, jnp.mean(jnp.argmax(logits, -1) == y)


def epoch_batches(data: dict[str, jax.Array], order: jax.Array) -> Callable:
  """``(key, step) -> batch`` over one epoch: row ``step`` of the permutation ``order`` (steps, batch)."""
  return lambda key, step: {"x": data["x_train"][order[step]], "y": data["y_train"][order[step]]}


def train_one_seed(recipe_fn: Callable, make_model: Callable, logits_fn: Callable, budget: Budget,
                   batch_size: int, data: dict[str, jax.Array], hparams: dict[str, jax.Array],
                   init_key: jax.Array, order_key: jax.Array) -> dict[str, jax.Array]:
  """One seed's run: ``num_epochs`` × (a fresh permutation, ``train_loop`` over it, a test evaluation).

  Returns per-step ``loss`` and ``learning_rate`` ``(epochs, steps_per_epoch)``, per-epoch ``valid_loss`` and
  ``valid_acc`` ``(epochs,)`` at the evaluated parameters, and the final ``train_loss``/``train_acc`` on the
  (first ``eval_examples``) training examples. The per-epoch train curve is the mean of the step losses
  (free, as D2L plots it); a full train-set evaluation every epoch would cost a third of the training.
  """
  recipe = recipe_fn(hparams)
  loss_fn = cross_entropy(logits_fn)
  params = models.init_params(make_model, init_key)
  num_train, steps = data["x_train"].shape[0], budget.steps_per_epoch

  def epoch(carry, e):
    params, opt_state = carry
    order = jax.random.permutation(jax.random.fold_in(order_key, e), num_train)[:steps * batch_size]
    # train_loop counts steps from 0 in every call; the optimizer state counts globally (what schedules see).
    record_lr = None if recipe.learning_rate is None else (lambda t: recipe.learning_rate(t + e * steps))
    params, opt_state, records = lrt.train_loop(
        loss_fn, recipe.optimizer, params, opt_state, epoch_batches(data, order.reshape(steps, batch_size)),
        order_key, num_steps=steps, learning_rate=record_lr)
    valid_loss, valid_acc = evaluate(logits_fn, recipe.eval_params(opt_state, params), data["x_valid"],
                                     data["y_valid"])
    metrics = dict(loss=records.loss, learning_rate=records.learning_rate, valid_loss=valid_loss,
                   valid_acc=valid_acc)
    return (params, opt_state), metrics

  (params, opt_state), metrics = jax.lax.scan(epoch, (params, recipe.optimizer.init(params)),
                                              jnp.arange(budget.num_epochs))
  metrics["train_loss"], metrics["train_acc"] = evaluate(logits_fn, recipe.eval_params(opt_state, params),
                                                         data["x_eval"], data["y_eval"])
  return metrics


def compile_runner(recipe_fn: Callable, make_model: Callable, budget: Budget, batch_size: int,
                   data: dict[str, jax.Array], hparams: dict[str, jax.Array], keys: tuple[jax.Array, jax.Array]):
  """``jit(vmap over seeds)`` of :func:`train_one_seed`, compiled ahead of time; returns it and the seconds
  compiling took. The data and the hyperparameters are arguments, so no new value recompiles."""
  logits_fn = models.logits_fn(models.split_model(make_model))
  one = functools.partial(train_one_seed, recipe_fn, make_model, logits_fn, budget, batch_size)
  start = time.perf_counter()
  compiled = jax.jit(jax.vmap(one, in_axes=(None, None, 0, 0))).lower(data, hparams, *keys).compile()
  return compiled, time.perf_counter() - start


def seed_keys(seed: int, num_seeds: int) -> tuple[jax.Array, jax.Array]:
  """``num_seeds`` initialisation keys and ``num_seeds`` data-order keys, the same for every schedule."""
  base = jax.random.key(seed)
  return (jax.random.split(jax.random.fold_in(base, 0), num_seeds),
          jax.random.split(jax.random.fold_in(base, 1), num_seeds))


def device_data(ds: lrt.data.Dataset, eval_examples: int) -> dict[str, jax.Array]:
  """The splits on the device; train metrics use the first ``eval_examples`` train examples."""
  return {"x_train": jnp.asarray(ds.x_train), "y_train": jnp.asarray(ds.y_train),
          "x_eval": jnp.asarray(ds.x_train[:eval_examples]), "y_eval": jnp.asarray(ds.y_train[:eval_examples]),
          "x_valid": jnp.asarray(ds.x_valid), "y_valid": jnp.asarray(ds.y_valid)}


def mean_std(values: np.ndarray) -> tuple[float, float]:
  """Mean and sample standard deviation (ddof=1) over seeds; NaNs propagate (a diverged seed shows)."""
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def summarize(name: str, metrics: dict[str, np.ndarray], seconds: float) -> dict:
  """One table row (final-epoch values, mean ± std over seeds) and the curves of the figure."""
  steps_loss = metrics["loss"].reshape(len(metrics["loss"]), -1)
  row = {"schedule": name, "seconds": seconds,
         "diverged": int(np.sum(np.asarray(lrt.first_non_finite(jnp.asarray(steps_loss))) >= 0))}
  for key in ("train_loss", "train_acc"):
    row[key] = mean_std(metrics[key])
  for key in ("valid_loss", "valid_acc"):
    row[key] = mean_std(metrics[key][:, -1])
  curves = {key: metrics[key].tolist() for key in ("valid_loss", "valid_acc")}
  curves["epoch_loss"] = metrics["loss"].mean(-1).tolist()  # (seeds, epochs): mean step loss of each epoch
  curves["learning_rate"] = metrics["learning_rate"][0].reshape(-1).tolist()  # the same for every seed
  return {"row": row, "curves": curves}


def format_table(rows: list[dict]) -> str:
  """The results as a Markdown table: mean ± std over seeds of the final epoch, and seconds per schedule."""
  lines = ["| schedule | final train loss | train acc (%) | test acc (%) | diverged | time (s) |",
           "| --- | --- | --- | --- | --- | --- |"]
  for r in rows:
    (tl, tls), (ta, tas), (va, vas) = r["train_loss"], r["train_acc"], r["valid_acc"]
    lines.append(f"| {r['schedule']} | {tl:.4f} ± {tls:.4f} | {100 * ta:.2f} ± {100 * tas:.2f} | "
                 f"{100 * va:.2f} ± {100 * vas:.2f} | {r['diverged']} | {r['seconds']:.1f} |")
  return "\n".join(lines)


def check_config(config) -> list[str]:
  """Validates ``config`` (lrtools' error form) and returns the schedule names to run."""
  check_one_of(_CALL, "config.dataset", config.dataset, input_pipeline.DATASETS)
  check_one_of(_CALL, "config.model", config.model, models.IMAGE_MODELS + models.SIGNAL_MODELS)
  check_one_of(_CALL, "config.optimizer", config.optimizer, ("momentum", "adam"))
  for name in ("num_epochs", "batch_size", "eval_examples"):
    check_integer(_CALL, f"config.{name}", getattr(config, name), 1)
  check_integer(_CALL, "config.num_seeds", config.num_seeds, 2)  # a std needs two seeds
  check_integer(_CALL, "config.seed", config.seed, 0)
  for name in ("peak_lr", "schedule_free_lr", "momentum", "warmup_fraction"):
    check_positive(_CALL, f"config.{name}", getattr(config, name))
  names = list(SCHEDULES) if config.schedules == "all" else [s.strip() for s in config.schedules.split(",")]
  for name in names:
    check_one_of(_CALL, "config.schedules", name, SCHEDULES)
  return names


def train_and_evaluate(config, workdir: str | None = None) -> dict:
  """Trains every schedule of ``config`` on ``config.num_seeds`` seeds; writes ``<dataset>_<model>.json``
  (rows and curves), ``.md`` (the table) and ``.png`` (the figure) to ``workdir`` when given.

  Returns ``{"rows": [...], "curves": {schedule: ...}, "table": str, "compile_seconds": {...}, ...}``.
  """
  names = check_config(config)
  ds = input_pipeline.load_dataset(config.dataset, config.data_dir, config.seed)
  steps = len(ds.x_train) // config.batch_size
  if steps < 1:
    raise ValueError(f"`{_CALL}(config.batch_size=...)` must not exceed the {len(ds.x_train)} training "
                     f"examples, got config.batch_size={config.batch_size}")
  total = steps * config.num_epochs
  budget = Budget(steps, config.num_epochs, max(1, int(round(config.warmup_fraction * total))))
  make_model = models.model_factory(config.model, ds.x_train.shape[1:], ds.num_classes)
  data, keys = device_data(ds, config.eval_examples), seed_keys(config.seed, config.num_seeds)
  scheduled = list(make_schedules(jnp.float32(1.0), budget))

  groups = [  # (recipe, hyperparameters of each schedule it runs): one compiled program per group
      (functools.partial(scheduled_recipe, config, budget),
       {n: {"peak_lr": jnp.float32(config.peak_lr), "index": jnp.int32(scheduled.index(n))}
        for n in names if n in scheduled}),
      (functools.partial(schedule_free_recipe, config, budget),
       {n: {"peak_lr": jnp.float32(config.schedule_free_lr)} for n in names if n == "schedule_free"}),
  ]
  results, compile_seconds = {}, {}
  for recipe_fn, runs in groups:
    if not runs:
      continue
    compiled, seconds = compile_runner(recipe_fn, make_model, budget, config.batch_size, data,
                                       next(iter(runs.values())), keys)
    compile_seconds[" + ".join(runs)] = seconds
    for name, hparams in runs.items():
      start = time.perf_counter()
      metrics = jax.block_until_ready(compiled(data, hparams, *keys))
      results[name] = summarize(name, jax.tree_util.tree_map(np.asarray, metrics), time.perf_counter() - start)

  rows = [results[n]["row"] for n in names]
  out = {"config": dataclasses.asdict(config),
         "budget": {"steps_per_epoch": steps, "total_steps": total, "warmup_steps": budget.warmup_steps},
         "rows": rows, "curves": {n: results[n]["curves"] for n in names}, "table": format_table(rows),
         "compile_seconds": compile_seconds}
  if workdir:
    write_outputs(out, workdir, f"{config.dataset}_{config.model}")
  return out


def write_outputs(out: dict, workdir: str, stem: str) -> None:
  """The JSON results, the Markdown table and the figure under ``workdir``."""
  import plots  # matplotlib only when a figure is written

  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, f"{stem}.json"), "w") as f:
    json.dump(out, f)
  with open(os.path.join(workdir, f"{stem}.md"), "w") as f:
    f.write(out["table"] + "\n")
  plots.curves_figure(out).savefig(os.path.join(workdir, f"{stem}.png"), dpi=80)
