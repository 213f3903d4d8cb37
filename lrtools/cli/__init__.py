"""Command-line front end, one module per command (the console script ``lrtools`` runs :func:`main`).

- ``lrtools find-lr ... --out FILE.png`` (:mod:`lrtools.cli._find_lr`): the LR range test on an embedded
  dataset; prints the suggestions and plots the curve.
- ``lrtools schedule NAME --param value ... --out FILE.png`` (:mod:`lrtools.cli._schedule`): evaluates and
  plots a schedule.

Each command module has ``add_parser(commands)``, which adds its subparser and sets ``run(args, extra)``.
Usage errors and invalid values exit with code 2 and a message naming the option and the value.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from lrtools.cli import _find_lr, _schedule, _search, _train

COMMANDS = (_find_lr, _schedule, _search, _train)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="lrtools", description="The learning-rate toolbox for JAX/Optax.")
  commands = parser.add_subparsers(dest="command", required=True)
  for command in COMMANDS:
    command.add_parser(commands)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  """Runs ``lrtools COMMAND ...`` (``argv`` defaults to ``sys.argv[1:]``); returns the exit code.

  Run as a program (``argv`` not given: the console script, ``python -m lrtools.cli``), ``find-lr`` keeps
  JAX's persistent compilation cache in the user's cache directory by default; called from Python with an
  ``argv``, it changes the calling process's JAX configuration only when told ``--cache-dir``."""
  parser = build_parser()
  args, extra = parser.parse_known_args(argv)
  args.as_program = argv is None
  if extra and not args.takes_extra:
    args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
  return args.run(args, extra)
