"""Search speed: trials per second of ``random_search`` vs a Python loop of the jitted single-trial objective.

Setup (the issue's): MLP 64-128-128-10 on digits, batch 64, 300 steps of momentum SGD per trial, the score
the validation loss; the space ``learning_rate ~ log_uniform(1e-3, 0.3)``, ``momentum ~ uniform(0.5, 0.95)``;
N = 1, 8, 32, 64 trials. Contenders, on the same configurations and per-trial keys:

- loop: ``jax.jit(objective)`` called once per trial from Python (compiled once), scores read back at the end;
- random_search: ``lrt.random_search`` with its defaults (on CPU: trials one after another inside one
  compiled ``lax.map``; on GPU/TPU: all trials vmapped together);
- random_search_full_vmap: ``random_search(..., vmap_size=N)``, every trial of the chunk in one ``jax.vmap``
  (the naive design, kept to show why the CPU default differs).

Each sample times every contender once, in turn (``time_interleaved``), so load changes hit them alike;
everything is compiled first. Small N gets more samples (about ``--seconds`` of samples per contender, at
least ``--repeats``). On a shared machine the median moves with the load: the speedup is given from the
medians and from the minima (the least disturbed samples); the load average is recorded with the results.
At N = 1 the three contenders run the same computation (one trial), so their spread there is the noise.

Run: ``python benchmarks/bench_search.py [--sizes 1 8 32 64] [--repeats 5] [--seconds 3]``; writes
results/search.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import lrtools as lrt  # noqa: E402
from _timing import load_average, time_interleaved, write_results  # noqa: E402
from lrtools import models  # noqa: E402
from lrtools.search import log_uniform, random_search, sample_space, uniform  # noqa: E402

STEPS, BATCH = 300, 64
SPACE = {"learning_rate": log_uniform(1e-3, 0.3), "momentum": uniform(0.5, 0.95)}


def make_objective():
  ds = lrt.data.load_digits()
  model = models.classifier("mlp", ds.num_classes)
  loss = models.cross_entropy_loss(model)
  batches = jax.tree_util.tree_map(jnp.asarray, lrt.data.batches(ds.x_train, ds.y_train, BATCH, STEPS, 0))
  valid = {"x": jnp.asarray(ds.x_valid), "y": jnp.asarray(ds.y_valid)}
  example = ds.x_train[:1]

  def objective(config, key):
    params = models.init_params(model, key, example)
    opt = lrt.momentum(config["learning_rate"], config["momentum"])
    res = lrt.train_loop(loss, opt, params, opt.init(params), batches, num_steps=STEPS)
    return loss(res.params, valid)
  return objective


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32, 64])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--seconds", type=float, default=3.0, help="seconds of samples per contender and N")
  args = parser.parse_args()
  objective = make_objective()
  single = jax.jit(objective)
  key = jax.random.key(0)
  trial_key = jax.random.fold_in(key, 1)  # random_search's per-trial key base

  results = {}
  for n in args.sizes:
    configs = {k: np.asarray(v) for k, v in sample_space(SPACE, jax.random.fold_in(key, 0), n).items()}

    def loop():
      out = [single({k: v[i] for k, v in configs.items()}, jax.random.fold_in(trial_key, i)) for i in range(n)]
      return np.asarray(jnp.stack(out))

    fns = {"loop": loop,
           "random_search": lambda: random_search(objective, SPACE, n, key=key).scores,
           "random_search_full_vmap": lambda: random_search(objective, SPACE, n, key=key, vmap_size=n).scores}
    scores = {name: np.asarray(fn()) for name, fn in fns.items()}  # compiles; same trials, same scores
    agree = max(float(np.max(np.abs(scores[name] - scores["loop"]))) for name in fns)
    start = time.perf_counter()
    loop()
    repeats = max(args.repeats, int(args.seconds / (time.perf_counter() - start)))
    load_before = load_average()
    stats = time_interleaved(fns, warmup=1, repeats=repeats)
    row = {name: {**s, "trials_per_s": n / s["median_s"]} for name, s in stats.items()}
    for name in fns:
      row[name]["speedup_vs_loop"] = stats["loop"]["median_s"] / stats[name]["median_s"]
      row[name]["speedup_vs_loop_min"] = stats["loop"]["min_s"] / stats[name]["min_s"]
    row["max_abs_score_difference"] = agree
    row["load_average_before"], row["load_average_after"] = load_before, load_average()
    results[str(n)] = row
    rs, fv = row["random_search"], row["random_search_full_vmap"]
    print(f"N={n:3d} ({repeats} samples): loop {row['loop']['trials_per_s']:.2f} trials/s, random_search "
          f"{rs['speedup_vs_loop']:.2f}x (min {rs['speedup_vs_loop_min']:.2f}x), full vmap "
          f"{fv['speedup_vs_loop']:.2f}x (min {fv['speedup_vs_loop_min']:.2f}x) "
          f"(load {load_before[0] if load_before else '?'})", flush=True)

  summary = "random_search vs loop (median; min): " + ", ".join(
      f"N={n} {results[str(n)]['random_search']['speedup_vs_loop']:.2f}x; "
      f"{results[str(n)]['random_search']['speedup_vs_loop_min']:.2f}x" for n in args.sizes) + \
      " (full vmap: " + ", ".join(f"{results[str(n)]['random_search_full_vmap']['speedup_vs_loop']:.2f}x"
                                  for n in args.sizes) + f") on {jax.default_backend()}"
  write_results("search", {"steps": STEPS, "batch_size": BATCH, "model": "MLP 64-128-128-10",
                           "optimizer": "lrt.momentum", "sizes": results}, summary)


if __name__ == "__main__":
  main()
