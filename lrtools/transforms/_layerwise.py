"""Per-layer learning rates: multiply each leaf's update by its own factor (Keras' "differential
learning rates", fastai's discriminative fine-tuning), assign leaves to layer groups by path patterns,
spread factors geometrically across groups, and freeze groups of factor 0.

Paths are the leaf's keys joined by ``/``: ``"params/Dense_0/kernel"`` for Flax linen,
``"encoder/layers/0/kernel"`` for an NNX state (the ``.value`` of an ``nnx.Variable`` adds nothing, so
the paths are the same whether ``nnx.Optimizer`` passes Variables or plain arrays).
"""

from __future__ import annotations

import fnmatch
import re
import sys
from typing import Any, Callable, NamedTuple, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrtools._typing import (Numeric, check_le, check_nonnegative, check_one_of, check_positive, check_regex,
                             concrete, fail)
from lrtools._hyperparams import state_dtype, zero_count
from lrtools._numerics import times

Multipliers = Union[Any, Callable[[str, jax.Array], Numeric]]
Patterns = Sequence[Union[str, Sequence[str]]]


def _is_variable(x: Any) -> bool:
  nnx = sys.modules.get("flax.nnx")  # no Variables exist unless flax.nnx was imported
  return nnx is not None and isinstance(x, nnx.Variable)


def _key(k: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def leaf_paths(tree: Any) -> list[str]:
  """The ``/``-joined path of every leaf of ``tree``, in ``jax.tree.leaves`` order.

  Example:
    >>> import jax.numpy as jnp
    >>> from lrtools.transforms import leaf_paths
    >>> leaf_paths({"params": {"Dense_0": {"kernel": jnp.ones(1), "bias": jnp.ones(1)}}})
    ['params/Dense_0/bias', 'params/Dense_0/kernel']
  """
  return [path for path, _ in _flatten(tree)]


def _flatten(tree: Any) -> list[tuple[str, Any]]:
  """``(path, leaf)`` pairs in ``jax.tree.leaves`` order; an ``nnx.Variable`` lends its path to the
  leaves inside it (one array, or none when ``optax.masked`` has replaced it)."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_variable)
  pairs = []
  for keys, node in flat:
    path = "/".join(_key(k) for k in keys)
    pairs.extend((path, x) for x in (jax.tree.leaves(node) if _is_variable(node) else [node]))
  return pairs


def _factor_list(multipliers: Multipliers, tree: Any, call: str, strict: bool = True) -> list:
  """One factor per leaf of ``tree``: ``multipliers(path, leaf)``, or the leaf of the ``multipliers``
  pytree whose path equals or is a prefix of the leaf's (a prefix tree such as ``{"encoder": 0.1}``)."""
  pairs = _flatten(tree)
  if callable(multipliers):
    return [multipliers(p, x) for p, x in pairs]
  paths = [p for p, _ in pairs]
  table = dict(_flatten(multipliers))
  used, factors = set(), []
  for p in paths:
    parts = p.split("/")
    prefixes = [""] + ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    hits = [m for m in prefixes if m in table]  # O(depth) per leaf, not O(#multipliers)
    if len(hits) != 1:
      problem = "none" if not hits else f"several ({hits})"
      fail(call, "multipliers", multipliers, f"must give one factor for the parameter {p!r} (gives {problem})")
    used.add(hits[0])
    factors.append(table[hits[0]])
  unused = sorted(set(table) - used)
  if strict and unused:
    fail(call, "multipliers", multipliers, f"must match parameters (entries {unused} match none)")
  return factors


def _check_factors(call: str, name: str, values: Any) -> None:
  """Non-negative real scalars, at least one (``None`` or an empty tree would match no parameter)."""
  leaves = jax.tree.leaves(values)
  if not leaves:
    fail(call, name, values, "must hold non-negative factors (a pytree, a prefix of one, or a function)")
  for v in leaves:
    check_nonnegative(call, name, v)


def _check_transformation(call: str, name: str, value: Any) -> None:
  """An optax transformation: a string or a factory (``lambda lr: ...``) would fail later inside optax."""
  if not (callable(getattr(value, "init", None)) and callable(getattr(value, "update", None))):
    fail(call, name, value, "must be an optax GradientTransformation (with init and update)")


class ScaleByLayerState(NamedTuple):
  """State of :func:`scale_by_layer`.

  Attributes:
    count: int32 number of updates so far.
    multipliers: one scalar factor per leaf, in leaf order (resolved from the parameters at ``init``).
  """
  count: jax.Array
  multipliers: tuple[jax.Array, ...]


def scale_by_layer(multipliers: Multipliers) -> optax.GradientTransformation:
  r"""Multiplies each leaf's update by its own factor.

  .. math::
    u^{(l)}_t \leftarrow c_l \, u^{(l)}_t

  Placed after an optimizer, ``c_l`` multiplies the learning rate of leaf ``l`` (exactly so for SGD,
  momentum and the adaptive methods, whose directions do not depend on the rate).

  Args:
    multipliers: non-negative factors, as a pytree with the parameters' structure, as a prefix of it
      by path (``{"params": {"Dense_0": 0.1, "Dense_1": 1.0}}``; a single number scales everything), or
      as a function ``(path, leaf) -> factor`` evaluated on the parameters at ``init``. Factors may be
      tracers (``jax.vmap`` over them).

  Returns:
    An ``optax.GradientTransformation`` with state :class:`ScaleByLayerState`.

  Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> from lrtools.transforms import scale_by_layer
    >>> params = {"head": jnp.ones(2), "body": jnp.ones(2)}
    >>> tx = scale_by_layer(lambda path, p: 1.0 if path.startswith("head") else 0.1)
    >>> u, _ = tx.update(params, tx.init(params))
    >>> print({k: np.round(np.asarray(v), 4).tolist() for k, v in u.items()})
    {'body': [0.1, 0.1], 'head': [1.0, 1.0]}

  References:
    Howard & Ruder 2018, "Universal Language Model Fine-tuning for Text Classification"
    (discriminative fine-tuning).
  """
  call = "scale_by_layer"
  if not callable(multipliers):
    _check_factors(call, "multipliers", multipliers)
  return _scale_by_layer(multipliers, strict=True)


def _scale_by_layer(multipliers: Multipliers, strict: bool) -> optax.GradientTransformation:
  call = "scale_by_layer"

  def init_fn(params):
    factors = _factor_list(multipliers, params, call, strict)
    if callable(multipliers):
      _check_factors(call, "multipliers", factors)
    # jnp.array copies: one buffer per leaf, never the caller's array, so the state can be donated.
    return ScaleByLayerState(zero_count(), tuple(jnp.array(f, state_dtype()) for f in factors))

  def update_fn(updates, state, params=None):
    del params
    leaves, treedef = jax.tree.flatten(updates)
    if len(leaves) != len(state.multipliers):
      raise ValueError(f"`{call}`: the updates have {len(leaves)} leaves but the parameters given to "
                       f"init had {len(state.multipliers)}")
    scaled = [times(c, u) for u, c in zip(leaves, state.multipliers, strict=True)]
    return treedef.unflatten(scaled), ScaleByLayerState(optax.safe_increment(state.count),
                                                        state.multipliers)

  return optax.GradientTransformation(init_fn, update_fn)


def _matcher(pattern: str, syntax: str, call: str) -> Callable[[str], bool]:
  if syntax == "glob":
    if not isinstance(pattern, str):
      fail(call, "groups", pattern, "must hold strings (glob patterns)")
    return lambda path: fnmatch.fnmatchcase(path, pattern)
  check_regex(call, "groups", pattern)
  compiled = re.compile(pattern)
  return lambda path: compiled.search(path) is not None


def _patterns(call: str, groups: Any) -> list[list[Any]]:
  """``groups`` as a non-empty list of non-empty lists of patterns (a lone string is one pattern)."""
  if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence) or len(groups) == 0:
    fail(call, "groups", groups, "must be a non-empty sequence of patterns")
  out = []
  for group in groups:
    if isinstance(group, str):
      out.append([group])
    elif isinstance(group, Sequence) and not isinstance(group, bytes) and len(group) > 0:
      out.append(list(group))
    else:
      fail(call, "groups", groups, f"must hold patterns or non-empty sequences of patterns, not {group!r}")
  return out


def _group_of(paths: list[str], groups: Patterns, syntax: str, call: str) -> list[int]:
  """The index of the first group whose patterns match each path, with the errors users need."""
  check_one_of(call, "syntax", syntax, ("regex", "glob"))
  matchers = [[(pat, _matcher(pat, syntax, call)) for pat in group] for group in _patterns(call, groups)]
  for group in matchers:
    for pat, match in group:
      if not any(match(p) for p in paths):
        fail(call, "groups", groups, f"must match parameters: the pattern {pat!r} matches none "
                                     f"(paths are like {paths[:3]})")
  index = []
  for p in paths:
    hit = next((i for i, group in enumerate(matchers) if any(m(p) for _, m in group)), None)
    if hit is None:
      fail(call, "groups", groups, f"must cover every parameter: {p!r} matches no group")
    index.append(hit)
  empty = sorted(set(range(len(matchers))) - set(index))
  if empty:
    fail(call, "groups", groups, f"must give every group a parameter: group(s) {empty} receive none, "
                                 "every match being taken by an earlier group")
  return index


def assign_groups(params: Any, groups: Patterns, *, syntax: str = "regex") -> Any:
  """Labels each leaf with the index of the first group whose pattern matches its path.

  Args:
    params: a parameter pytree (Flax linen dict, NNX state, any pytree).
    groups: ordered groups, first layers first; each a pattern or a sequence of patterns.
    syntax: ``"regex"`` (``re.search`` anywhere in the path) or ``"glob"`` (``fnmatch`` on the whole
      path).

  Returns:
    A pytree like ``params`` of int group indices (usable as ``optax.partition`` labels).

  Raises:
    ValueError: a leaf matches no group, a pattern matches no leaf, or a group receives no leaf.

  Example:
    >>> import jax.numpy as jnp
    >>> from lrtools.transforms import assign_groups
    >>> params = {"params": {"Dense_0": {"kernel": jnp.ones(1)}, "Dense_1": {"kernel": jnp.ones(1)}}}
    >>> assign_groups(params, ["*/Dense_0/*", "*"], syntax="glob")
    {'params': {'Dense_0': {'kernel': 0}, 'Dense_1': {'kernel': 1}}}
  """
  index = _group_of(leaf_paths(params), groups, syntax, "assign_groups")
  return jax.tree.unflatten(jax.tree.structure(params), index)


def layer_multipliers(params: Any, groups: Patterns, factors: Sequence[Numeric], *,
                      syntax: str = "regex") -> Any:
  """Gives every leaf the factor of its group.

  Args:
    params: a parameter pytree.
    groups: ordered groups of patterns, as in :func:`assign_groups`.
    factors: one non-negative factor per group (0 freezes the group under :func:`layerwise`).
    syntax: ``"regex"`` or ``"glob"``.

  Returns:
    A pytree like ``params`` of factors, for :func:`scale_by_layer` or :func:`layerwise`.

  Example:
    >>> import jax.numpy as jnp
    >>> from lrtools.transforms import layer_multipliers
    >>> params = {"body": jnp.ones(1), "head": jnp.ones(1)}
    >>> layer_multipliers(params, ["body", "head"], [0.0, 1.0])
    {'body': 0.0, 'head': 1.0}
  """
  call = "layer_multipliers"
  index = _group_of(leaf_paths(params), groups, syntax, call)
  if isinstance(factors, (np.ndarray, jax.Array)) and np.ndim(factors) == 1:
    factors = list(factors)  # a vector of factors (a tracer under vmap), one per group
  if isinstance(factors, (str, bytes)) or not isinstance(factors, Sequence) or len(factors) != len(groups):
    fail(call, "factors", factors, f"must be a sequence of one factor per group ({len(groups)} groups)")
  for f in factors:
    check_nonnegative(call, "factors", f)
  return jax.tree.unflatten(jax.tree.structure(params), [factors[i] for i in index])


def discriminative_multipliers(params: Any, groups: Patterns, low: Numeric, high: Numeric, *,
                               syntax: str = "regex") -> Any:
  r"""Spreads factors geometrically from ``low`` (first group) to ``high`` (last group).

  .. math::
    c_i = \text{low} \cdot (\text{high} / \text{low})^{i / (G - 1)}, \quad i = 0, \dots, G - 1

  (``high`` for a single group). Howard & Ruder divide the rate by 2.6 per layer going down:
  ``low = high / 2.6**(G - 1)``.

  Args:
    params: a parameter pytree.
    groups: ordered groups of patterns, first layers first, as in :func:`assign_groups`.
    low: positive factor of the first group.
    high: factor of the last group, ``>= low``.
    syntax: ``"regex"`` or ``"glob"``.

  Returns:
    A pytree like ``params`` of factors.

  Example:
    >>> import jax.numpy as jnp
    >>> from lrtools.transforms import discriminative_multipliers
    >>> params = {"l0": jnp.ones(1), "l1": jnp.ones(1), "l2": jnp.ones(1)}
    >>> m = discriminative_multipliers(params, ["l0", "l1", "l2"], 0.01, 1.0)
    >>> {k: round(float(v), 4) for k, v in m.items()}
    {'l0': 0.01, 'l1': 0.1, 'l2': 1.0}

  References:
    Howard & Ruder 2018, "Universal Language Model Fine-tuning for Text Classification".
  """
  call = "discriminative_multipliers"
  check_positive(call, "low", low)
  check_positive(call, "high", high)
  check_le(call, "low", low, "high", high)
  index = _group_of(leaf_paths(params), groups, syntax, call)
  num = len(groups)
  exponents = np.arange(num) / (num - 1) if num > 1 else np.ones(1)
  lo, hi = concrete(low), concrete(high)
  if lo is not None and hi is not None:  # plain floats when concrete; arrays only for tracers
    factors = [float(lo * (hi / lo) ** e) for e in exponents]
  else:
    factors = [low * (high / low) ** e for e in exponents]
  return jax.tree.unflatten(jax.tree.structure(params), [factors[i] for i in index])


def _is_zero(factor: Any) -> bool:
  v = concrete(factor)
  return v is not None and bool(np.all(v == 0))


def layerwise(optimizer: optax.GradientTransformation, multipliers: Multipliers
              ) -> optax.GradientTransformationExtraArgs:
  """Runs ``optimizer`` with per-layer factors; leaves of factor 0 are frozen and keep no state.

  ``optax.partition`` routes the leaves whose factor is a concrete 0 to ``optax.set_to_zero`` (update
  exactly 0, no optimizer state, so Adam keeps no moments for a frozen backbone) and the others to
  ``optax.chain(optimizer, scale_by_layer(multipliers))``. A factor that is a tracer is never frozen,
  only multiplied. Callable multipliers are evaluated on the updates as well as on the parameters, so
  they should depend on the path and shape only.

  Args:
    optimizer: any optax transformation, e.g. ``lrtools.optimizers.adam(1e-3)``.
    multipliers: as in :func:`scale_by_layer`.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (an ``optax.partition``).

  Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> from lrtools.optimizers import sgd
    >>> from lrtools.transforms import layerwise
    >>> params = {"body": jnp.ones(2), "head": jnp.ones(2)}
    >>> opt = layerwise(sgd(0.1), {"body": 0.0, "head": 1.0})
    >>> u, _ = opt.update(params, opt.init(params))
    >>> print({k: np.round(np.asarray(v), 4).tolist() for k, v in u.items()})
    {'body': [0.0, 0.0], 'head': [-0.1, -0.1]}
  """
  call = "layerwise"
  _check_transformation(call, "optimizer", optimizer)
  if not callable(multipliers):
    _check_factors(call, "multipliers", multipliers)

  def labels(tree):
    factors = _factor_list(multipliers, tree, call)
    names = ["frozen" if _is_zero(f) else "trained" for f in factors]
    return jax.tree.unflatten(jax.tree.structure(tree), names)

  trained = optax.chain(optimizer, _scale_by_layer(multipliers, strict=False))
  return optax.partition({"trained": trained, "frozen": optax.set_to_zero()}, labels)
