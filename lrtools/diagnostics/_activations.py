"""Activation statistics per layer (CS231n's activation histograms): mean, std, dead and saturated units.

Two steps, so that the statistics are a pure, jittable function of arrays:

- :func:`capture_activations` runs a Flax model once and returns every layer's output keyed by its path:
  ``capture_intermediates`` (and values ``sow``-ed into ``"intermediates"``) for linen,
  ``nnx.capture(..., method_outputs=nnx.Intermediate)`` (and ``self.sow(nnx.Intermediate, ...)``) for NNX.
  The outputs of ``Dense``/``Conv``/``Linear`` layers are **pre-activations**: the nonlinearity is a
  function applied after them, not a module.
- :func:`activation_stats` turns such a mapping into an :class:`ActivationStats`, applying the named
  nonlinearity to pre-activations first.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrtools._typing import check_flag, check_integer, check_interval, check_nonnegative, check_one_of, fail

NONLINEARITIES = ("none", "relu", "tanh", "sigmoid")
_FUNCTIONS = {"none": lambda a: a, "relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}


class ActivationStats(NamedTuple):
  """Statistics of each layer's activations; every field is a dict keyed by layer path.

  Attributes:
    mean: mean of the finite activations.
    std: standard deviation of the finite activations.
    zero_fraction: fraction of activations with :math:`|a| \\le` ``zero_tol`` (ReLU outputs that are zero).
    dead_fraction: fraction of units (last axis: features or channels) whose activation is within
      ``zero_tol`` of zero for **every** example (and position) of the batch: dead ReLUs.
    saturated_fraction: fraction of activations in the flat tails of the nonlinearity: :math:`|a| \\ge s`
      for tanh, :math:`a \\le 1 - s` or :math:`a \\ge s` for sigmoid (``s`` = ``saturation``); 0 for relu
      and none (no saturating side).
    nonfinite_fraction: fraction of NaN/inf activations; they are left out of every other statistic.
    histogram: int32 counts of the finite activations in ``bins`` equal bins.
    bin_edges: the ``bins + 1`` edges, from the smallest to the largest finite activation.
  """
  mean: dict[str, jax.Array]
  std: dict[str, jax.Array]
  zero_fraction: dict[str, jax.Array]
  dead_fraction: dict[str, jax.Array]
  saturated_fraction: dict[str, jax.Array]
  nonfinite_fraction: dict[str, jax.Array]
  histogram: dict[str, jax.Array]
  bin_edges: dict[str, jax.Array]

  def as_dict(self) -> dict[str, jax.Array]:
    """The scalar statistics as one flat dict ``"<quantity>/<layer>"`` (e.g. ``"dead_fraction/Dense_0"``),
    the keys :func:`lrtools.diagnostics.advise` and ``TrainingHistory.record_epoch`` read."""
    fields = ("mean", "std", "zero_fraction", "dead_fraction", "saturated_fraction", "nonfinite_fraction")
    return {f"{field}/{layer}": value for field in fields for layer, value in getattr(self, field).items()}


def _name(parts: list[str]) -> str:
  return "/".join(p for p in parts if p != "__call__")


def _flatten(tree: Any, output: Any, include_output: bool) -> dict[str, jax.Array]:
  """``{layer path: array}`` from a nested intermediates collection; the index of the call (a module called
  twice sows two values) is appended only when there are several."""
  entries = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    parts, call = [], 0
    for entry in path:
      if isinstance(entry, jax.tree_util.DictKey):
        parts.append(str(entry.key))
      elif isinstance(entry, jax.tree_util.SequenceKey):
        parts.append(str(entry.idx))
    if parts and parts[-1].isdigit():  # the tuple of sown values: one per call
      call = int(parts.pop())
    is_output = leaf is output or parts == ["__call__"]  # the model's own output (logits): not a hidden layer
    if is_output and not include_output:
      continue
    entries.append((_name(parts) or "output", call, leaf))
  counts: dict[str, int] = {}
  for name, _, _ in entries:
    counts[name] = counts.get(name, 0) + 1
  return {name if counts[name] == 1 else f"{name}/{call}": leaf for name, call, leaf in entries}


def capture_activations(model: Any, x: Any, params: Any = None, *, include_output: bool = False
                        ) -> dict[str, jax.Array]:
  """Every layer's output of one forward pass of a Flax model, keyed by layer path.

  .. math:: \\{\\text{path}(l) \\mapsto z_l(x)\\}_{l \\in \\text{layers}}

  Linen: ``model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])``; NNX:
  ``nnx.capture(model, nnx.Intermediate, method_outputs=nnx.Intermediate)(x)``. Both keep the outputs of
  every submodule's ``__call__`` (pre-activations for Dense/Conv/Linear) and the values sown into
  ``"intermediates"`` / ``nnx.Intermediate``. The model's own output (the logits) is left out unless
  ``include_output``: it is not a hidden layer. A pure function of ``params`` and ``x`` for linen (call it
  inside ``jax.jit``); NNX runs eagerly or inside ``nnx.jit``.

  Args:
    model: a ``flax.linen.Module`` or a ``flax.nnx.Module``.
    x: a batch of inputs.
    params: linen's ``params`` (or the whole variables dict with a ``"params"`` entry); ``None`` for NNX.
    include_output: also return the model's output, under its layer name (or ``"output"``).

  Returns:
    ``{path: array}``, e.g. ``{"Dense_0": (B, 128), "Dense_1": (B, 128)}`` for lrtools' MLP.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from lrtools import models
    >>> from lrtools.diagnostics import capture_activations
    >>> model = models.classifier("mlp", 10)
    >>> params = models.init_params(model, jax.random.key(0), jnp.zeros((1, 64)))
    >>> {k: v.shape for k, v in capture_activations(model, jnp.ones((5, 64)), params).items()}
    {'Dense_0': (5, 128), 'Dense_1': (5, 128)}

  References:
    Flax "Extracting intermediate values" guide; CS231n "Neural Networks Part 3" (activation histograms).
  """
  import flax.linen as nn
  from flax import nnx
  call = "capture_activations"
  check_flag(call, "include_output", include_output)
  if isinstance(model, nn.Module):
    if not isinstance(params, Mapping):
      fail(call, "params", params, "must be the linen model's params (a dict) for a flax.linen Module")
    variables = params if "params" in params else {"params": params}
    output, state = model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
    return _flatten(state.get("intermediates", {}), output, include_output)
  if isinstance(model, nnx.Module):
    if params is not None:
      fail(call, "params", type(params).__name__, "must be None for an NNX Module (its parameters live in it)")
    output, captured = nnx.capture(model, nnx.Intermediate, method_outputs=nnx.Intermediate)(x)
    return _flatten(nnx.to_pure_dict(captured), output, include_output)
  fail(call, "model", type(model).__name__, "must be a flax.linen Module or a flax.nnx Module")


def _layer_stats(a: jax.Array, kind: str, preactivations: bool, zero_tol: Any, saturation: Any, bins: int):
  a = a if jnp.issubdtype(a.dtype, jnp.floating) else a.astype(jnp.result_type(float))
  if preactivations:
    a = _FUNCTIONS[kind](a)
  dtype = a.dtype
  units = a.reshape(-1, a.shape[-1]) if a.ndim >= 2 else a.reshape(-1, 1)  # (examples · positions, units)
  finite = jnp.isfinite(units)
  count = jnp.maximum(jnp.sum(finite), 1).astype(dtype)
  clean = jnp.where(finite, units, jnp.zeros((), dtype))
  mean = jnp.sum(clean) / count
  std = jnp.sqrt(jnp.sum(jnp.where(finite, (units - mean) ** 2, jnp.zeros((), dtype))) / count)
  tol, s = jnp.asarray(zero_tol, dtype), jnp.asarray(saturation, dtype)
  zero = finite & (jnp.abs(clean) <= tol)
  if kind == "tanh":
    saturated = finite & (jnp.abs(clean) >= s)
  elif kind == "sigmoid":
    saturated = finite & ((clean >= s) | (clean <= jnp.ones((), dtype) - s))
  else:
    saturated = jnp.zeros(units.shape, bool)
  size = jnp.asarray(units.size, dtype)
  frac = lambda mask: jnp.sum(mask.astype(dtype)) / size
  # Histogram of the finite values between their extremes (a one-value layer gets a unit-wide range).
  big = jnp.asarray(jnp.finfo(dtype).max, dtype)
  lo = jnp.min(jnp.where(finite, units, big))
  hi = jnp.max(jnp.where(finite, units, -big))
  none = lo > hi
  lo, hi = jnp.where(none, jnp.zeros((), dtype), lo), jnp.where(none, jnp.ones((), dtype), hi)
  flat = hi <= lo
  half = jnp.asarray(0.5, dtype)
  lo, hi = jnp.where(flat, lo - half, lo), jnp.where(flat, hi + half, hi)
  index = jnp.clip(jnp.floor((clean - lo) / (hi - lo) * bins), 0, bins - 1).astype(jnp.int32)
  counts = jnp.zeros(bins, jnp.int32).at[index.reshape(-1)].add(finite.reshape(-1).astype(jnp.int32))
  edges = lo + (hi - lo) * jnp.linspace(0, 1, bins + 1, dtype=dtype)
  return (mean, std, frac(zero), jnp.mean(jnp.all(zero, axis=0).astype(dtype)), frac(saturated),
          frac(~finite), counts, edges)


def activation_stats(activations: Mapping[str, jax.Array], *, nonlinearity: str | Mapping[str, str] = "relu",
                     preactivations: bool = True, zero_tol: float = 0.0, saturation: float = 0.99,
                     bins: int = 30) -> ActivationStats:
  r"""Per-layer mean, std, zero and dead fractions, saturated fraction and histogram of activations.

  For a layer's activations :math:`a = \phi(z)` reshaped to (samples, units) — samples are the batch's
  examples and positions, units the last axis:

  .. math::
     \text{zero} = \tfrac{1}{N}\textstyle\sum [\,|a| \le \tau\,],\quad
     \text{dead} = \tfrac{1}{U}\sum_u \big[\,\forall i\ |a_{iu}| \le \tau\,\big],\quad
     \text{saturated} = \tfrac{1}{N}\sum [\,|a| \ge s\,]\ (\tanh),\ [\,a \le 1-s \lor a \ge s\,]\ (\sigma)

  A ReLU unit that outputs 0 for every example gets no gradient and stays dead; a tanh or sigmoid unit in
  its flat tails (default :math:`s = 0.99`: :math:`|z| > 2.65` for tanh, :math:`|z| > 4.6` for sigmoid)
  passes almost none. NaN/inf activations are counted in ``nonfinite_fraction`` and left out of the other
  statistics (they never count as zero or saturated). Jittable: ``nonlinearity``, ``preactivations`` and
  ``bins`` are static, ``zero_tol`` and ``saturation`` may be traced.

  Args:
    activations: ``{layer path: array}``, e.g. from :func:`capture_activations`; each array's last axis is
      the unit (feature/channel) axis.
    nonlinearity: ``"relu"``, ``"tanh"``, ``"sigmoid"`` or ``"none"`` for every layer, or a dict
      ``{layer: name}`` (layers not in it: ``"none"``).
    preactivations: the arrays are pre-activations :math:`z` (the outputs of Dense/Conv layers), so the
      nonlinearity is applied first; ``False`` when they are already :math:`\phi(z)` (values you sowed).
    zero_tol: :math:`\tau`, the distance from zero that counts as zero (0: exactly zero, as ReLU outputs).
    saturation: :math:`s \in (0.5, 1)`.
    bins: histogram bins.

  Returns:
    An :class:`ActivationStats`; ``.as_dict()`` flattens it to ``{"dead_fraction/<layer>": ..., ...}``.

  Example:
    >>> import jax.numpy as jnp
    >>> from lrtools.diagnostics import activation_stats
    >>> z = jnp.array([[1.0, -1.0, -2.0], [3.0, -1.0, 0.5]])  # unit 1 is negative for every example
    >>> stats = activation_stats({"hidden": z}, nonlinearity="relu")
    >>> round(float(stats.dead_fraction["hidden"]), 4), float(stats.zero_fraction["hidden"])
    (0.3333, 0.5)
    >>> float(activation_stats({"h": jnp.array([[3.0, 0.1]])}, nonlinearity="tanh").saturated_fraction["h"])
    0.5

  References:
    CS231n "Neural Networks Part 1/2" (dead ReLUs, saturated sigmoid/tanh) and Part 3 (activation
    histograms); Glorot & Bengio 2010 (saturation of deep sigmoid networks).
  """
  call = "activation_stats"
  if not isinstance(activations, Mapping) or not activations:
    fail(call, "activations", type(activations).__name__, "must be a non-empty dict {layer path: array}")
  for layer, value in activations.items():
    if not isinstance(layer, str) or not hasattr(value, "shape") or np.size(value) == 0:
      fail(call, "activations", f"{{{layer!r}: {type(value).__name__}}}", "must map layer names to non-empty arrays")
  if isinstance(nonlinearity, Mapping):
    for layer, kind in nonlinearity.items():
      check_one_of(call, "nonlinearity", kind, NONLINEARITIES)
    kinds = {layer: nonlinearity.get(layer, "none") for layer in activations}
  else:
    check_one_of(call, "nonlinearity", nonlinearity, NONLINEARITIES)
    kinds = dict.fromkeys(activations, nonlinearity)
  check_flag(call, "preactivations", preactivations)
  check_nonnegative(call, "zero_tol", zero_tol)
  check_interval(call, "saturation", saturation, 0.5, 1.0, low_closed=False, high_closed=False)
  check_integer(call, "bins", bins, 1, 10**6)
  per_layer = {layer: _layer_stats(jnp.asarray(a), kinds[layer], preactivations, zero_tol, saturation, int(bins))
               for layer, a in activations.items()}
  return ActivationStats(*({layer: v[i] for layer, v in per_layer.items()} for i in range(8)))
