"""One optimizer step (update + apply, jitted, buffers donated) of each lrtools optimizer against its optax
analogue, on 10M float32 parameters as one flat array and as a 50-leaf tree, side by side in one run.

Reports the time ratio lrtools/optax (goal <= 1.0) and the effective bandwidth, against an in-place axpy
(``y ← a·x + y``, y donated) measured in the same run. Bytes per step count what a fused step must move:
parameters read and written, gradients read, each state buffer read and written.

    python benchmarks/bench_optimizers.py [--size 10000000] [--leaves 50] [--rounds 5] [--only adam sgd]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import time_fn, write_results  # noqa: E402

from lrtools import optimizers as lo  # noqa: E402

# name -> (lrtools optimizer, optax analogue, number of per-parameter state buffers)
PAIRS = {
    "sgd": (lambda: lo.sgd(1e-3), lambda: optax.sgd(1e-3), 0),
    "momentum": (lambda: lo.momentum(1e-3, 0.9), lambda: optax.sgd(1e-3, 0.9), 1),
    "nesterov": (lambda: lo.nesterov(1e-3, 0.9), lambda: optax.sgd(1e-3, 0.9, nesterov=True), 1),
    "adagrad": (lambda: lo.adagrad(1e-2), lambda: optax.adagrad(1e-2), 1),
    "rmsprop": (lambda: lo.rmsprop(1e-3), lambda: optax.rmsprop(1e-3, eps_in_sqrt=False), 1),
    "adadelta": (lambda: lo.adadelta(), lambda: optax.adadelta(1.0), 2),
    "adam": (lambda: lo.adam(1e-3), lambda: optax.adam(1e-3), 2),
    "yogi": (lambda: lo.yogi(1e-3), lambda: optax.yogi(1e-3), 2),
}


def make_tree(size: int, leaves: int, key: jax.Array) -> dict:
  if leaves == 1:
    return {"w": jax.random.normal(key, (size,), jnp.float32)}
  keys = jax.random.split(key, leaves)
  return {f"layer_{i:02d}": jax.random.normal(k, (size // leaves,), jnp.float32) for i, k in enumerate(keys)}


def prepare_step(opt: optax.GradientTransformation, params, grads):
  """A warmed ``call()`` running one donated, jitted step on its own copy of the parameters."""
  step_fn = jax.jit(lambda p, s, g: _apply(opt, p, s, g), donate_argnums=(0, 1))
  params = jax.tree.map(jnp.copy, params)
  holder = [params, opt.init(params)]

  def call():
    holder[0], holder[1] = step_fn(holder[0], holder[1], grads)
    return holder[0]

  time_fn(call, warmup=2, repeats=1)
  return call


def _apply(opt, params, state, grads):
  updates, state = opt.update(grads, state, params)
  return optax.apply_updates(params, updates), state


def prepare_axpy(x: jax.Array):
  axpy = jax.jit(lambda y, x: 0.5 * x + y, donate_argnums=0)
  holder = [jnp.copy(x)]

  def call():
    holder[0] = axpy(holder[0], x)
    return holder[0]

  time_fn(call, warmup=2, repeats=1)
  return call


def interleaved(calls: dict, rounds: int, repeats: int) -> dict:
  """Best over ``rounds`` of the median of ``repeats`` calls, alternating the contenders every round so
  that load from other processes (shared CI machines) hits them alike."""
  best = {k: float("inf") for k in calls}
  for _ in range(rounds):
    for k, call in calls.items():
      best[k] = min(best[k], time_fn(call, warmup=0, repeats=repeats)["median_s"])
  return best


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", type=int, default=10_000_000)
  parser.add_argument("--leaves", type=int, default=50)
  parser.add_argument("--repeats", type=int, default=3, help="calls per timing sample")
  parser.add_argument("--rounds", type=int, default=5, help="interleaved samples per contender")
  parser.add_argument("--only", nargs="*", default=list(PAIRS))
  args = parser.parse_args()

  nbytes = 4 * args.size  # one float32 buffer
  axpy = prepare_axpy(jax.random.normal(jax.random.PRNGKey(0), (args.size,), jnp.float32))
  results = {"size": args.size, "leaves": args.leaves, "optimizers": {}}
  ratios, axpy_samples = [], []
  for layout, leaves in (("flat", 1), ("tree", args.leaves)):
    params = make_tree(args.size, leaves, jax.random.PRNGKey(1))
    grads = make_tree(args.size, leaves, jax.random.PRNGKey(2))
    for name in args.only:
      ours_fn, theirs_fn, buffers = PAIRS[name]
      calls = {"lrtools": prepare_step(ours_fn(), params, grads),
               "optax": prepare_step(theirs_fn(), params, grads), "axpy": axpy}
      best = interleaved(calls, args.rounds, args.repeats)
      del calls
      axpy_gbs = 3 * nbytes / best["axpy"] / 1e9
      axpy_samples.append(axpy_gbs)
      moved = (3 + 2 * buffers) * nbytes
      ours, theirs = best["lrtools"], best["optax"]
      entry = {"lrtools_s": ours, "optax_s": theirs, "ratio": ours / theirs,
               "lrtools_gb_per_s": moved / ours / 1e9, "optax_gb_per_s": moved / theirs / 1e9,
               "axpy_gb_per_s": axpy_gbs, "lrtools_fraction_of_axpy": moved / ours / 1e9 / axpy_gbs}
      results["optimizers"][f"{name}/{layout}"] = entry
      ratios.append(entry["ratio"])
      print(f"{name:>9}/{layout:<4}  lrtools {ours * 1e3:7.2f} ms  optax {theirs * 1e3:7.2f} ms  "
            f"ratio {entry['ratio']:.3f}  {entry['lrtools_gb_per_s']:5.1f} GB/s "
            f"({entry['lrtools_fraction_of_axpy']:.0%} of axpy's {axpy_gbs:.1f})", flush=True)
    del params, grads
  axpy_gbs = max(axpy_samples)
  results["axpy"] = {"gb_per_s": axpy_gbs, "samples_gb_per_s": axpy_samples}
  worst = max(ratios)
  geo = float(jnp.exp(jnp.mean(jnp.log(jnp.asarray(ratios)))))
  results["summary"] = {"max_ratio": worst, "geomean_ratio": geo}
  summary = (f"bench_optimizers: {args.size / 1e6:g}M float32 params ({jax.default_backend()}), "
             f"lrtools/optax time ratio geomean {geo:.3f}, max {worst:.3f}; axpy {axpy_gbs:.1f} GB/s")
  write_results("bench_optimizers", results, summary)


if __name__ == "__main__":
  main()
