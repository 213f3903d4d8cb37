"""Plot of a loss-landscape slice: a curve for one direction, filled contours for two."""

from __future__ import annotations

import numpy as np

from lrtools.plotting._axes import get_axes


def _fail(name: str, value, requirement: str) -> None:
  from lrtools._typing import fail
  fail("plot_landscape", name, value, requirement)


def plot_landscape(result, ax=None, *, log: bool = False, levels: int = 20):
  r"""Draws a :class:`~lrtools.diagnostics.LandscapeResult`: :math:`f(\alpha)` as a curve, or
  :math:`f(\alpha, \beta)` as filled contours with the centre marked; the title gives the sharpness.

  .. math:: f(\alpha, \beta) = L(\theta + \alpha\,\delta + \beta\,\eta)

  Non-finite losses are left blank (gaps in the curve, holes in the contours).

  Args:
    result: the result of ``lrtools.diagnostics.loss_landscape``.
    ax: a matplotlib Axes; a new figure's when ``None``.
    log: log-scaled loss (y axis of a curve; contour levels spaced in :math:`\log_{10} f`).
    levels: number of contour levels (2-D).

  Returns:
    The Axes.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from matplotlib.figure import Figure
    >>> from lrtools.diagnostics import loss_landscape
    >>> from lrtools.plotting import plot_landscape
    >>> r = loss_landscape(lambda p, b: jnp.sum(p["w"] ** 2), {"w": jnp.ones((2, 2))}, None,
    ...                    key=jax.random.key(0), directions=2, num_points=5)
    >>> plot_landscape(r, Figure().add_subplot()).get_xlabel()
    'α (filter-normalized direction 1)'

  References:
    Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets" (1-D curves, 2-D contour plots).
  """
  fields = ("alphas", "betas", "losses", "center_loss", "sharpness")
  if not all(hasattr(result, f) for f in fields):
    _fail("result", type(result).__name__, "must be a LandscapeResult (from loss_landscape)")
  if ax is not None and not hasattr(ax, "plot"):
    _fail("ax", ax, "must be a matplotlib Axes or None")
  if not isinstance(log, (bool, np.bool_)):
    _fail("log", log, "must be True or False")
  if isinstance(levels, (bool, np.bool_)) or not isinstance(levels, (int, np.integer)) or levels < 2:
    _fail("levels", levels, "must be an integer >= 2")
  ax = get_axes(ax)
  alphas = np.asarray(result.alphas, np.float64)
  losses = np.asarray(result.losses, np.float64)
  losses = np.where(np.isfinite(losses), losses, np.nan)
  center = float(np.asarray(result.center_loss))
  if result.betas is None:
    ax.plot(alphas, losses, color="tab:blue")
    ax.plot([0.0], [center], "o", color="tab:red", label=f"centre ({center:.4g})")
    ax.set_ylabel("loss")
    if log and np.any(losses > 0):
      ax.set_yscale("log")
    ax.legend(fontsize=8)
  else:
    betas = np.asarray(result.betas, np.float64)
    z = np.log10(np.where(losses > 0, losses, np.nan)) if log else losses
    if np.any(np.isfinite(z)):
      lo, hi = np.nanmin(z), np.nanmax(z)
      bounds = np.linspace(lo, hi if hi > lo else lo + 1.0, int(levels))
      filled = ax.contourf(alphas, betas, z.T, levels=bounds, cmap="viridis")  # losses are [alpha, beta]
      ax.contour(alphas, betas, z.T, levels=bounds, colors="white", linewidths=0.4)
      ax.figure.colorbar(filled, ax=ax, label="log10 loss" if log else "loss")
    ax.plot([0.0], [0.0], "*", color="tab:red", ms=10, label=f"centre ({center:.4g})")
    ax.set_ylabel("β (filter-normalized direction 2)")
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="upper right")
  ax.set_xlabel("α (filter-normalized direction 1)")
  ax.set_title(f"loss landscape (sharpness {float(np.asarray(result.sharpness)):.4g})")
  return ax
