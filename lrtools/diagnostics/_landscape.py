"""1-D and 2-D slices of the loss along filter-normalized random directions (Li et al. 2018), and a
sharpness number to compare minima (the flat-vs-sharp argument behind SGDR and snapshot ensembles)."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrtools._typing import check_callable, check_integer, check_one_of, check_positive, fail

_CALL = "loss_landscape"


class LandscapeResult(NamedTuple):
  """A slice of the loss around ``params``.

  Attributes:
    alphas: ``(num_points,)`` coefficients along the first direction, :math:`-r … r`.
    betas: ``(num_points,)`` coefficients along the second direction (2-D slices), else ``None``.
    losses: ``(num_points,)``, or ``(num_points, num_points)`` indexed ``[alpha, beta]``; NaN/inf as computed.
    center_loss: the loss at ``params`` itself.
    sharpness: the mean loss increase over the grid points within distance ``radius`` of the centre,
      :math:`\\overline{L(\\alpha, \\beta) - L(0, 0)}`; ``inf`` when a loss there is NaN or inf.
    directions: the direction pytrees (like ``params``), one per axis.
  """
  alphas: jax.Array
  betas: jax.Array | None
  losses: jax.Array
  center_loss: jax.Array
  sharpness: jax.Array
  directions: tuple


def _is_key(key: Any) -> bool:
  typed = jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key) and jnp.shape(key) == ()
  return typed or (getattr(key, "dtype", None) == jnp.uint32 and jnp.shape(key) == (2,))


def _direction(key: jax.Array, params: Any, normalization: str) -> Any:
  """A Gaussian direction, filter-normalized: each filter (the slice of a leaf along its last, output axis:
  a conv filter or the input weights of one neuron) rescaled to the norm of the same filter of ``params``;
  biases and other leaves of rank ≤ 1 (BatchNorm scales) get zero, as in the paper's code (``biasbn``)."""
  leaves, treedef = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(key, max(len(leaves), 1))
  out = []
  for k, p in zip(keys, leaves):
    p = jnp.asarray(p)
    if not jnp.issubdtype(p.dtype, jnp.floating):
      out.append(jnp.zeros(p.shape, p.dtype))
      continue
    d = jax.random.normal(k, p.shape, p.dtype)
    if normalization == "filter":
      if p.ndim <= 1:
        d = jnp.zeros_like(p)
      else:
        axes = tuple(range(p.ndim - 1))
        p_norm = jnp.sqrt(jnp.sum(p * p, axis=axes, keepdims=True))
        d_norm = jnp.sqrt(jnp.sum(d * d, axis=axes, keepdims=True))
        d = jnp.where(d_norm > 0, d * (p_norm / jnp.where(d_norm > 0, d_norm, jnp.ones((), p.dtype))),
                      jnp.zeros((), p.dtype))
    out.append(d)
  return jax.tree_util.tree_unflatten(treedef, out)


def loss_landscape(loss_fn: Callable, params: Any, batch: Any, *, key: jax.Array, directions: int = 1,
                   num_points: int = 21, radius: float = 1.0, normalization: str = "filter",
                   chunk_size: int | None = None) -> LandscapeResult:
  r"""The loss along one or two random directions through ``params``, and a sharpness number.

  .. math::
     f(\alpha, \beta) = L(\theta + \alpha\,\delta + \beta\,\eta),\qquad
     \delta_{i,j} \leftarrow \frac{\delta_{i,j}}{\lVert\delta_{i,j}\rVert}\,\lVert\theta_{i,j}\rVert

  with :math:`\delta, \eta \sim \mathcal N(0, I)` drawn from ``key`` and filter-normalized (filter
  :math:`j` of layer :math:`i` is the slice along a kernel's last axis; biases and rank-≤1 leaves are not
  perturbed), which makes slices of differently scaled networks comparable. The grid
  :math:`\alpha, \beta \in \text{linspace}(-r, r, n)` is evaluated with ``jax.vmap``, ``chunk_size``
  points at a time (``lax.map``). ``sharpness`` is the mean of :math:`f - f(0)` over the grid points within
  distance :math:`r` of the centre: for a quadratic minimum, :math:`\tfrac12\,\delta^\top H \delta\cdot
  \overline{\alpha^2}`, so a sharper minimum scores higher. Non-finite losses are kept in ``losses`` and make
  ``sharpness`` ``inf`` (the slice left the region where the loss is defined).

  Args:
    loss_fn: ``loss_fn(params, batch) -> scalar``, jittable.
    params: the point to slice through (any pytree of float arrays; kernels' last axis is the output axis,
      as in Flax).
    batch: passed to ``loss_fn`` unchanged (use a fixed, large batch: the slice is of that batch's loss).
    key: PRNG key of the directions.
    directions: 1 (a curve) or 2 (a surface).
    num_points: grid points per axis (odd keeps the centre on the grid).
    radius: :math:`r`, the largest coefficient, in units of the filter norms.
    normalization: ``"filter"`` (Li et al.) or ``"none"`` (raw Gaussian directions).
    chunk_size: grid points per ``vmap`` call; ``None``: all at once.

  Returns:
    A :class:`LandscapeResult`; plot it with ``lrtools.plotting.plot_landscape``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from lrtools.diagnostics import loss_landscape
    >>> params = {"w": jnp.ones((3, 2))}  # a minimum of L = ||w - 1||² · c
    >>> flat = loss_landscape(lambda p, b: jnp.sum((p["w"] - 1.0) ** 2), params, None, key=jax.random.key(0))
    >>> sharp = loss_landscape(lambda p, b: 100 * jnp.sum((p["w"] - 1.0) ** 2), params, None, key=jax.random.key(0))
    >>> flat.losses.shape, round(float(sharp.sharpness / flat.sharpness))
    ((21,), 100)

  References:
    Li, Xu, Taylor, Studer & Goldstein 2018, "Visualizing the Loss Landscape of Neural Nets"; Keskar et al.
    2017 (sharp minima generalize worse); Loshchilov & Hutter 2017 (SGDR).
  """
  check_callable(_CALL, "loss_fn", loss_fn)
  if not _is_key(key):
    fail(_CALL, "key", key, "must be one PRNG key (jax.random.key(seed))")
  leaves = jax.tree_util.tree_leaves(params)
  if not leaves or not any(jnp.issubdtype(jnp.asarray(p).dtype, jnp.floating) for p in leaves):
    fail(_CALL, "params", type(params).__name__, "must be a pytree with at least one float array")
  check_integer(_CALL, "directions", directions, 1, 2)
  check_integer(_CALL, "num_points", num_points, 2, 10_000)
  check_positive(_CALL, "radius", radius)
  check_one_of(_CALL, "normalization", normalization, ("filter", "none"))
  if chunk_size is not None:
    check_integer(_CALL, "chunk_size", chunk_size, 1)
  directions, num_points = int(directions), int(num_points)
  dtype = jnp.result_type(*[jnp.asarray(p).dtype for p in leaves if jnp.issubdtype(jnp.asarray(p).dtype, jnp.floating)])
  keys = jax.random.split(key, directions)
  dirs = tuple(_direction(k, params, normalization) for k in keys)
  total = num_points ** directions
  chunk = total if chunk_size is None else min(int(chunk_size), total)

  @jax.jit
  def evaluate(params, batch, dirs, radius):
    axis = jnp.linspace(-1.0, 1.0, num_points, dtype=dtype) * jnp.asarray(radius, dtype)
    grid = jnp.stack([g.reshape(-1) for g in jnp.meshgrid(*([axis] * directions), indexing="ij")], axis=-1)

    def at(coeffs):
      def move(p, *ds):
        if not jnp.issubdtype(p.dtype, jnp.floating):
          return p
        return p + sum(c.astype(p.dtype) * d for c, d in zip(coeffs, ds))
      return jnp.asarray(loss_fn(jax.tree_util.tree_map(move, params, *dirs), batch))

    losses = jax.lax.map(at, grid, batch_size=chunk).reshape((num_points,) * directions)
    center = jnp.asarray(loss_fn(params, batch))
    inside = (jnp.sqrt(jnp.sum(grid * grid, axis=-1)) <= jnp.asarray(radius, dtype) * (1 + 1e-6)).reshape(losses.shape)
    rise = jnp.where(inside, losses - center, jnp.zeros((), losses.dtype))
    finite = jnp.all(jnp.where(inside, jnp.isfinite(losses), True))
    sharp = jnp.sum(rise) / jnp.sum(inside.astype(losses.dtype))
    sharp = jnp.where(finite, sharp, jnp.asarray(jnp.inf, losses.dtype))
    return axis, losses, center, jnp.where(jnp.isfinite(center), sharp, jnp.asarray(jnp.nan, losses.dtype))

  axis, losses, center, sharpness = evaluate(params, batch, dirs, radius)
  return LandscapeResult(axis, axis if directions == 2 else None, losses, center, sharpness, dirs)
