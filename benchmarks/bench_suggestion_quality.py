"""Suggestion quality: short training runs at the lag-free suggestions vs at the lagged (EMA) ones.

For each seed: the range test of ``lrtools find-lr``'s defaults (MLP 64-128-128-10 on digits, batch 64,
lrtools' momentum 0.9, 1e-7 -> 10 over 100 steps, smoothing 0.05); each rule (steepest, minimum, valley)
applied to the lag-free centred curve (what lrtools suggests) and to the exponential average the sweep
records (torch-lr-finder's form, the lagged one); then a short training run (``--train-steps`` steps of the
same optimizer at a constant rate, from the seed's initialisation, fresh batches) at every suggested rate,
all rates of a seed in one vmapped ``train_loop``. Reports the final validation loss and accuracy.

Run: ``python benchmarks/bench_suggestion_quality.py [--seeds 5] [--train-steps 300]``; writes
results/suggestion_quality.json and prints a one-line summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import lrtools as lrt  # noqa: E402
from _timing import write_results  # noqa: E402
from lrtools import models  # noqa: E402
from lrtools.finder._suggest import suggest_all  # noqa: E402

METHODS = ("steepest", "minimum", "valley")


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--train-steps", type=int, default=300)
  args = parser.parse_args()
  ds = lrt.data.load_digits(seed=0, flat=True)
  model = models.classifier("mlp", ds.num_classes)
  loss = models.cross_entropy_loss(model)
  factory = lambda lr: lrt.momentum(lr, 0.9)  # noqa: E731
  valid = {"x": jnp.asarray(ds.x_valid), "y": jnp.asarray(ds.y_valid)}

  @jax.jit
  def train_many(lrs, params, batches):
    def one(lr):
      opt = factory(lr)
      final, _, _ = lrt.train_loop(loss, opt, params, opt.init(params), batches)
      logits = model.apply({"params": final}, valid["x"])
      val_loss = loss(final, valid)
      acc = jnp.mean(jnp.argmax(logits, -1) == valid["y"])
      return jnp.where(jnp.isfinite(val_loss), val_loss, jnp.inf), acc
    return jax.vmap(one)(lrs)

  rows = []
  for seed in range(args.seeds):
    params = models.init_params_host(model, seed, ds.x_train)
    sweep = lrt.data.batches(ds.x_train, ds.y_train, 64, 100, seed)
    res = lrt.lr_range_test(loss, params, factory, sweep, key=jax.random.key(seed))
    lagged = {m: float(lr) for m, (lr, _) in
              suggest_all(jnp.asarray(res.lrs), jnp.asarray(res.smoothed_losses), res.num_steps_run).items()}
    new = {m: res.suggest(m) for m in METHODS}
    lrs = jnp.asarray([new[m] for m in METHODS] + [lagged[m] for m in METHODS], jnp.float32)
    train = lrt.data.batches(ds.x_train, ds.y_train, 64, args.train_steps, 1000 + seed)
    val_loss, acc = (np.asarray(v) for v in train_many(lrs, params, train))
    for k, m in enumerate(METHODS):
      rows.append({"seed": seed, "method": m, "lag_free_lr": new[m], "lagged_lr": lagged[m],
                   "lag_free_val_loss": float(val_loss[k]), "lagged_val_loss": float(val_loss[k + 3]),
                   "lag_free_acc": float(acc[k]), "lagged_acc": float(acc[k + 3])})
      r = rows[-1]
      print(f"seed {seed} {m:<9} lag-free {r['lag_free_lr']:.3g}: val loss {r['lag_free_val_loss']:.3f} "
            f"acc {r['lag_free_acc']:.3f} | lagged {r['lagged_lr']:.3g}: val loss {r['lagged_val_loss']:.3f} "
            f"acc {r['lagged_acc']:.3f}")
  summary = {}
  for m in METHODS:
    mine = [r for r in rows if r["method"] == m]
    summary[m] = {key: float(np.median([r[key] for r in mine])) for key in
                  ("lag_free_val_loss", "lagged_val_loss", "lag_free_acc", "lagged_acc")}
    summary[m]["wins_or_ties"] = sum(r["lag_free_val_loss"] <= r["lagged_val_loss"] + 1e-3 for r in mine)
  line = "; ".join(f"{m}: median val loss lag-free {s['lag_free_val_loss']:.3f} vs lagged {s['lagged_val_loss']:.3f}, "
                  f"acc {s['lag_free_acc']:.3f} vs {s['lagged_acc']:.3f}, lag-free at least as good in "
                  f"{s['wins_or_ties']}/{args.seeds} seeds" for m, s in summary.items())
  write_results("suggestion_quality", {"seeds": args.seeds, "train_steps": args.train_steps, "rows": rows,
                                       "summary": summary}, line)


if __name__ == "__main__":
  main()
