"""Monitors: the update:weight ratio ‖Δw‖/‖w‖, update, weight and gradient norms, recorded in optimizer state.

The last transform of an ``optax.chain`` sees the final updates Δw and the weights w, but not the raw
gradients. So :func:`monitor` is a pass-through transform placed last (updates and weights), and
:func:`monitored` wraps an optimizer (gradients in, updates out, weights: all three). :func:`read_monitor`
turns what either recorded into one flat dict, adding the learning rate the chain records
(``lrtools.current_hyperparams``).

Cost. The hot loop computes, per leaf, one fused reduction over the stacked squares of the leaf's update
and weight (and, in :func:`monitored`, one over its gradient, taken before the update), and nothing else:
the state keeps per-leaf *squared* norms; square roots, ratios and global norms (a few scalar operations
per leaf, which would otherwise be as many tiny kernels per step) are derived by :func:`read_monitor`,
outside the step. ``benchmarks/bench_monitor.py`` measures it.

Numerics. Squares are summed in the leaf's real dtype (float32 at least: bfloat16/float16 leaves are summed
in float32) and kept in ``lrtools._hyperparams.state_dtype()`` (float32; float64 under x64), so ``init`` and
``update`` agree and the state is a valid ``lax.scan`` carry. Non-finite updates or gradients are recorded as
they are (NaN/inf norms are the signal that a step blew up); nothing is masked. A zero weight norm gives the
IEEE ratio: ``inf`` for a non-zero update (e.g. zero-initialised biases at step 0) and ``NaN`` for a zero
update of zero weights; readers (``advise``) skip non-finite ratios. Squared norms overflow float32 for
norms beyond ~1.8e19 (weights of a diverged run): such a norm reads inf and its ratio NaN, never a finite
wrong number.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lrtools._hyperparams import current_hyperparams, find_states, path_name, state_dtype, zero_count
from lrtools._numerics import abs_sq, real_dtype
from lrtools._typing import fail


class MonitorState(NamedTuple):
  """State of :func:`monitor` and :func:`monitored`.

  Attributes:
    inner_state: the wrapped optimizer's state (:func:`monitored`), ``optax.EmptyState()`` for :func:`monitor`.
    sq_norms: per leaf (a tree like the parameters), the vector ``[‖Δw‖², ‖w‖²]`` of the last step, ``w`` the
      weights the update was applied to (before it). Squared, and both in one vector, so that a step costs
      one fused reduction per leaf; :func:`read_monitor` derives norms and ratios.
    grad_sq_norms: per leaf, ``‖g‖²`` of the last raw gradients (:func:`monitored`), ``None`` for :func:`monitor`.
    count: int32 number of updates so far (saturating at 2**31 − 1). The field order is the measured fast
      one: XLA:CPU schedules the loop body of a ``lax.scan`` worse with the count first (1.38x instead of
      1.09x the unmonitored step in ``benchmarks/bench_monitor.py``).
  """
  inner_state: Any
  sq_norms: Any
  grad_sq_norms: Any
  count: jax.Array


def _sq_norms(*trees: Any) -> Any:
  """Per leaf, ``Σ|x|²`` of the leaf of each tree, as one reduction over the stacked leaves (a scalar for one
  tree, a vector for several), summed in the leaves' real dtype (float32 at least), kept as state_dtype."""
  def sq(*xs):
    acc = real_dtype(xs[0])
    acc = jnp.float32 if jnp.dtype(acc).itemsize < 4 else acc  # bfloat16/float16: sum in float32
    # Stacked in the leaf's own shape, not flattened: XLA:CPU splits a long 1-D reduction in two kernels.
    stacked = jnp.stack([abs_sq(x).astype(acc) for x in xs]) if len(xs) > 1 else abs_sq(xs[0]).astype(acc)
    return jnp.sum(stacked, axis=tuple(range(stacked.ndim - xs[0].ndim, stacked.ndim))).astype(state_dtype())
  return jax.tree.map(sq, *trees)


def _zeros(tree: Any, shape: tuple[int, ...]) -> Any:
  return jax.tree.map(lambda _: jnp.zeros(shape, state_dtype()), tree)


def _need_params(call: str, params: Any) -> None:
  if params is None:
    fail(call, "params", params,
         "must be given: the update:weight ratio needs the weights (call `update(updates, state, params)`)")


def monitor() -> optax.GradientTransformation:
  r"""Records the update:weight ratio, update norm and weight norm per leaf; place it **last** in a chain.

  A pass-through transform: the updates come out unchanged. It sees the final updates :math:`\Delta w`
  and the weights :math:`w` (before the step) and records, per leaf :math:`\ell`, the squared norms from
  which :func:`read_monitor` gives

  .. math:: r_\ell = \frac{\lVert \Delta w_\ell \rVert_2}{\lVert w_\ell \rVert_2},\qquad
            r = \frac{\sqrt{\sum_\ell \lVert \Delta w_\ell \rVert_2^2}}{\sqrt{\sum_\ell \lVert w_\ell \rVert_2^2}}

  CS231n's heuristic: the ratio should be around :math:`10^{-3}`; much lower, the learning rate is likely
  too low; much higher, too high. Gradient norms need the raw gradients, which the last transform of a
  chain does not see: :func:`monitored` wraps an optimizer and records them too (one more reduction per leaf).

  Non-finite updates are recorded as they are. Inside ``optax.apply_if_finite`` a skipped step leaves the
  state as it was (the last finite step stays recorded); after it, a skipped step records zero updates.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`MonitorState`; ``update`` needs ``params``.

  Example:
    >>> import jax.numpy as jnp, optax, lrtools as lrt
    >>> from lrtools.diagnostics import monitor, read_monitor
    >>> params = {"w": jnp.array([3.0, 4.0]), "b": jnp.array([0.0])}
    >>> opt = optax.chain(lrt.sgd(0.01), monitor())
    >>> state = opt.init(params)
    >>> grads = {"w": jnp.array([0.6, 0.8]), "b": jnp.array([1.0])}
    >>> updates, state = opt.update(grads, state, params)
    >>> out = read_monitor(state)
    >>> print(round(float(out["update_ratio/w"]), 6), float(out["update_ratio/b"]),
    ...       round(float(out["learning_rate"]), 3))
    0.002 inf 0.01

  References:
    CS231n "Neural Networks Part 3: Learning and Evaluation" (ratio of weights:updates).
  """
  def init_fn(params):
    return MonitorState(optax.EmptyState(), _zeros(params, (2,)), None, zero_count())

  def update_fn(updates, state, params=None):
    _need_params("monitor.update", params)
    return updates, MonitorState(state.inner_state, _sq_norms(updates, params), None,
                                 optax.safe_increment(state.count))

  return optax.GradientTransformation(init_fn, update_fn)


def monitored(optimizer: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
  r"""Wraps ``optimizer`` to record gradient norms too: the raw gradients, the final updates and the weights.

  .. math:: \text{per leaf: } \lVert g_\ell\rVert,\ \lVert\Delta w_\ell\rVert,\ \lVert w_\ell\rVert,\
            \frac{\lVert\Delta w_\ell\rVert}{\lVert w_\ell\rVert};\qquad
            \lVert g\rVert = \sqrt{\textstyle\sum_\ell \lVert g_\ell\rVert^2}

  What :func:`monitor` records, plus the gradient norm (what ``optax.global_norm`` of the gradients gives).
  The updates are ``optimizer``'s, unchanged; extra arguments (e.g. ``value`` for
  ``optax.contrib.reduce_on_plateau``) are passed on.

  Args:
    optimizer: any ``optax.GradientTransformation`` (lrtools or optax; ``apply_if_finite``, ``partition``).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with state :class:`MonitorState` (``inner_state`` is
    ``optimizer``'s); ``update`` needs ``params``. Read it with :func:`read_monitor`.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> from lrtools.diagnostics import monitored, read_monitor
    >>> opt = monitored(lrt.momentum(0.1, 0.9))
    >>> params = {"w": jnp.array([3.0, 4.0])}
    >>> state = opt.init(params)
    >>> _, state = opt.update({"w": jnp.array([0.3, 0.4])}, state, params)
    >>> out = read_monitor(state)
    >>> sorted(out)
    ['grad_norm', 'grad_norm/w', 'learning_rate', 'update_norm', 'update_norm/w', 'update_ratio',
     'update_ratio/w', 'weight_norm', 'weight_norm/w']
    >>> [round(float(out[k]), 4) for k in ("grad_norm", "update_norm", "weight_norm", "update_ratio")]
    [0.5, 0.05, 5.0, 0.01]

  References:
    CS231n "Neural Networks Part 3" (babysitting the learning process).
  """
  if not isinstance(optimizer, optax.GradientTransformation):
    fail("monitored", "optimizer", optimizer, "must be an optax.GradientTransformation (e.g. lrt.sgd(0.1))")
  inner = optax.with_extra_args_support(optimizer)

  def init_fn(params):
    return MonitorState(inner.init(params), _zeros(params, (2,)), _zeros(params, ()), zero_count())

  def update_fn(grads, state, params=None, **extra_args):
    _need_params("monitored.update", params)
    grad_sq_norms = _sq_norms(grads)  # before the update: the gradients need not stay alive after it
    updates, inner_state = inner.update(grads, state.inner_state, params, **extra_args)
    return updates, MonitorState(inner_state, _sq_norms(updates, params), grad_sq_norms,
                                 optax.safe_increment(state.count))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _per_leaf(call: str, states: list, field: str) -> dict[str, jax.Array]:
  """``{leaf name: value}`` of one field over every monitor found (monitors in several branches of a
  ``partition`` see different leaves; two monitors seeing one leaf would be ambiguous)."""
  out: dict[str, jax.Array] = {}
  for _, state in states:
    for path, value in jax.tree_util.tree_flatten_with_path(getattr(state, field))[0]:
      name = path_name(path)
      if name in out:
        raise ValueError(f"`{call}(opt_state=...)` holds several monitors of the leaf {name!r}; keep one "
                         f"(monitor() last in the outer chain, or monitored(...) outermost), got opt_state "
                         f"with {len(states)} monitors")
      out[name] = value
  return out


def read_monitor(opt_state: Any) -> dict[str, jax.Array]:
  r"""The monitored quantities of the last step, as one flat dict keyed ``"<quantity>[/<leaf path>]"``.

  .. math:: \texttt{update\_ratio/}\ell = \frac{\lVert \Delta w_\ell\rVert}{\lVert w_\ell\rVert},\qquad
            \texttt{update\_ratio} = \frac{\lVert \Delta w\rVert}{\lVert w\rVert}
            = \frac{\sqrt{\sum_\ell \lVert \Delta w_\ell\rVert^2}}{\sqrt{\sum_\ell \lVert w_\ell\rVert^2}}

  Keys: ``"update_ratio"``, ``"update_norm"``, ``"weight_norm"`` (global, over all leaves) and the same per
  leaf, e.g. ``"update_ratio/Dense_0/kernel"``; with :func:`monitored` also ``"grad_norm"`` and
  ``"grad_norm/<leaf>"`` (when every monitor found is a :func:`monitored` one); the learning rate(s) the chain
  records (``lrtools.current_hyperparams``), as ``"learning_rate"`` (or ``"learning_rate/<branch>"`` for
  several, e.g. under ``optax.partition``). Leaf paths are dict keys and sequence indices joined by ``/``; a
  parameter that is a single array has no leaf keys (the global values are its). A ratio with ``‖w‖ = 0`` is
  ``inf`` (``NaN`` when the update is zero too); non-finite norms are kept as they are. Before the first
  update every norm is 0 and every ratio NaN. Monitors in several branches of ``optax.partition`` are merged
  (their global values are over all their leaves); a monitor nested inside a :func:`monitored` one is not read
  (the outermost monitors are). Under ``jax.vmap``, or for states stacked by ``lax.scan``, values keep the
  leading axes. No host transfer: the values are JAX arrays, and the call works inside ``jit`` (e.g. in a scan
  body, to record a series per step).

  Args:
    opt_state: an optimizer state holding one or more :class:`MonitorState`.

  Returns:
    ``dict[str, jax.Array]``.

  Example:
    >>> import jax.numpy as jnp, lrtools as lrt
    >>> from lrtools.diagnostics import monitored, read_monitor
    >>> opt = monitored(lrt.sgd(0.5))
    >>> params = {"a": jnp.array([1.0, 0.0]), "b": jnp.array([2.0])}
    >>> state = opt.init(params)
    >>> _, state = opt.update({"a": jnp.array([0.0, 0.02]), "b": jnp.array([0.02])}, state, params)
    >>> {k: round(float(v), 4) for k, v in sorted(read_monitor(state).items()) if "/" not in k}
    {'grad_norm': 0.0283, 'learning_rate': 0.5, 'update_norm': 0.0141, 'update_ratio': 0.0063, 'weight_norm': 2.2361}

  References:
    CS231n "Neural Networks Part 3: Learning and Evaluation" (ratio of weights:updates).
  """
  call = "read_monitor"
  states = find_states(opt_state, MonitorState)
  if not states:
    fail(call, "opt_state", type(opt_state).__name__,
         "must hold a monitor state (optax.chain(opt, monitor()) or monitored(opt))")
  sq = _per_leaf(call, states, "sq_norms")
  quantities = {"update_norm": {k: v[..., 0] for k, v in sq.items()},
                "weight_norm": {k: v[..., 1] for k, v in sq.items()}}
  if all(state.grad_sq_norms is not None for _, state in states):  # else monitor() alone or beside monitored()
    quantities["grad_norm"] = _per_leaf(call, states, "grad_sq_norms")
  zero = jnp.zeros([], state_dtype())
  out: dict[str, jax.Array] = {q: jnp.sqrt(sum(values.values(), zero)) for q, values in quantities.items()}
  out["update_ratio"] = out["update_norm"] / out["weight_norm"]
  for name in sq:
    if name:  # a single-array parameter has no leaf name: its values are the global ones
      norms = {q: jnp.sqrt(values[name]) for q, values in quantities.items()}
      out[f"update_ratio/{name}"] = norms["update_norm"] / norms["weight_norm"]
      out.update({f"{q}/{name}": value for q, value in norms.items()})
  for name, value in current_hyperparams(opt_state).items():
    if name == "learning_rate":
      out["learning_rate"] = value
    elif name.endswith("/learning_rate"):
      out["learning_rate/" + name[: -len("/learning_rate")]] = value
  return out
