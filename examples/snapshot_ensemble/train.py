"""Snapshot ensembles (Huang et al. 2017): SGDR with M cycles, a snapshot at the end of each, against one
cosine-decay run with the same step budget, over several seeds trained at once.

Both runs are ``lrtools.train_loop`` (one ``lax.scan``) with the CS231n momentum optimizer; the snapshots
are taken inside the loop by ``lrtools.ensembles.snapshot_ensemble``, placed last in the chain. The single
run carries the same collector on a fixed period (a checkpoint ensemble, CS231n), so it gets its own free
ensemble to compare with. ``jax.vmap`` over PRNG keys trains ``num_seeds`` independent initialisations and
batch orders in one compiled program.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrtools as lrt
from lrtools import models
from lrtools.ensembles import ensemble_predict, snapshot_buffer, snapshot_ensemble


def epoch_batches(ds, batch_size: int, data_key: jax.Array):
  """``(key, step) -> batch``: a fresh permutation of the training set each epoch (drawn from ``data_key``
  and the epoch, so a vmapped key gives each seed its own order), cut into ``batch_size`` slices."""
  x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
  per_epoch = len(ds.x_train) // batch_size

  def batch(_, step):
    order = jax.random.permutation(jax.random.fold_in(data_key, step // per_epoch), len(ds.x_train))
    index = jax.lax.dynamic_slice(order, ((step % per_epoch) * batch_size,), (batch_size,))
    return {"x": x[index], "y": y[index]}

  return batch


def schedules_and_collectors(config, steps_per_epoch: int):
  """The two runs: SGDR with M cycles + snapshots at its restarts, and cosine decay over the same budget +
  M evenly spaced checkpoints."""
  cycle = config.epochs_per_cycle * steps_per_epoch
  total = config.num_cycles * cycle
  sgdr = lrt.sgdr_schedule(config.peak_lr, cycle_steps=cycle)
  cosine = lrt.cosine_decay_schedule(config.peak_lr, total)
  return total, {
      "sgdr": (sgdr, snapshot_ensemble(sgdr, config.num_cycles, num_steps=total)),
      "cosine": (cosine, snapshot_ensemble(cycle, config.num_cycles)),  # checkpoints every `cycle` steps
  }


def train_seeds(config, ds, model, schedule, collector, total: int):
  """``num_seeds`` runs at once: ``jax.vmap`` over keys of init + ``lrtools.train_loop``."""
  loss = models.cross_entropy_loss(model)
  opt = optax.chain(lrt.momentum(schedule, config.momentum, weight_decay=config.weight_decay), collector)

  def run(key):
    init_key, data_key = jax.random.split(key)
    params = models.init_params(model, init_key, ds.x_train)
    return lrt.train_loop(loss, opt, params, opt.init(params), epoch_batches(ds, config.batch_size, data_key),
                          data_key, num_steps=total)

  keys = jax.random.split(jax.random.key(config.seed), config.num_seeds)
  return jax.jit(jax.vmap(run))(keys)


def evaluate(model, result, x, y) -> tuple:
  """Accuracy and NLL (of the averaged probabilities) on ``(x, y)``, per seed: the final model, each
  snapshot, and the ensembles of the last k snapshots (k = 2 … M)."""
  return _evaluator(model)(result.params, result.opt_state, x, y)


@functools.lru_cache(maxsize=None)
def _evaluator(model):
  """One compiled evaluation per model (both runs share it: their buffers have the same shapes)."""
  apply_fn = lambda p, x: model.apply({"params": p}, x)

  def one_seed(params, opt_state, x, y):
    def scores(log_probs):  # log_probs (members, N, C): accuracy and NLL of their mean probabilities
      mixed = jax.nn.logsumexp(log_probs, axis=0) - jnp.log(log_probs.shape[0])  # log-space: no log(0)
      return (jnp.mean(jnp.argmax(mixed, -1) == y),
              -jnp.mean(jnp.take_along_axis(mixed, y[:, None], axis=-1)))

    buf = snapshot_buffer(opt_state)
    size = buf.valid.shape[0]
    keep = buf.valid & buf.finite  # a diverged snapshot would be left out (none is here)
    log_probs = jax.vmap(lambda m: jax.nn.log_softmax(apply_fn(m, x)))(buf.members)
    final = scores(jax.nn.log_softmax(apply_fn(params, x))[None])
    each = jax.vmap(lambda lp: scores(lp[None]))(log_probs)
    last_k = []
    for k in range(2, size + 1):
      chosen = keep & (jnp.arange(size) >= size - k)
      probs = ensemble_predict(apply_fn, buf.members, x, "mean_probs", mask=chosen)
      acc, nll = scores(log_probs[size - k:])  # the same average in log space, for a finite NLL
      last_k.append((jnp.mean(jnp.argmax(probs, -1) == y), nll))
    return final, each, last_k, buf.steps, jnp.argmax(log_probs, -1)

  return jax.jit(jax.vmap(one_seed, in_axes=(0, 0, None, None)))


def disagreement(classes: np.ndarray) -> float:
  """The mean over pairs of members of the fraction of test examples they classify differently: an
  ensemble can only beat its members where they disagree."""
  pairs = [(i, j) for i in range(len(classes)) for j in range(i + 1, len(classes))]
  return float(np.mean([np.mean(classes[i] != classes[j]) for i, j in pairs]))


def _stats(values) -> dict:
  v = np.asarray(values, np.float64)
  return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def train_and_evaluate(config, workdir: str | None = None) -> dict:
  """Trains both runs over ``num_seeds`` seeds; returns the rows of the results table (mean ± std over
  seeds of test accuracy and NLL) and timings. Writes ``results.json`` and ``table.md`` to ``workdir``."""
  start = time.perf_counter()
  ds = lrt.data.load_digits(seed=config.seed, flat=config.model == "mlp")
  model = models.classifier(config.model, ds.num_classes)
  x, y = jnp.asarray(ds.x_valid), jnp.asarray(ds.y_valid)
  steps_per_epoch = len(ds.x_train) // config.batch_size
  total, runs = schedules_and_collectors(config, steps_per_epoch)
  rows, extra, seconds = [], {}, {}
  for name, (schedule, collector) in runs.items():
    t0 = time.perf_counter()
    result = train_seeds(config, ds, model, schedule, collector, total)
    jax.block_until_ready(result.params)
    seconds[name] = time.perf_counter() - t0
    final, each, last_k, steps, classes = evaluate(model, result, x, y)
    extra[f"{name}_snapshot_disagreement"] = _stats([disagreement(c) for c in np.asarray(classes)])
    extra[f"{name}_snapshot_steps"] = np.asarray(steps[0]).tolist()
    extra[f"{name}_final_train_loss"] = _stats(np.mean(np.asarray(result.records.loss)[:, -steps_per_epoch:], 1))
    label = "SGDR" if name == "sgdr" else "cosine (single model)"
    rows.append({"model": f"{label}: final", "accuracy": _stats(final[0]), "nll": _stats(final[1])})
    if name == "sgdr":
      for i in range(config.num_cycles):
        rows.append({"model": f"SGDR: snapshot {i + 1} (step {int(steps[0, i]) + 1})",
                     "accuracy": _stats(each[0][:, i]), "nll": _stats(each[1][:, i])})
    for k, (acc, nll) in zip(range(2, config.num_cycles + 1), last_k):
      kind = "snapshot" if name == "sgdr" else "checkpoint"
      if k in (2, config.num_cycles) or name == "sgdr":
        rows.append({"model": f"{label}: {kind} ensemble of the last {k}", "accuracy": _stats(acc),
                     "nll": _stats(nll)})
    if name == "cosine":  # CS231n: the same model from different initialisations, one ensemble of all seeds
      apply_fn = lambda p, x: model.apply({"params": p}, x)
      probs = ensemble_predict(apply_fn, result.params, x)
      extra["cosine_seed_ensemble_accuracy"] = float(jnp.mean(jnp.argmax(probs, -1) == y))
      final_classes = jax.vmap(lambda p: jnp.argmax(apply_fn(p, x), -1))(result.params)
      extra["cosine_seed_disagreement"] = disagreement(np.asarray(final_classes))
  out = {"config": dataclasses.asdict(config), "total_steps": total, "steps_per_epoch": steps_per_epoch,
         "rows": rows, **extra,
         "train_seconds": seconds, "total_seconds": time.perf_counter() - start}
  if workdir is not None:
    Path(workdir).mkdir(parents=True, exist_ok=True)
    (Path(workdir) / "results.json").write_text(json.dumps(out, indent=2))
    (Path(workdir) / "table.md").write_text(format_table(out))
  return out


def format_table(results: dict) -> str:
  """The results as a Markdown table: mean ± std over seeds of test accuracy (%) and test NLL."""
  n = results["rows"][0]["accuracy"]["n"]
  lines = [f"| model ({n} seeds) | test accuracy (%) | test NLL |", "|---|---|---|"]
  for row in results["rows"]:
    acc, nll = row["accuracy"], row["nll"]
    lines.append(f"| {row['model']} | {100 * acc['mean']:.2f} ± {100 * acc['std']:.2f} | "
                 f"{nll['mean']:.4f} ± {nll['std']:.4f} |")
  return "\n".join(lines)
