"""Schedule costs and accuracy.

1. Overhead: a jitted ``lax.scan`` of SGD steps on a parameter vector, learning rate from each schedule vs a
   constant, side by side in one run (ratio = schedule time / constant time).
2. Accuracy: the largest float32 error against the float64 reference (tests/reference.py) over 10^4 steps
   and at every phase boundary / restart up to 10^7 steps.

Run: ``python benchmarks/bench_schedules.py [--size 100000] [--steps 1000]``; writes results/schedules.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

import lrtools as lrt  # noqa: E402
import reference as ref  # noqa: E402
from _timing import time_fn, write_results  # noqa: E402

SCHEDULES = {
    "constant": lambda: lrt.constant_schedule(0.01),
    "step": lambda: lrt.step_decay_schedule(0.01, 100),
    "multistep": lambda: lrt.multistep_schedule(0.01, [100, 300, 600]),
    "exponential": lambda: lrt.exponential_decay_schedule(0.01, 1e-3),
    "polynomial": lambda: lrt.polynomial_decay_schedule(0.01, 0.0, 800),
    "cosine+warmup": lambda: lrt.warmup_schedule(lrt.cosine_decay_schedule(0.01, 800), 100),
    "cyclical_exp_range": lambda: lrt.cyclical_schedule(0.001, 0.01, 50, 70, "exp_range", 0.999),
    "one_cycle_3phase": lambda: lrt.one_cycle_schedule(1000, 0.01, three_phase=True),
    "sgdr_mult2": lambda: lrt.sgdr_schedule(0.01, 50, 2.0, 1e-4, 0.9, 0.9),
}


def overhead(size: int, num_steps: int, rounds: int = 5) -> dict:
  """Interleaved rounds (every schedule once per round) so that machine noise hits all alike; the best
  round of each is kept. Reports the ratio to a constant LR and the absolute cost per step."""
  params = jnp.ones((size,), jnp.float32)
  grads = jnp.full((size,), 1e-3, jnp.float32)
  trains = {}
  for name, make in SCHEDULES.items():
    sched = make()

    @jax.jit
    def train(p, sched=sched):
      def step(p, t):
        return p - sched(t).astype(p.dtype) * grads * p, None  # a gradient that depends on p
      return jax.lax.scan(step, p, jnp.arange(num_steps))[0]

    trains[name] = train
  samples = {name: [] for name in trains}
  for _ in range(rounds):
    for name, train in trains.items():
      samples[name].append(time_fn(lambda train=train: train(params), warmup=1, repeats=3)["min_s"])
  base = min(samples["constant"])
  return {name: {"best_s": min(v), "ratio_vs_constant": min(v) / base,
                 "overhead_us_per_step": (min(v) - base) / num_steps * 1e6} for name, v in samples.items()}


def accuracy() -> dict:
  ts = np.arange(10_000)
  cases = {
      "cyclical_triangular2": (lambda d: lrt.cyclical_schedule(d(0.001), d(0.1), 130, 370, "triangular2"),
                               lambda: ref.cyclic_lr(ts, 0.001, 0.1, 130, 370, "triangular2", 1.0)),
      "one_cycle_cos": (lambda d: lrt.one_cycle_schedule(10_000, d(0.1)),
                        lambda: ref.one_cycle(ts, 10_000, 0.004, 0.1, 4e-7, 0.3, "cos", False)),
      "sgdr_mult2": (lambda d: lrt.sgdr_schedule(d(0.1), 100, d(2.0), d(0.001)),
                     lambda: ref.sgdr(ts, 0.1, 100, 2.0, 0.001, 1.0, 1.0)),
      "step": (lambda d: lrt.step_decay_schedule(d(0.1), 700, d(0.5)),
               lambda: ref.step_decay(ts, 0.1, 700, 0.5, 0.0)),
  }
  out = {}
  for name, (make, want) in cases.items():
    got = np.asarray(make(np.float32)(jnp.asarray(ts, jnp.int32)), np.float64)
    w = want()
    out[name] = {"max_abs_err": float(np.abs(got - w).max()), "max_rel_err": float((np.abs(got - w) / w).max())}
  # SGDR restarts up to 10^7 in float32: value at every restart must be that cycle's maximum.
  worst = 0.0
  for cycle_steps, mult in [(7, 1), (10, 2), (3, 3), (9, 9)]:
    starts, start, length = [], 0, cycle_steps
    while start <= 10**7:
      starts.append(start)
      start, length = start + length, length * mult
    got = np.asarray(lrt.sgdr_schedule(np.float32(1.0), cycle_steps, np.float32(mult))(
        jnp.asarray(starts, jnp.int32)))
    worst = max(worst, float(np.abs(got - 1.0).max()))
  out["sgdr_restarts_to_1e7_max_abs_err"] = worst
  return out


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--size", type=int, default=1_000_000)
  parser.add_argument("--steps", type=int, default=1000)
  args = parser.parse_args()
  results = {"size": args.size, "steps": args.steps, "overhead": overhead(args.size, args.steps),
             "float32_accuracy": accuracy()}
  worst_ratio = max(v["ratio_vs_constant"] for v in results["overhead"].values())
  worst_err = max(v["max_abs_err"] for k, v in results["float32_accuracy"].items() if isinstance(v, dict))
  worst_us = max(v["overhead_us_per_step"] for v in results["overhead"].values())
  summary = (f"schedules: worst overhead {worst_ratio:.3f}x a constant LR, {worst_us:.1f} us/step ({args.steps} SGD steps on "
             f"{args.size} params); worst float32 abs error vs float64 reference {worst_err:.2e}; SGDR "
             f"restarts to 1e7 max err {results['float32_accuracy']['sgdr_restarts_to_1e7_max_abs_err']:.1e}")
  write_results("schedules", results, summary)


if __name__ == "__main__":
  main()
