"""Gradient check: analytic gradients against float64 centred differences on a few coordinates of every leaf.

All perturbed losses (``x ± h`` and ``x ± h/10`` of every checked coordinate) are evaluated by one jitted
float64 program, vectorized with ``jax.vmap``. x64 is enabled for the check only (``jax.enable_x64``) and
under standard dtype promotion (float32 data closed over by ``fn`` meets the float64 copy of the parameters
even in a strict-promotion session); the caller's parameters, dtypes and JAX configuration are unchanged.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrtools._hyperparams import path_name
from lrtools._typing import check_callable, check_integer, check_positive, concrete, fail

_CALL = "grad_check"
CORRECT, SUSPICIOUS, WRONG = 1e-7, 1e-4, 1e-2  # CS231n: happy below 1e-7, uncomfortable 1e-4..1e-2, wrong above
TINY = 1e-10  # gradients below this make relative errors meaningless (CS231n: scale the loss up)
_ROUNDING, _KINK_CENTRED, _KINK_CURVATURE = 4.0, 100.0, 4000.0  # multiples of the rounding unit eps·|f|/h


class GradCheckRow(NamedTuple):
  """The check of one leaf (arrays hold the checked coordinates, in the order of ``indices``).

  Attributes:
    path: the leaf's name (``"Dense_0/kernel"``; ``"(root)"`` for a lone array).
    max_rel_error: the largest relative error over the coordinates that are not kinks (0 when none),
      ``inf`` when a value is not finite.
    analytic: the analytic gradient (``jax.grad(fn)`` or ``grad_fn``) at the coordinates, float64.
    numeric: the centred differences at the coordinates, float64.
    kinks: bool mask of coordinates flagged as kinks (shown, not counted in the verdict).
    indices: flat (row-major) indices of the checked coordinates in the leaf.
    rel_errors: the relative error of every coordinate, :math:`|a-n|/\\max(|a|,|n|)` (0 when both are 0).
    rounding: bool mask of coordinates whose :math:`|a-n|` is within the float rounding error of the
      difference itself, ``4·eps·max|f|/h`` (too small a gradient for the loss's resolution): passes.
    verdict: this leaf's verdict: :func:`verdict` of the largest error over coordinates neither kinks nor
      within rounding.
  """
  path: str
  max_rel_error: float
  analytic: np.ndarray
  numeric: np.ndarray
  kinks: np.ndarray
  indices: np.ndarray
  rel_errors: np.ndarray
  rounding: np.ndarray
  verdict: str


class GradCheckReport(NamedTuple):
  """The result of :func:`grad_check`; ``str(report)`` is a table.

  Attributes:
    rows: one :class:`GradCheckRow` per leaf, in ``jax.tree_util`` order.
    max_rel_error: the largest row ``max_rel_error``.
    verdict: the worst row verdict, ``"correct"``, ``"suspicious"`` or ``"wrong"`` (see :func:`verdict`);
      it may be ``"correct"`` above 1e-7 when the coordinates above are within rounding.
    warnings: plain-words warnings (tiny gradients, regularization dominating, no float64, non-finite).
    step: the step ``h``.
    dtype: the dtype the differences were computed in (``"float64"`` unless x64 could not be enabled).
  """
  rows: tuple[GradCheckRow, ...]
  max_rel_error: float
  verdict: str
  warnings: tuple[str, ...]
  step: float
  dtype: str

  def __str__(self) -> str:
    lines = [f"gradient check ({self.dtype} centred differences, h={self.step:g}): {self.verdict}, "
             f"max relative error {self.max_rel_error:.2e}",
             f"{'leaf':<32} {'coords':>6} {'max rel err':>11} {'kinks':>5} {'rounding':>8} {'max |grad|':>10}  verdict"]
    for r in self.rows:
      big = float(np.max(np.maximum(np.abs(r.analytic), np.abs(r.numeric)))) if r.analytic.size else 0.0
      lines.append(f"{r.path:<32} {r.indices.size:>6} {r.max_rel_error:>11.2e} {int(r.kinks.sum()):>5} "
                   f"{int(r.rounding.sum()):>8} {big:>10.2e}  {r.verdict}")
    lines.append("thresholds: <= 1e-7 correct (<= 1e-4 with kinks), <= 1e-2 suspicious, above wrong; "
                 "deep nets accumulate error")
    lines += [f"warning: {w}" for w in self.warnings]
    return "\n".join(lines)


def verdict(max_rel_error: float, has_kinks: bool) -> str:
  """CS231n's thresholds: ``"correct"`` at most 1e-7, or at most 1e-4 for a function with kinks (a flagged
  coordinate or a ``kink_fn``); ``"suspicious"`` up to 1e-2; ``"wrong"`` above (and for NaN)."""
  if not max_rel_error <= WRONG:
    return "wrong"
  if max_rel_error <= CORRECT or (has_kinks and max_rel_error <= SUSPICIOUS):
    return "correct"
  return "suspicious"


@contextlib.contextmanager
def _float64():
  """x64 and standard dtype promotion for the check only; yields whether float64 is available."""
  enable = getattr(jax, "enable_x64", None)
  if enable is None:
    try:
      from jax.experimental import enable_x64 as enable
    except ImportError:
      enable = None
  promotion = getattr(jax, "numpy_dtype_promotion", None)
  with contextlib.ExitStack() as stack:
    try:
      if enable is not None:
        stack.enter_context(enable(True))
    except Exception:  # a backend without float64: checked below, reported as a warning
      pass
    if promotion is not None:
      stack.enter_context(promotion("standard"))
    yield jnp.zeros((), jnp.float64).dtype == np.float64


def _check_key(key: Any) -> Any:
  if key is None:
    return jax.random.key(0)
  typed = jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key) and jnp.shape(key) == ()
  raw = getattr(key, "dtype", None) == jnp.uint32 and jnp.shape(key) == (2,)
  if not (typed or raw):
    fail(_CALL, "key", key, "must be one PRNG key (jax.random.key(seed)) or None")
  return key


def _leaf_names(paths: list[tuple]) -> list[str]:
  names = [path_name(p) or "(root)" for p in paths]
  return [jax.tree_util.keystr(p) if names.count(n) > 1 else n for p, n in zip(paths, names)]


def _rel(a: np.ndarray, n: np.ndarray) -> np.ndarray:
  """``|a − n| / max(|a|, |n|)``, 0 when both are 0, ``inf`` when either is not finite."""
  den = np.maximum(np.abs(a), np.abs(n))
  with np.errstate(invalid="ignore", divide="ignore"):
    out = np.where(den > 0, np.abs(a - n) / np.where(den > 0, den, 1.0), 0.0)
  return np.where(np.isfinite(a) & np.isfinite(n), out, np.inf)


def grad_check(fn: Callable, params: Any, *, grad_fn: Callable | None = None, num_coords: int = 5,
               step: float = 1e-5, key: jax.Array | None = None, kink_fn: Callable | None = None,
               reg_fn: Callable | None = None, batch_size: int | None = None) -> GradCheckReport:
  r"""Compares the analytic gradient with float64 centred differences on ``num_coords`` coordinates of every leaf.

  .. math:: n_i = \frac{f(x + h e_i) - f(x - h e_i)}{2h},\qquad
            e_i = \frac{|a_i - n_i|}{\max(|a_i|, |n_i|)}\quad(0 \text{ when both are } 0)

  where :math:`a = \nabla f(x)` is ``jax.grad(fn)`` (or ``grad_fn``), both computed on a float64 copy of
  ``params``. Every leaf is checked (a sample of one flattened vector would miss the biases).

  **Kinks** (ReLU, max, hinge between :math:`x - h` and :math:`x + h`) are flagged, shown, and left out of the
  verdict. A coordinate is a kink when the centred differences with :math:`h` and :math:`h/10` disagree, or
  when the one-sided slopes' jump :math:`J_h = (f_+ - f_0)/h - (f_0 - f_-)/h`, which is :math:`h f''` for a
  smooth function, is not 10× :math:`J_{h/10}` (a kink right at :math:`x`), each beyond its float rounding
  noise; or, with ``kink_fn(params) -> pre-activations`` (any pytree), when their sign pattern at
  :math:`x + h` differs from that at :math:`x - h`. A coordinate whose :math:`|a - n|` is within the rounding
  error of the difference, :math:`4\,\varepsilon \max|f| / h`, passes (its gradient is below what the loss's
  float64 resolution can tell).

  **Verdict** on the largest error over coordinates neither kinks nor within rounding (CS231n):
  ``"correct"`` ≤ 1e-7, or ≤ 1e-4 when the function has kinks (a flagged coordinate, or ``kink_fn`` given);
  ``"suspicious"`` ≤ 1e-2; ``"wrong"`` above, or a non-finite value. Deep nets accumulate error:
  "suspicious" on a 10-layer net may be fine. ``max_rel_error`` is the textbook maximum over the
  coordinates that are not kinks, so it may exceed 1e-7 on a "correct" check when those coordinates are
  within rounding (the table's ``rounding`` column counts them).

  **Warnings** go to ``report.warnings`` (no Python warning is raised): a leaf whose gradients are all
  below 1e-10 (scale the loss up), regularization whose gradient norm exceeds the data loss's (with
  ``reg_fn``: check the data loss alone first), x64 unavailable, ``fn`` not computing in float64, values
  not finite (counted as wrong, error ``inf``).

  Args:
    fn: ``fn(params) -> scalar`` loss, a JAX function (traced under ``jit`` and ``vmap``); close over the
      batch. Flax linen: ``lambda p: loss(model.apply({"params": p}, x), y)``; NNX:
      ``graphdef, state = nnx.split(model)`` then ``lambda s: loss(nnx.merge(graphdef, s)(x), y)``.
    params: a pytree of floating-point arrays (concrete, not traced).
    grad_fn: ``grad_fn(params) -> grads`` of the same leaves, e.g. a hand-written backward pass (called
      once, not traced, on the float64 parameters); default ``jax.grad`` of the checked function.
    num_coords: coordinates per leaf (all of a smaller leaf), drawn without replacement.
    step: the step :math:`h`, positive.
    key: the PRNG key choosing the coordinates (leaf ``i`` draws them on the host with
      ``np.random.default_rng((*key_data(key), i))``); default ``jax.random.key(0)``.
    kink_fn: optional ``kink_fn(params) -> pytree`` of the pre-activations of the kinks (see above).
    reg_fn: optional regularization ``reg_fn(params) -> scalar``: the function checked is then
      ``fn + reg_fn`` (``grad_fn`` returns its gradient) and a warning says when it dominates ``fn``.
    batch_size: evaluate the ``4·K + 1`` perturbed losses in chunks of this size (``lax.map``) to bound
      memory; default all at once (``vmap``).

  Returns:
    A :class:`GradCheckReport`.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from lrtools.diagnostics import grad_check
    >>> x, y = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3), jnp.array([0, 1, 2, 1])
    >>> def data_loss(p):
    ...   logits = jnp.tanh(x @ p["w"] + p["b"])
    ...   return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), y])
    >>> params = {"w": jnp.full((3, 3), 0.5) + jnp.eye(3), "b": jnp.array([[0.1, -0.2, 0.3]])}
    >>> grad_check(data_loss, params).verdict
    'correct'
    >>> loss = lambda p: data_loss(p) + jnp.sum(p["w"] ** 2)
    >>> def backward(p):  # the regularizer's gradient misses its factor 2
    ...   g = jax.grad(data_loss)(p)
    ...   return {"w": g["w"] + p["w"], "b": g["b"]}
    >>> report = grad_check(loss, params, grad_fn=backward)
    >>> report.verdict, [(r.path, r.verdict) for r in report.rows]
    ('wrong', [('b', 'correct'), ('w', 'wrong')])
    >>> print(report)  # doctest: +ELLIPSIS
    gradient check (float64 centred differences, h=1e-05): wrong, max relative error 5.35e-01
    leaf                             coords max rel err kinks rounding max |grad|  verdict
    b                                     3 ...     0        3   9.37e-02  correct
    w                                     5    5.35e-01     0        0   3.02e+00  wrong
    thresholds: <= 1e-7 correct (<= 1e-4 with kinks), <= 1e-2 suspicious, above wrong; deep nets ...

    Flax linen and NNX (params from ``model.init`` or ``nnx.split``):

    >>> import flax.linen as nn
    >>> from flax import nnx
    >>> dense = nn.Dense(2)
    >>> p = dense.init(jax.random.key(0), x)["params"]
    >>> grad_check(lambda p: jnp.mean(jnp.tanh(dense.apply({"params": p}, x)) ** 2), p).verdict
    'correct'
    >>> graphdef, state = nnx.split(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
    >>> grad_check(lambda s: jnp.mean(jnp.tanh(nnx.merge(graphdef, s)(x)) ** 2), state).verdict
    'correct'

  References:
    CS231n "Neural Networks Part 3: gradient checks"; ``jax.test_util.check_grads`` (one direction).
  """
  check_callable(_CALL, "fn", fn)
  for name, f in (("grad_fn", grad_fn), ("kink_fn", kink_fn), ("reg_fn", reg_fn)):
    if f is not None:
      check_callable(_CALL, name, f)
  check_integer(_CALL, "num_coords", num_coords, 1)
  check_positive(_CALL, "step", step)
  if concrete(step) is None:
    fail(_CALL, "step", step, "must be concrete (grad_check runs on the host, outside jit)")
  if batch_size is not None:
    check_integer(_CALL, "batch_size", batch_size, 1)
  key = _check_key(key)
  flat_paths, _ = jax.tree_util.tree_flatten_with_path(params)
  if not flat_paths:
    fail(_CALL, "params", params, "must hold at least one array")
  names = _leaf_names([p for p, _ in flat_paths])
  for name, (_, leaf) in zip(names, flat_paths):
    if isinstance(leaf, jax.core.Tracer):
      fail(_CALL, "params", params, "must be concrete (grad_check runs on the host, outside jit)")
    if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
      fail(_CALL, "params", params, f"must be floating-point arrays (leaf {name} is {jnp.result_type(leaf)})")
  sizes = [int(np.size(leaf)) for _, leaf in flat_paths]
  # Host sampling seeded by the key's words and the leaf's index: no device program per leaf shape.
  words = [int(w) for w in np.asarray(jax.random.key_data(key) if jnp.shape(key) == () else key).reshape(-1)]
  picks = [np.arange(n) if n <= num_coords else
           np.sort(np.random.default_rng([*words, i]).choice(n, int(num_coords), replace=False))
           for i, n in enumerate(sizes)]
  total = _Static(fn, reg_fn)
  h, warnings = float(step), []
  with _float64() as x64:
    dtype = jnp.float64 if x64 else jnp.result_type(float, *(leaf for _, leaf in flat_paths))
    if not x64:
      warnings.append(f"x64 could not be enabled: the differences are computed in {np.dtype(dtype).name}, "
                      "too coarse for a reliable check")
    p, flat = _as_flat(params, np.dtype(dtype))
    out = jax.eval_shape(total, p)
    if not (hasattr(out, "shape") and out.shape == () and jnp.issubdtype(out.dtype, jnp.floating)):
      fail(_CALL, "fn", fn, f"must return a real scalar loss, got {out}")
    if grad_fn is not None:
      g_leaves = jax.tree_util.tree_leaves(grad_fn(p))
      if [np.shape(g) for g in g_leaves] != [np.shape(leaf) for _, leaf in flat_paths]:
        fail(_CALL, "grad_fn", grad_fn, "must return gradients with the leaves and shapes of params")
    leaves, treedef = jax.tree_util.tree_flatten(p)
    idx = np.concatenate([o + k for o, k in zip(np.cumsum([0] + sizes[:-1]), picks)])
    x0 = np.asarray(flat, np.float64)[idx]
    points = np.stack([x0, x0 + h, x0 - h, x0 + h / 10, x0 - h / 10]).astype(dtype)
    layout = (treedef, tuple(leaf.shape for leaf in leaves))
    parts = () if reg_fn is None else (_Static(fn), _Static(reg_fn))
    kinked = None if kink_fn is None else _Static(kink_fn)
    f0, fs, sigs, grad, norms = _program(total, kinked, layout, batch_size, grad_fn is None, parts, flat,
                                         jnp.asarray(np.tile(idx, 4)), jnp.asarray(points[1:].reshape(-1)))
  if norms and float(norms[1]) > float(norms[0]):  # the seed's advice: the check then mostly tests the regularizer
    warnings.append(f"the regularization gradient (norm {float(norms[1]):.2e}) dominates the data loss's "
                    f"({float(norms[0]):.2e}): check the data loss alone first (reg_fn=None), then the "
                    "regularization term")
  out_dtype = np.dtype(fs.dtype)
  if x64 and out_dtype != np.float64:
    warnings.append(f"fn returned {out_dtype.name} for float64 parameters: compute the loss in the "
                    "parameters' dtype, or the differences carry its rounding")
  numeric, kinks, unit = _differences(np.asarray(points, np.float64), float(f0),
                                      np.asarray(fs, np.float64).reshape(4, -1), h, out_dtype)
  if sigs is not None:
    signs = np.asarray(sigs).reshape(4, len(idx), -1)
    kinks |= np.any(signs[0] != signs[1], axis=-1)
  if grad_fn is None:
    analytic = np.asarray(grad, np.float64)[idx]
  else:
    analytic = np.concatenate([np.asarray(g, np.float64).reshape(-1)[k] for g, k in zip(g_leaves, picks)])
  rel = _rel(analytic, numeric)
  with np.errstate(invalid="ignore"):
    rounding = np.isfinite(rel) & (np.abs(analytic - numeric) <= _ROUNDING * unit)
  has_kinks = bool(kinks.any()) or kink_fn is not None
  rows, bounds = [], np.cumsum([0] + [len(k) for k in picks])
  for name, k, lo, hi in zip(names, picks, bounds[:-1], bounds[1:]):
    sl = slice(lo, hi)
    shown, counted = rel[sl][~kinks[sl]], rel[sl][~kinks[sl] & ~rounding[sl]]
    rows.append(GradCheckRow(name, float(np.max(shown, initial=0.0)), analytic[sl], numeric[sl], kinks[sl], k,
                             rel[sl], rounding[sl], verdict(float(np.max(counted, initial=0.0)), has_kinks)))
    big = np.max(np.maximum(np.abs(analytic[sl]), np.abs(numeric[sl])))
    if not np.all(np.isfinite(rel[sl])):
      warnings.append(f"{name}: non-finite analytic or numeric gradient (counted as wrong)")
    elif 0 < big < TINY:
      warnings.append(f"{name}: gradients are tiny (largest {big:.1e} < 1e-10), so relative errors mislead: "
                      "scale the loss up by a constant (and check again)")
  overall = max((r.verdict for r in rows), key=("correct", "suspicious", "wrong").index)
  return GradCheckReport(tuple(rows), max(r.max_rel_error for r in rows), overall, tuple(warnings), h,
                         np.dtype(dtype).name)


class _Static:
  """``fn`` (plus ``reg_fn``) as a static argument of a compiled program, hashed by identity (a callable
  need not be hashable), so that checking the same function again reuses the program."""

  def __init__(self, fn, reg_fn=None):
    self.parts = (fn, reg_fn)

  def __call__(self, p):
    fn, reg_fn = self.parts
    return fn(p) if reg_fn is None else fn(p) + reg_fn(p)

  def __hash__(self):
    return hash(tuple(map(id, self.parts)))

  def __eq__(self, other):
    return isinstance(other, _Static) and all(a is b for a, b in zip(self.parts, other.parts))


@partial(jax.jit, static_argnums=1)
def _as_flat(params, dtype):
  """The parameters cast to ``dtype`` (a copy) and their concatenated flat vector."""
  p = jax.tree_util.tree_map(lambda leaf: leaf.astype(dtype), params)
  return p, jnp.concatenate([leaf.reshape(-1) for leaf in jax.tree_util.tree_leaves(p)])


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _program(total, kink_fn, layout, batch_size, with_grad, parts, flat, indices, values):
  """One program, vectorized over the perturbed points: ``f(x)``, ``f`` at every point, the kink signs,
  the analytic gradient (flat, ``with_grad``) and the gradient norms of ``parts`` (data loss,
  regularization). Compiled once per function, layout and number of coordinates."""
  treedef, shapes = layout
  bounds = np.cumsum([0] + [int(np.prod(s)) for s in shapes])

  def unravel(v):
    pieces = [v[a:b].reshape(s) for a, b, s in zip(bounds[:-1], bounds[1:], shapes)]
    return jax.tree_util.tree_unflatten(treedef, pieces)

  def at(i, v):
    q = unravel(flat.at[i].set(v))
    if kink_fn is None:
      return total(q), None
    signs = [jnp.sign(z).reshape(-1).astype(jnp.int8) for z in jax.tree_util.tree_leaves(kink_fn(q))]
    return total(q), jnp.concatenate(signs) if signs else jnp.zeros((0,), jnp.int8)

  def flat_grad(f):
    return jax.grad(lambda v: f(unravel(v)))(flat)

  if batch_size is None:
    fs, sigs = jax.vmap(at)(indices, values)
  else:
    fs, sigs = jax.lax.map(lambda iv: at(*iv), (indices, values), batch_size=int(batch_size))
  grad = flat_grad(total) if with_grad else None
  return total(unravel(flat)), fs, sigs, grad, tuple(jnp.linalg.norm(flat_grad(f)) for f in parts)


def _differences(points, f0, fs, h, out_dtype):
  """Centred differences, the kink flags (h vs h/10; one-sided slopes' jump vs 10× at h/10) and the
  rounding unit ``eps·max|f|/h`` of each coordinate. The actual steps (x ± h rounded) divide."""
  x0, xp, xm, xp10, xm10 = points
  fp, fm, fp10, fm10 = fs
  numeric = (fp - fm) / (xp - xm)
  numeric10 = (fp10 - fm10) / (xp10 - xm10)
  jump = (fp - f0) / (xp - x0) - (f0 - fm) / (x0 - xm)
  jump10 = (fp10 - f0) / (xp10 - x0) - (f0 - fm10) / (x0 - xm10)
  eps = float(np.finfo(out_dtype if out_dtype.kind == "f" else np.float64).eps)
  unit = eps * np.max(np.abs([fp, fm, fp10, fm10, np.full_like(fp, f0)]), axis=0) / h
  with np.errstate(invalid="ignore"):
    kinks = ((np.abs(numeric - numeric10) > _KINK_CENTRED * unit)
             | (np.abs(jump - (xp - xm) / (xp10 - xm10) * jump10) > _KINK_CURVATURE * unit))
  return numeric, kinks, unit

