"""Command-line front end: ``lrtools schedule NAME --param value ... --steps N --out FILE.png``."""

from __future__ import annotations

import argparse
import ast
import inspect
import sys
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


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="lrtools", description="The learning-rate toolbox for JAX/Optax.")
  commands = parser.add_subparsers(dest="command", required=True)
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
