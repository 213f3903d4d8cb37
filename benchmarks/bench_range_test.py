"""LR range test speed: lrtools vs a Python-loop JAX finder vs torch-lr-finder, side by side in one run.

Setup (the issue's): MLP 64-128-128-10 on digits, batch 64, SGD momentum 0.9, 100 steps from 1e-6 to 1.

1. Per sweep: the sweep alone, everything compiled/warm, median of repeats, all contenders interleaved
   (each round times each once, so load changes hit them alike).
   - lrtools_hoisted: ``lr_range_test`` with a loss and an optimizer factory defined once;
   - lrtools_inline: the docstring's call style, ``lr_range_test(lambda p, b: loss(p, b), params,
     lambda lr: optax.sgd(lr, momentum=0.9), ...)`` written at each call (fresh lambdas every time: the
     compiled program is found again by what the functions compute, not by their identity);
   - plain_scan: a hand-written ``lax.scan`` of the same 100 steps (no smoothing, no stopping, no
     suggestions, no result object): the floor;
   - python-loop: a jitted step called from a Python loop that reads each loss back (torch-lr-finder's shape);
   - torch-lr-finder: ``LRFinder.range_test`` with torch's faster thread count here (1 or one per core,
     measured first) (only when torch and torch-lr-finder are installed:
     ``pip install -e ".[bench]"``, torch pinned to the local CPU build).
2. One-shot process wall time (import + data + compile + sweep + PNG), each a fresh subprocess, the
   contenders interleaved round by round:
   - ``lrtools find-lr`` cold: an empty persistent compilation cache (a new ``--cache-dir`` each run), so
     everything is compiled;
   - ``lrtools find-lr`` warm: the CLI's persistent compilation cache (on by default) filled by a first run;
   - the equivalent torch-lr-finder script (same model, data, steps, and a PNG).

Run: ``python benchmarks/bench_range_test.py [--processes 3]``; writes results/range_test.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import lrtools as lrt  # noqa: E402
from _timing import load_average, time_interleaved, write_results  # noqa: E402
from lrtools import models  # noqa: E402

START, END, STEPS, BATCH = 1e-6, 1.0, 100, 64
HAVE_TORCH = all(importlib.util.find_spec(m) for m in ("torch", "torch_lr_finder"))


def setup():
  ds = lrt.data.load_digits()
  model = models.classifier("mlp", 10)
  params = models.init_params(model, jax.random.key(0), ds.x_train)
  batches = lrt.data.batches(ds.x_train, ds.y_train, BATCH, STEPS, 0)
  return ds, model, params, batches, models.cross_entropy_loss(model)


def momentum_sgd(lr):
  return optax.sgd(lr, momentum=0.9)


def lrtools_sweep(params, batches, loss):
  """Loss and factory defined once (hoisted)."""
  def run():
    return lrt.lr_range_test(loss, params, momentum_sgd, batches, start_lr=START, end_lr=END,
                             num_steps=STEPS).losses
  return run


def lrtools_inline_sweep(params, batches, loss):
  """Fresh lambdas at every call, as in the docstring and a re-run notebook cell."""
  def run():
    return lrt.lr_range_test(lambda p, b: loss(p, b), params, lambda lr: optax.sgd(lr, momentum=0.9), batches,
                             start_lr=START, end_lr=END, num_steps=STEPS).losses
  return run


def plain_scan_sweep(params, batches, loss):
  """The floor: the same steps as one ``lax.scan``, losses only."""
  lrs = jnp.asarray(lrt.finder.sweep_lrs(START, END, STEPS), jnp.float32)

  @jax.jit
  def scan(params, data, lrs):
    def body(carry, i):
      p, s = carry
      value, grads = jax.value_and_grad(loss)(p, jax.tree_util.tree_map(lambda x: x[i], data))
      updates, s = optax.sgd(lrs[i], momentum=0.9).update(grads, s, p)
      return (optax.apply_updates(p, updates), s), value
    start = (params, optax.sgd(1.0, momentum=0.9).init(params))
    return jax.lax.scan(body, start, jnp.arange(STEPS))[1]

  def run():
    return np.asarray(scan(params, batches, lrs))  # the same host round trip as the others
  return run


def python_loop_sweep(params, batches, loss):
  """A plain JAX finder: jitted step, Python loop, loss read back each step for smoothing/divergence."""
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=START, momentum=0.9)

  @jax.jit
  def step(params, opt_state, batch, lr):
    opt_state.hyperparams["learning_rate"] = lr
    value, grads = jax.value_and_grad(loss)(params, batch)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value

  lrs = lrt.finder.sweep_lrs(START, END, STEPS)
  data = [{"x": jnp.asarray(batches["x"][i]), "y": jnp.asarray(batches["y"][i])} for i in range(STEPS)]

  def run():
    p, s = params, tx.init(params)
    best = smoothed = None
    losses = []
    for i in range(STEPS):
      p, s, value = step(p, s, data[i], lrs[i])
      value = float(value)
      smoothed = value if i == 0 else 0.05 * value + 0.95 * smoothed
      best = smoothed if i == 0 else min(best, smoothed)
      losses.append(value)
      if smoothed > 5 * best:
        break
    return np.array(losses)
  return run


TORCH_SCRIPT = r'''
import gzip, importlib.util, sys, time
from pathlib import Path
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[2]))
from torch import nn
from torch_lr_finder import LRFinder
torch.manual_seed(0)
spec = importlib.util.find_spec("sklearn")
path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
table = np.loadtxt(path, delimiter=",")
x, y = table[:, :-1], table[:, -1].astype(np.int64)
x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1)
data = torch.utils.data.TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y))
loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True)
model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
opt = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)
finder = LRFinder(model, opt, nn.CrossEntropyLoss(), device="cpu")
finder.range_test(loader, end_lr=1.0, num_iter=100, step_mode="exp")
if len(sys.argv) > 1:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    finder.plot(ax=ax, suggest_lr=True)
    fig.savefig(sys.argv[1])
'''


def torch_sweep():
  import torch
  from torch import nn
  from torch_lr_finder import LRFinder

  ds = lrt.data.load_digits()
  data = torch.utils.data.TensorDataset(torch.tensor(ds.x_train), torch.tensor(ds.y_train, dtype=torch.int64))
  loader = torch.utils.data.DataLoader(data, batch_size=BATCH, shuffle=True)

  def run():
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=START, momentum=0.9)
    finder = LRFinder(model, opt, nn.CrossEntropyLoss(), device="cpu")
    finder.range_test(loader, end_lr=END, num_iter=STEPS, step_mode="exp")
    return np.array(finder.history["loss"])
  return run


def best_torch_threads() -> int:
  """torch at its best here: 1 thread or one per core, whichever sweeps faster (on a shared 2-core machine
  two threads spin-wait for each other, ~10x slower than one)."""
  import torch
  run, best = torch_sweep(), {}
  for threads in sorted({1, os.cpu_count() or 1}):
    torch.set_num_threads(threads)
    best[threads] = time_interleaved({"t": run}, warmup=1, repeats=3)["t"]["median_s"]
  threads = min(best, key=best.get)
  torch.set_num_threads(threads)
  return threads


def walls(cmds: dict, repeats: int, before: dict | None = None) -> dict:
  """Wall times of whole processes, the commands interleaved round by round. ``before[name]()`` runs
  untimed before each of that command's runs (it empties a cache for a cold run)."""
  times: dict[str, list[float]] = {name: [] for name in cmds}
  for _ in range(repeats):
    for name, cmd in cmds.items():
      if before and name in before:
        before[name]()
      start = time.perf_counter()
      subprocess.run(cmd, check=True, capture_output=True)
      times[name].append(time.perf_counter() - start)
  return {name: {"median_s": statistics.median(t), "all_s": t} for name, t in times.items()}


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--processes", type=int, default=3, help="repeats of each whole-process run")
  parser.add_argument("--repeats", type=int, default=15, help="timed sweeps of each contender")
  args = parser.parse_args()
  _, _, params, batches, loss = setup()

  contenders = {"lrtools_hoisted": lrtools_sweep(params, batches, loss),
                "lrtools_inline": lrtools_inline_sweep(params, batches, loss),
                "plain_scan": plain_scan_sweep(params, batches, loss),
                "python_loop": python_loop_sweep(params, batches, loss)}
  torch_threads = None
  if HAVE_TORCH:
    torch_threads = best_torch_threads()
    contenders["torch_lr_finder"] = torch_sweep()
  per_sweep = time_interleaved(contenders, repeats=args.repeats)

  tmp = Path(tempfile.mkdtemp())
  cli = [sys.executable, "-m", "lrtools.cli", "find-lr", "--start", str(START), "--end", str(END), "--steps",
         str(STEPS), "--batch-size", str(BATCH), "--quiet", "--out", str(tmp / "lrtools.png")]
  cold, warm = tmp / "cold-cache", tmp / "warm-cache"
  cmds = {"lrtools_cold": cli + ["--cache-dir", str(cold)], "lrtools_warm_cache": cli + ["--cache-dir", str(warm)]}
  subprocess.run(cmds["lrtools_warm_cache"], check=True, capture_output=True)  # fills the warm cache
  if HAVE_TORCH:
    script = tmp / "torch_finder.py"
    script.write_text(TORCH_SCRIPT)
    cmds["torch_lr_finder"] = [sys.executable, str(script), str(tmp / "torch.png"), str(torch_threads)]
  cmds["python_import_jax_optax_only"] = [sys.executable, "-c", "import jax, optax"]
  if HAVE_TORCH:
    cmds["python_import_torch_only"] = [sys.executable, "-c", "import torch"]
  process = walls(cmds, args.processes, before={"lrtools_cold": lambda: shutil.rmtree(cold, ignore_errors=True)})

  ratios = {}
  if HAVE_TORCH:
    for k in ("lrtools_hoisted", "lrtools_inline"):
      ratios[f"per_sweep_speedup_vs_torch_{k.split('_')[1]}"] = (per_sweep["torch_lr_finder"]["median_s"]
                                                                 / per_sweep[k]["median_s"])
    for k in ("lrtools_cold", "lrtools_warm_cache"):
      ratios[f"{k}_wall_vs_torch"] = process[k]["median_s"] / process["torch_lr_finder"]["median_s"]
  ratios["per_sweep_speedup_vs_python_loop"] = (per_sweep["python_loop"]["median_s"]
                                                / per_sweep["lrtools_hoisted"]["median_s"])
  ratios["per_sweep_overhead_over_plain_scan"] = (per_sweep["lrtools_hoisted"]["median_s"]
                                                  / per_sweep["plain_scan"]["median_s"])
  results = {"setup": dict(start=START, end=END, steps=STEPS, batch=BATCH, model="mlp 64-128-128-10",
                           optimizer="sgd momentum 0.9"), "per_sweep": per_sweep, "process": process,
             "ratios": ratios, "load_average_after": load_average(), "torch_threads": torch_threads}
  ms = {k: v["median_s"] * 1e3 for k, v in per_sweep.items()}
  summary = ("range test per sweep: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
             + "; process: " + ", ".join(f"{k} {v['median_s']:.2f} s" for k, v in process.items())
             + "; " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
  write_results("range_test", results, summary)


if __name__ == "__main__":
  main()
