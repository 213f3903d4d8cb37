"""Command-line front end.

``lrtools find-lr [--model mlp|cnn] [--optimizer momentum] [--start 1e-7 --end 10 --steps 100] --out FILE.png``
runs the LR range test on an embedded dataset; ``lrtools schedule NAME --param value ... --out FILE.png``
evaluates and plots a schedule.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import pickle
import subprocess
import sys
import time
from typing import Sequence

import numpy as np

from lrtools import schedules

SCHEDULES = {
    "constant": schedules.constant_schedule,
    "step": schedules.step_decay_schedule,
    "multistep": schedules.multistep_schedule,
    "exponential": schedules.exponential_decay_schedule,
    "inverse_time": schedules.inverse_time_decay_schedule,
    "polynomial": schedules.polynomial_decay_schedule,
    "cosine": schedules.cosine_decay_schedule,
    "cyclical": schedules.cyclical_schedule,
    "cyclical_momentum": schedules.cyclical_momentum_schedule,
    "one_cycle": schedules.one_cycle_schedule,
    "one_cycle_momentum": schedules.one_cycle_momentum_schedule,
    "sgdr": schedules.sgdr_schedule,
}


def _parse_params(tokens: Sequence[str], factory) -> dict:
  """``["--max-value", "0.1", "--milestones", "[10,20]"]`` -> ``{"max_value": 0.1, "milestones": [10, 20]}``."""
  accepted = list(inspect.signature(factory).parameters)
  tokens = [part for token in tokens for part in (token.split("=", 1) if token.startswith("--") else [token])]
  params, i = {}, 0
  while i < len(tokens):
    token = tokens[i]
    if not token.startswith("--") or i + 1 >= len(tokens):
      raise SystemExit(f"lrtools schedule: expected '--name value' pairs, got {token!r}")
    name = token[2:].replace("-", "_")
    if name not in accepted:
      raise SystemExit(f"lrtools schedule: {factory.__name__} has no parameter {name!r}; "
                       f"it takes {', '.join(accepted)}")
    raw = tokens[i + 1]
    try:
      params[name] = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      params[name] = raw  # a string such as a mode name
    i += 2
  return params


def _schedule_command(args, extra: Sequence[str]) -> int:
  factory = SCHEDULES[args.name]
  try:
    sched = factory(**_parse_params(extra, factory))
    if args.warmup_steps:
      sched = schedules.warmup_schedule(sched, args.warmup_steps)
  except (TypeError, ValueError) as e:
    print(f"lrtools schedule: {e}", file=sys.stderr)
    return 2
  values = np.asarray(sched(np.arange(args.steps)))
  print(f"{args.name}: {args.steps} steps")
  print(f"  first {values[0]:.6g}   last {values[-1]:.6g}")
  print(f"  min   {values.min():.6g} (step {int(values.argmin())})   max {values.max():.6g} "
        f"(step {int(values.argmax())})")
  if args.out:
    import matplotlib
    matplotlib.use("Agg")
    from lrtools.plotting import plot_schedule
    ax = plot_schedule(sched, args.steps, label=args.name, log=args.log)
    ax.figure.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
  return 0


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


def _start_plot_worker():
  """A process that imports matplotlib while this one compiles (on a second core), then draws the PNG.

  matplotlib's import and first savefig take ~1.5 s of a ~6 s one-shot run; a thread would not overlap
  them (the GIL), a process does. ``None`` if the worker cannot start (then the plot is drawn here)."""
  try:
    from lrtools.plotting import _range_test
    code = "import runpy, sys; runpy.run_path(sys.argv[1])['serve']()"
    return subprocess.Popen([sys.executable, "-c", code, _range_test.__file__], stdin=subprocess.PIPE)
  except OSError:
    return None


def _plot_range_test(result, path: str, title: str, worker) -> None:
  from lrtools.plotting._range_test import plot_payload
  if worker is not None:
    worker.communicate(pickle.dumps((plot_payload(result), path, title)))
    if worker.returncode == 0:
      return
  from matplotlib.figure import Figure  # not pyplot: no GUI backend to import
  fig = Figure(figsize=(7, 4), layout="constrained")
  ax = result.plot(ax=fig.add_subplot())
  ax.set_title(title)
  fig.savefig(path, dpi=120)


def _find_lr_command(args, extra: Sequence[str]) -> int:
  worker = _start_plot_worker() if args.out else None
  try:
    return _find_lr(args, worker)
  finally:
    if worker is not None and worker.poll() is None:
      worker.stdin.close()  # no plot was sent: let the worker exit
      worker.wait()


def _find_lr(args, worker) -> int:
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
  stopped = "diverged" if (result.diverged if args.repeats == 1 else any(result.diverged)) else "completed"
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
    _plot_range_test(result, args.out, f"LR range test: {args.model} on {dataset.name}, {args.optimizer}", worker)
    print(f"wrote {args.out}")
  progress.stage("done")
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="lrtools", description="The learning-rate toolbox for JAX/Optax.")
  commands = parser.add_subparsers(dest="command", required=True)
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
  find.add_argument("--steps", type=int, default=100, help="number of steps (default 100)")
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
  find.set_defaults(run=_find_lr_command)
  sched = commands.add_parser(
      "schedule", help="evaluate and plot a schedule",
      description="Evaluates a schedule; its parameters follow as --name value (e.g. --max-value 0.1).",
      epilog="example: lrtools schedule sgdr --max-value 0.1 --cycle-steps 100 --cycle-mult 2 --steps 700 "
      "--out sgdr.png")
  sched.add_argument("name", choices=sorted(SCHEDULES))
  sched.add_argument("--steps", type=int, default=1000, help="number of steps to evaluate (default 1000)")
  sched.add_argument("--warmup-steps", type=int, default=0, help="prepend a linear warmup of this many steps")
  sched.add_argument("--log", action="store_true", help="log-scaled y axis")
  sched.add_argument("--out", help="write the plot to this PNG file")
  sched.set_defaults(run=_schedule_command)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  parser = build_parser()
  args, extra = parser.parse_known_args(argv)
  if args.command != "schedule" and extra:
    parser.error(f"unrecognized arguments: {' '.join(extra)}")
  if getattr(args, "steps", 1) < 1:
    parser.error(f"--steps must be positive, got {args.steps}")
  return args.run(args, extra)


if __name__ == "__main__":
  sys.exit(main())
