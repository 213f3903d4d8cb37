"""Plot of a schedule's values over steps."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from lrtools._typing import Schedule, check_callable, check_positive
from lrtools.plotting._axes import get_axes


def plot_schedule(schedule: Schedule, num_steps: int, ax=None, label: str | None = None, log: bool = False):
  r"""Plots ``schedule(t)`` for ``t = 0 … num_steps − 1``.

  .. math:: \{(t, \eta_t)\}_{t=0}^{n-1}

  Args:
    schedule: any schedule ``count -> value``.
    num_steps: number of steps to draw, positive.
    ax: a matplotlib Axes to draw on; a new figure's when ``None``.
    label: legend label of the line.
    log: log-scaled y axis (useful for exponential decays and one-cycle's final phase).

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
  check_callable("plot_schedule", "schedule", schedule)
  check_positive("plot_schedule", "num_steps", num_steps)
  values = np.asarray(schedule(jnp.arange(int(num_steps))))
  ax = get_axes(ax)
  ax.plot(np.arange(int(num_steps)), values, label=label)
  ax.set_xlabel("step")
  ax.set_ylabel("value")
  if log:
    ax.set_yscale("log")
  if label is not None:
    ax.legend()
  ax.grid(True, alpha=0.3)
  return ax
