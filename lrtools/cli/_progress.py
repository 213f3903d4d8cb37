"""Progress on stderr shared by the commands: stage lines with the elapsed time, and a bar (tqdm if installed)."""

from __future__ import annotations

import sys
import time


class Progress:
  """``stage(text)`` prints ``[  1.2s] text``; calling it with ``(done, total)`` moves a bar of ``unit``\\ s.

  Args:
    quiet: print nothing.
    unit: what the bar counts (``"step"``, ``"trial"``, ``"epoch"``).
    first: a stage line printed when the bar first appears (``find-lr``: the program has compiled).
  """

  def __init__(self, quiet: bool, unit: str, first: str | None = None):
    self.quiet, self.unit, self.first = quiet, unit, first
    self.bar, self.start = None, time.perf_counter()

  def stage(self, text: str) -> None:
    if not self.quiet:
      print(f"[{time.perf_counter() - self.start:5.1f}s] {text}", file=sys.stderr, flush=True)

  def __call__(self, done, total, text: str | None = None) -> None:
    """Moves the bar to ``done`` of ``total`` (from the host, after each chunk), showing ``text`` beside it."""
    if self.quiet:
      return
    done, total = int(done), int(total)
    if self.bar is None:
      if self.first:
        self.stage(self.first)
      try:
        from tqdm import tqdm
        self.bar = tqdm(total=total, unit=self.unit, file=sys.stderr, leave=False)
      except ImportError:
        self.bar = False
    if self.bar:
      if text:
        self.bar.set_postfix_str(text)
      self.bar.update(max(done - self.bar.n, 0))
    else:
      self.stage(f"{done}/{total} {self.unit}s" + (f"  {text}" if text else ""))

  def close(self) -> None:
    if self.bar:
      self.bar.close()
