"""``lrtools find-lr [--model mlp|cnn] [--optimizer momentum] [--start 1e-7 --end 10 --steps 100] --out FILE.png``.

Runs the LR range test on an embedded dataset with a default model, prints the three suggestions and plots
the curve (drawn by a worker process, :mod:`lrtools.cli._plot_worker`, that imports matplotlib meanwhile).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Sequence

import numpy as np

from lrtools.cli import _plot_worker
from lrtools.cli._args import step_count

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "yogi")


def _optimizer_factory(name: str, momentum: float):
  """``learning_rate -> GradientTransformation`` for ``--optimizer``."""
  from lrtools import optimizers
  if name in ("momentum", "nesterov"):
    return lambda lr: getattr(optimizers, name)(lr, momentum)
  if name in ("adam", "yogi"):
    return lambda lr: getattr(optimizers, name)(lr, b1=momentum)
  return getattr(optimizers, name)


def _enable_compilation_cache(path: str) -> None:
  """Keeps JAX's persistent compilation cache in ``path`` so that a second run skips compiling."""
  import jax
  os.makedirs(path, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


class _Progress:
  """Stage timings on stderr, and a bar over the sweep's steps (tqdm if installed)."""

  def __init__(self, quiet: bool):
    self.quiet, self.bar, self.start = quiet, None, time.perf_counter()

  def stage(self, text: str) -> None:
    if not self.quiet:
      print(f"[{time.perf_counter() - self.start:5.1f}s] {text}", file=sys.stderr, flush=True)

  def __call__(self, done, total) -> None:  # called from inside the compiled loop
    if self.quiet:
      return
    done, total = int(done), int(total)
    if self.bar is None:
      self.stage("compiled; sweeping")
      try:
        from tqdm import tqdm
        self.bar = tqdm(total=total, unit="step", file=sys.stderr, leave=False)
      except ImportError:
        self.bar = False
    if self.bar:
      self.bar.update(max(done - self.bar.n, 0))

  def close(self) -> None:
    if self.bar:
      self.bar.close()


def run(args: argparse.Namespace, extra: Sequence[str]) -> int:
  if args.dataset == "fashion-mnist" and args.data_path is None:
    args.parser.error("--dataset fashion-mnist needs --data-path (local files: lrtools never downloads)")
  worker = _plot_worker.start() if args.out else None  # first: it imports matplotlib while we compile
  try:
    return _find_lr(args, worker)
  finally:
    _plot_worker.stop(worker)


def _find_lr(args: argparse.Namespace, worker) -> int:
  progress = _Progress(args.quiet)
  if args.fast_compile and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    # Read when the backend starts (below): the sweep is tiny, so compile time dominates a one-shot run.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
                               " --xla_llvm_disable_expensive_passes=true").strip()
  if args.cache_dir:
    _enable_compilation_cache(args.cache_dir)
  import jax

  from lrtools import data, finder, models
  progress.stage(f"loading {args.dataset}")
  flat = args.model == "mlp"
  try:
    if args.dataset == "digits":
      dataset = data.load_digits(seed=args.seed, flat=flat)
    else:
      dataset = data.load_fashion_mnist(args.data_path, flat=flat)
    model = models.classifier(args.model, dataset.num_classes)
    train = data.batches(dataset.x_train, dataset.y_train, args.batch_size, args.steps, args.seed)
    params = models.init_params_host(model, args.seed, dataset.x_train)
    loss = models.cross_entropy_loss(model)
    validation = {"x": dataset.x_valid, "y": dataset.y_valid} if args.validation else None
    progress.stage(f"compiling the sweep ({args.model}, {args.optimizer}, {args.steps} steps"
                   f"{f', {args.repeats} repeats' if args.repeats > 1 else ''})")
    result = finder.lr_range_test(
        loss, params, _optimizer_factory(args.optimizer, args.momentum), train, start_lr=args.start,
        end_lr=args.end, num_steps=args.steps, mode=args.mode, smoothing=args.smoothing,
        diverge_threshold=args.diverge_threshold, num_repeats=args.repeats, key=jax.random.key(args.seed),
        validation_batch=validation,
        # A program with a host callback is never written to the persistent cache: no live bar with it.
        progress=None if args.cache_dir or args.quiet else progress,
        init_fn=(lambda k: models.init_params(model, k, dataset.x_train)) if args.repeats > 1 else None)
  except (ValueError, FileNotFoundError, ImportError) as e:
    progress.close()
    print(f"lrtools find-lr: {e}", file=sys.stderr)
    return 2
  progress.close()
  progress.stage("swept; computing the suggestions")
  run = result.num_steps_run if args.repeats == 1 else int(max(result.num_steps_run))
  reasons = (result.stop_reason,) if args.repeats == 1 else result.stop_reason
  stopped = "; ".join(f"{n} {r}" if args.repeats > 1 else r for r, n in _count(reasons))
  print(f"range test on {dataset.name}: {args.model}, {args.optimizer}, lr {args.start:g} -> {args.end:g}, "
        f"{run}/{args.steps} steps ({stopped})")
  suggestions = {method: lr for method, (lr, _) in result.suggestions().items()}
  for method in ("steepest", "minimum", "valley"):
    line = f"  {method:<9} {suggestions[method]:.3g}"
    if args.repeats > 1:
      spread = result.suggestion_spread(method)
      line += f"   (over {args.repeats} seeds: {spread['min']:.3g} .. {spread['max']:.3g})"
    print(line)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"suggestions": suggestions, "lrs": result.lrs.tolist(),
                 "smoothed_losses": np.atleast_2d(result.smoothed_losses).tolist(),
                 "num_steps_run": np.atleast_1d(result.num_steps_run).tolist()}, f, allow_nan=True)
  if args.out:
    progress.stage("plotting")
    title = f"LR range test: {args.model} on {dataset.name}, {args.optimizer}"
    _plot_worker.draw(result, args.out, title, worker)
    print(f"wrote {args.out}")
  progress.stage("done")
  return 0


def add_parser(commands) -> None:
  find = commands.add_parser("find-lr", help="run the LR range test on an embedded dataset",
                             description="The LR range test (Smith 2017) on an embedded dataset with a "
                             "default model; prints the suggestions and plots the curve.")
  find.add_argument("--dataset", choices=("digits", "fashion-mnist"), default="digits")
  find.add_argument("--data-path", help="Fashion-MNIST IDX directory or .npz (local files only)")
  find.add_argument("--model", choices=("mlp", "cnn"), default="mlp", help="mlp: 64-128-128-10 (default)")
  find.add_argument("--optimizer", choices=OPTIMIZERS, default="momentum")
  find.add_argument("--momentum", type=float, default=0.9, help="momentum, or b1 of adam/yogi (default 0.9)")
  find.add_argument("--start", type=float, default=1e-7, help="first learning rate (default 1e-7)")
  find.add_argument("--end", type=float, default=10.0, help="last learning rate (default 10)")
  find.add_argument("--steps", type=step_count, default=100, help="number of steps (default 100)")
  find.add_argument("--mode", choices=("exponential", "linear"), default="exponential")
  find.add_argument("--batch-size", type=int, default=64)
  find.add_argument("--smoothing", type=float, default=0.05)
  find.add_argument("--diverge-threshold", type=float, default=5.0)
  find.add_argument("--repeats", type=int, default=1, help="sweeps with different seeds, in one vmapped call")
  find.add_argument("--validation", action="store_true", help="record the validation loss after each step")
  find.add_argument("--seed", type=int, default=0)
  find.add_argument("--cache-dir", help="keep JAX's persistent compilation cache here (a second run skips "
                    "compiling)")
  find.add_argument("--no-fast-compile", dest="fast_compile", action="store_false",
                    help="compile with XLA's full CPU optimisation (by default the CLI trades the speed of "
                    "the tiny sweep for a faster compile)")
  find.add_argument("--json", help="also write the curve and the suggestions to this JSON file")
  find.add_argument("--quiet", action="store_true", help="no progress output")
  find.add_argument("--out", help="write the plot to this PNG file")
  find.set_defaults(run=run, parser=find, takes_extra=False)


def _count(reasons) -> list[tuple[str, int]]:
  """Distinct stop reasons with how many sweeps gave each, in first-seen order."""
  return [(r, reasons.count(r)) for r in dict.fromkeys(reasons)]
