"""Cost of the monitors: a jitted ``lax.scan`` of training steps (``lrtools.train_loop``) with and without them.

Setup (the issue's): MLP 64-128-128-10 on digits, batch 64, ``lrt.momentum(0.05, 0.9)``, ``--steps`` steps in
one compiled ``train_loop``. Contenders, interleaved round by round (each round times each once, so load
changes from other processes hit them alike), median over rounds:

- ``plain``: ``lrt.momentum(0.05, 0.9)``;
- ``monitor``: ``optax.chain(lrt.momentum(0.05, 0.9), monitor())`` (update and weight norms per leaf);
- ``monitored``: ``monitored(lrt.momentum(0.05, 0.9))`` (also gradient norms per leaf).

The goal is a time ratio monitor/plain (and monitored/plain) of at most 1.10. The machine may be shared:
besides wall time the script records the process CPU time of each call (less sensitive to other processes
taking the cores), the load average, and the number of kernels (fusions, dots, copies) in each compiled
loop body, a load-independent count of what the monitors add per step.

    python benchmarks/bench_monitor.py [--steps 500] [--rounds 15]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import jax
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import block, load_average, write_results  # noqa: E402

import lrtools as lrt  # noqa: E402
from lrtools import models  # noqa: E402
from lrtools.data import batches, load_digits  # noqa: E402
from lrtools.diagnostics import monitor, monitored  # noqa: E402


def loop_kernels(hlo: str) -> int:
  """Kernels (fusions, dots, copies, custom calls) in the largest while-loop body of a compiled module."""
  bodies = [c for c in re.split(r"\n\n", hlo) if "while/body" in c and "fusion(" in c]
  return max(len(re.findall(r"= \S+ (?:fusion|dot|copy|custom-call)\(", c)) for c in bodies)


def interleaved(calls: dict, rounds: int, warmup: int = 2) -> dict:
  """Each round runs every contender once, in turn; wall and process-CPU seconds per call, medians."""
  for call in calls.values():
    for _ in range(warmup):
      block(call())
  wall = {k: [] for k in calls}
  cpu = {k: [] for k in calls}
  for _ in range(rounds):
    for name, call in calls.items():
      w, c = time.perf_counter(), time.process_time()
      block(call())
      wall[name].append(time.perf_counter() - w)
      cpu[name].append(time.process_time() - c)
  return {k: {"median_s": statistics.median(wall[k]), "min_s": min(wall[k]), "max_s": max(wall[k]),
              "cpu_median_s": statistics.median(cpu[k]), "rounds": rounds} for k in calls}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=500)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--rounds", type=int, default=15)
  args = parser.parse_args()

  data = load_digits()
  model = models.classifier("mlp", data.num_classes)
  loss = models.cross_entropy_loss(model)
  params = models.init_params(model, jax.random.key(0), data.x_train[:1])
  stacked = jax.device_put(batches(data.x_train, data.y_train, args.batch_size, args.steps, 0))
  optimizers = {"plain": lrt.momentum(0.05, 0.9), "monitor": optax.chain(lrt.momentum(0.05, 0.9), monitor()),
                "monitored": monitored(lrt.momentum(0.05, 0.9))}

  calls, ops = {}, {}
  for name, opt in optimizers.items():
    # Return the final state too: a discarded monitor state would be dead code, removed by XLA.
    run = jax.jit(lambda p, b, opt=opt: lrt.train_loop(loss, opt, p, opt.init(p), b)[:2])
    ops[name] = loop_kernels(run.lower(params, stacked).compile().as_text())
    calls[name] = lambda run=run: run(params, stacked)

  load_before = load_average()
  stats = interleaved(calls, args.rounds)
  plain = stats["plain"]["median_s"]
  ratios = {name: stats[name]["median_s"] / plain for name in ("monitor", "monitored")}
  cpu_ratios = {name: stats[name]["cpu_median_s"] / stats["plain"]["cpu_median_s"] for name in ("monitor", "monitored")}
  results = {"steps": args.steps, "batch_size": args.batch_size, "rounds": args.rounds, "timings": stats,
             "ratio_vs_plain": ratios, "cpu_time_ratio_vs_plain": cpu_ratios, "loop_body_kernels": ops,
             "per_step_us": {k: v["median_s"] / args.steps * 1e6 for k, v in stats.items()},
             "load_average_before": load_before, "load_average_after": load_average(), "goal_max_ratio": 1.10}
  summary = (f"bench_monitor: {args.steps}-step train_loop, MLP 64-128-128-10 on digits ({jax.default_backend()}): "
             f"plain {plain * 1e3:.1f} ms, monitor() x{ratios['monitor']:.3f}, monitored() x{ratios['monitored']:.3f} "
             f"wall (CPU time x{cpu_ratios['monitor']:.3f}, x{cpu_ratios['monitored']:.3f}; goal <= 1.10); loop "
             f"kernels {ops['plain']}/{ops['monitor']}/{ops['monitored']}; load {load_before[0] if load_before else 'n/a'}")
  write_results("monitor", results, summary)


if __name__ == "__main__":
  main()
