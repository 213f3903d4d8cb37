"""Plot of a schedule's values over steps."""

from __future__ import annotations

import numpy as np

from lrtools._typing import Schedule, check_callable, check_flag, check_integer, concrete, fail
from lrtools.plotting._axes import get_axes

_CALL = "plot_schedule"


def plot_schedule(schedule: Schedule, num_steps: int, ax=None, label: str | None = None, log: bool = False):
  r"""Plots ``schedule(t)`` for ``t = 0 … num_steps − 1``.

  .. math:: \{(t, \eta_t)\}_{t=0}^{n-1}

  Args:
    schedule: any schedule ``count -> value``.
    num_steps: number of steps to draw, a positive integer that fits int32 (steps are int32 counts, as
      optax's), and concrete: plotting happens on the host.
    ax: a matplotlib Axes to draw on; a new figure's when ``None``.
    label: legend label of the line, a string or ``None``.
    log: ``True`` for a log-scaled y axis (useful for exponential decays and one-cycle's final phase).

  Returns:
    The Axes.

  Example:
    >>> import lrtools as lrt
    >>> ax = lrt.plotting.plot_schedule(lrt.sgdr_schedule(0.1, 100, 2.0), 700, label="SGDR")
    >>> ax.get_lines()[0].get_ydata().shape
    (700,)

  References:
    Loshchilov & Hutter 2017 (fig. 1 draws schedules this way); Smith 2017.
  """
  check_callable(_CALL, "schedule", schedule)
  check_integer(_CALL, "num_steps", num_steps, 1)
  if concrete(num_steps) is None:
    fail(_CALL, "num_steps", num_steps, "must be concrete, not traced (plots are drawn on the host)")
  if ax is not None and not hasattr(ax, "plot"):
    fail(_CALL, "ax", ax, "must be a matplotlib Axes or None")
  if label is not None and not isinstance(label, str):
    fail(_CALL, "label", label, "must be a string or None")
  check_flag(_CALL, "log", log)
  steps = np.arange(int(num_steps), dtype=np.int32)  # int32 counts, as optax's
  values = np.asarray(schedule(steps))
  ax = get_axes(ax)
  ax.plot(steps, values, label=label)
  ax.set_xlabel("step")
  ax.set_ylabel("value")
  if log:
    ax.set_yscale("log")
  if label is not None:
    ax.legend()
  ax.grid(True, alpha=0.3)
  return ax
