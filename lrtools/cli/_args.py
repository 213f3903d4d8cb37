"""Command-line values parsed strictly: what argparse's ``type=bool`` or a truthiness test would get wrong."""

from __future__ import annotations

import argparse

INT32_MAX = 2**31 - 1  # step counts feed int32 arithmetic (lrtools._typing.INT32_MAX, without importing JAX)


def parse_bool(text: str) -> bool:
  """``true``/``false`` in any case; anything else (``no``, ``0``, ``""``) is an error, never truthy."""
  lowered = text.lower()
  if lowered not in ("true", "false"):
    raise ValueError(f"must be true or false, got {text!r}")
  return lowered == "true"


def step_count(text: str) -> int:
  """An argparse ``type``: a positive integer that fits int32 (``--steps``)."""
  try:
    value = int(text)
  except ValueError:
    value = 0
  if not 1 <= value <= INT32_MAX:
    raise argparse.ArgumentTypeError(f"must be a positive integer that fits int32 (<= 2**31 - 1), got {text!r}")
  return value
