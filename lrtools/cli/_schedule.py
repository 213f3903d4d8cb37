"""``lrtools schedule NAME --param value ... [--steps N] [--warmup-steps W] [--log] [--out FILE.png]``.

Evaluates a schedule of the table below on ``0 … N − 1``, prints its first/last/min/max values and plots it.
The schedule's own parameters follow its name as ``--name value`` (or ``--name=value``), checked against the
factory's signature: booleans are exactly ``true``/``false`` (any case), strings (modes, shapes) are taken
as written, everything else is a Python literal (``0.1``, ``[30, 60]``, ``None``). The values are checked by
the factory itself; its ``ValueError`` becomes exit code 2 with its message.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import sys
from typing import Callable, Sequence

import numpy as np

from lrtools import schedules
from lrtools.cli._args import parse_bool, step_count

SCHEDULES: dict[str, Callable] = {
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
    "wsd": schedules.wsd_schedule,
}

# Python's literal syntax fails in all of these ways on arbitrary text (deep nesting included).
_NOT_A_LITERAL = (ValueError, TypeError, SyntaxError, MemoryError, RecursionError)


def _kind(param: inspect.Parameter) -> str:
  """``"bool"``, ``"str"`` or ``"literal"``, from the annotation (a string under postponed annotations)."""
  for kind, cls in (("bool", bool), ("str", str)):
    if param.annotation in (cls, cls.__name__) or type(param.default) is cls:
      return kind
  return "literal"


def _parse_value(option: str, param: inspect.Parameter, raw: str, parser: argparse.ArgumentParser):
  kind = _kind(param)
  if kind == "bool":
    try:
      return parse_bool(raw)
    except ValueError as e:
      parser.error(f"{option} {e}")
  if kind == "str":
    return raw
  try:
    return ast.literal_eval(raw)
  except _NOT_A_LITERAL:
    return raw  # not a number: the factory names the argument and the value in its ValueError


def parse_params(tokens: Sequence[str], factory: Callable, parser: argparse.ArgumentParser) -> dict:
  """``["--max-value", "0.1", "--milestones", "[10,20]"]`` -> ``{"max_value": 0.1, "milestones": [10, 20]}``.

  A token that is not a ``--name value`` pair, a name the factory does not take, a name given twice or a
  boolean that is not true/false is a usage error (``parser.error``: exit code 2).
  """
  accepted = inspect.signature(factory).parameters
  tokens = [part for token in tokens for part in (token.split("=", 1) if token.startswith("--") else [token])]
  params, i = {}, 0
  while i < len(tokens):
    option = tokens[i]
    if not option.startswith("--") or i + 1 >= len(tokens):
      parser.error(f"expected '--name value' pairs, got {option!r}")
    name = option[2:].replace("-", "_")
    if name not in accepted:
      parser.error(f"{factory.__name__} has no parameter {name!r}; it takes {', '.join(accepted)}")
    if name in params:
      parser.error(f"{option} is given twice")
    params[name] = _parse_value(option, accepted[name], tokens[i + 1], parser)
    i += 2
  return params


def check_required(factory: Callable, params: dict, parser: argparse.ArgumentParser) -> None:
  """A usage error (exit code 2) naming the options of ``factory``'s required parameters not given."""
  missing = [f"--{name.replace('_', '-')}" for name, p in inspect.signature(factory).parameters.items()
             if p.default is inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD and name not in params]
  if missing:
    parser.error(f"{factory.__name__} needs {', '.join(missing)}")


def run(args: argparse.Namespace, extra: Sequence[str]) -> int:
  factory = SCHEDULES[args.name]
  params = parse_params(extra, factory, args.parser)
  warmup = args.warmup_steps
  if warmup is not None and "warmup_steps" in inspect.signature(factory).parameters:
    # wsd has a warmup of its own: --warmup-steps is its parameter, not a second ramp in front of it.
    if "warmup_steps" in params:
      args.parser.error("--warmup-steps is given twice")
    params["warmup_steps"], warmup = warmup, None
  check_required(factory, params, args.parser)
  try:  # every check happens here, at construction; an error while evaluating would be a bug, shown as one
    sched = factory(**params)
    if warmup:
      sched = schedules.warmup_schedule(sched, warmup)
  except (TypeError, ValueError) as e:  # a missing or invalid parameter: the message names it
    print(f"lrtools schedule: {e}", file=sys.stderr)
    return 2
  values = np.asarray(sched(np.arange(args.steps, dtype=np.int32)))  # int32: optax's step counts
  print(f"{args.name}: {args.steps} steps")
  print(f"  first {values[0]:.6g}   last {values[-1]:.6g}")
  print(f"  min   {values.min():.6g} (step {int(values.argmin())})   max {values.max():.6g} "
        f"(step {int(values.argmax())})")
  if args.out:
    from matplotlib.figure import Figure  # not pyplot: no GUI backend, no figure kept open after the call

    from lrtools.plotting import plot_schedule
    fig = Figure(figsize=(7, 4), layout="constrained")
    plot_schedule(sched, args.steps, ax=fig.add_subplot(), label=args.name, log=args.log)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")
  return 0


def add_parser(commands) -> None:
  parser = commands.add_parser(
      "schedule", help="evaluate and plot a schedule", allow_abbrev=False,  # never eat a schedule parameter
      description="Evaluates a schedule; its parameters follow as --name value (e.g. --max-value 0.1). "
      "Booleans are true or false; strings are taken as written; other values are Python literals "
      "(0.1, [30, 60], None).",
      epilog="example: lrtools schedule sgdr --max-value 0.1 --cycle-steps 100 --cycle-mult 2 --steps 700 "
      "--out sgdr.png")
  parser.add_argument("name", choices=sorted(SCHEDULES))
  parser.add_argument("--steps", type=step_count, default=1000, help="number of steps to evaluate (default 1000)")
  parser.add_argument("--warmup-steps", type=int, default=None,
                      help="prepend a linear warmup of this many steps (wsd: its own warmup_steps)")
  parser.add_argument("--log", action="store_true", help="log-scaled y axis")
  parser.add_argument("--out", help="write the plot to this PNG file")
  parser.set_defaults(run=run, parser=parser, takes_extra=True)
