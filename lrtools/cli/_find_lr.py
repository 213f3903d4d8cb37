"""``lrtools find-lr [--model mlp|cnn] [--optimizer momentum] [--start 1e-7 --end 10 --steps 100] --out FILE.png``.

Runs the LR range test on an embedded dataset with a default model, prints the three suggestions and plots
the curve (drawn by a worker process, :mod:`lrtools.cli._plot_worker`, that imports matplotlib meanwhile).

Compile time dominates a one-shot run, so by default (run as a program) JAX's persistent compilation cache
lives in ``$XDG_CACHE_HOME/lrtools/jax`` (``~/.cache/lrtools/jax``; ``--cache-dir DIR`` elsewhere,
``--no-cache`` none): a second run of the same command skips compiling. The progress bar is fed from the host
between chunks of steps, so the cached programs hold no host callback (which JAX would refuse to cache).
``--compile auto`` (default) compiles the MLP at XLA CPU optimisation level 0 and the CNN fully; measured cold
(no cache) on a shared 2-core CPU, level 0 halves the MLP's run (9.6 → 4.6 s) and makes the CNN's 5–6x
slower (8 → 48 s), the CNN's 5 repeats with adam 33 s fully compiled vs over 125 s at level 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

import numpy as np

from lrtools.cli import _plot_worker
from lrtools.cli._progress import Progress
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


def default_cache_dir() -> str:
  """``$XDG_CACHE_HOME/lrtools/jax`` (``~/.cache/lrtools/jax`` without the variable): where ``find-lr`` keeps
  JAX's persistent compilation cache unless told ``--cache-dir DIR`` or ``--no-cache``."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "lrtools", "jax")


def _enable_compilation_cache(path: str) -> bool:
  """Keeps JAX's persistent compilation cache in ``path`` so that a second run skips compiling; ``False``
  (and no cache) when the directory cannot be created: a read-only home must not stop the command."""
  import jax
  try:
    os.makedirs(path, exist_ok=True)
  except OSError:
    return False
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return True


def run(args: argparse.Namespace, extra: Sequence[str]) -> int:
  if args.dataset == "fashion-mnist" and args.data_path is None:
    args.parser.error("--dataset fashion-mnist needs --data-path (local files: lrtools never downloads)")
  worker = _plot_worker.start() if args.out else None  # first: it imports matplotlib while we compile
  try:
    return _find_lr(args, worker)
  finally:
    _plot_worker.stop(worker)


def _find_lr(args: argparse.Namespace, worker) -> int:
  progress = Progress(args.quiet, "step", first="compiled; sweeping")
  fast = args.compile == "fast" or (args.compile == "auto" and args.model == "mlp")
  if fast and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    # Read when the backend starts (below). Measured cold on 2 cores: the MLP's one-shot run is about twice
    # as fast (its sweep is tiny, compiling dominates); the CNN's sweep runs about 10x slower unoptimised
    # (its convolutions' fusions), so "auto" compiles it fully. XLA_FLAGS set by the user win.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
                               " --xla_llvm_disable_expensive_passes=true").strip()
  if args.cache and (args.cache_dir or getattr(args, "as_program", False)):
    _enable_compilation_cache(args.cache_dir or default_cache_dir())
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
        # Reported from the host between chunks of steps: the programs hold no host callback, so the
        # persistent cache keeps them.
        progress=None if args.quiet else progress, chunk_size=max(1, args.steps // 20),
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
  if warning := result.agreement()["warning"]:
    print(f"  warning: {warning}")
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
  find.add_argument("--cache-dir", help="where to keep JAX's persistent compilation cache, so that a second "
                    "run skips compiling (default: on, in $XDG_CACHE_HOME/lrtools/jax, i.e. "
                    "~/.cache/lrtools/jax)")
  find.add_argument("--no-cache", dest="cache", action="store_false",
                    help="no persistent compilation cache (compile everything, write nothing)")
  find.add_argument("--compile", choices=("auto", "fast", "full"), default="auto",
                    help="XLA CPU optimisation: fast (level 0: quicker to compile, slower to run), full, or "
                    "auto (default: fast for the mlp, whose sweep is tiny; full for the cnn)")
  find.add_argument("--json", help="also write the curve and the suggestions to this JSON file")
  find.add_argument("--quiet", action="store_true", help="no progress output")
  find.add_argument("--out", help="write the plot to this PNG file")
  find.set_defaults(run=run, parser=find, takes_extra=False)


def _count(reasons) -> list[tuple[str, int]]:
  """Distinct stop reasons with how many sweeps gave each, in first-seen order."""
  return [(r, reasons.count(r)) for r in dict.fromkeys(reasons)]
