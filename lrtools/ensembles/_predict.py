"""The ensemble's prediction: every member applied at once with ``jax.vmap``, then averaged."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from lrtools._typing import check_callable, check_one_of, fail

METHODS = ("mean_probs", "mean_logits")


def num_members(call: str, members: Any) -> int:
  """The common leading (member) axis of ``members``, or a ValueError naming ``call``'s ``members``."""
  leaves = jax.tree.leaves(members)
  sizes = {np.shape(x)[0] if np.ndim(x) else 0 for x in leaves}
  if not leaves or len(sizes) != 1 or 0 in sizes:
    fail(call, "members", f"<pytree with leading sizes {sorted(sizes)}>",
         "must be a pytree of arrays stacked on one common leading (member) axis of size >= 1")
  return sizes.pop()


def ensemble_predict(apply_fn: Callable, members: Any, x: Any, method: str = "mean_probs", *,
                     mask: Any = None) -> jax.Array:
  r"""The ensemble's prediction on ``x``: the members' softmax probabilities or logits, averaged.

  With :math:`f_m(x)` the logits of member :math:`m` among the :math:`M` kept by ``mask``:

  .. math::
     \text{mean\_probs:}\;\; \bar p(x) = \frac1M \sum_m \operatorname{softmax}(f_m(x)) \qquad
     \text{mean\_logits:}\;\; \bar f(x) = \frac1M \sum_m f_m(x)

  ``mean_probs`` (Huang et al.'s snapshot ensembles, CS231n) returns probabilities, ``mean_logits``
  returns logits (its softmax is the normalised geometric mean of the members' probabilities); the
  argmax of either is the ensemble's class. All members run in one ``jax.vmap``-ed call of ``apply_fn``,
  jittable. A member with non-finite logits makes the average non-finite (visible, never dropped
  silently) unless ``mask`` leaves it out; a mask that keeps no member gives NaN.

  Args:
    apply_fn: ``apply_fn(params, x) -> logits`` for one member (e.g. ``lambda p, x: model.apply({"params":
      p}, x)``), logits of shape ``(..., num_classes)``.
    members: the members' parameters stacked on a leading axis (e.g. :func:`snapshots`, or the params of
      a ``jax.vmap``-ed training over seeds).
    x: the inputs, shared by every member.
    method: ``"mean_probs"`` or ``"mean_logits"``.
    mask: optional bool ``(M,)``, the members to average (e.g. ``buffer.valid & buffer.finite`` of
      :func:`snapshot_buffer`); default all.

  Returns:
    ``mean_probs``: the averaged probabilities; ``mean_logits``: the averaged logits; shape of one
    member's output.

  Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> from lrtools.ensembles import ensemble_predict
    >>> members = jnp.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])  # three linear "models" w · x
    >>> apply_fn = lambda w, x: x * w[None, :]  # logits of two classes
    >>> print(np.round(np.asarray(ensemble_predict(apply_fn, members, jnp.ones((1, 2)))), 4))
    [[0.6269 0.3731]]
    >>> print(np.round(np.asarray(ensemble_predict(apply_fn, members, jnp.ones((1, 2)), "mean_logits")), 4))
    [[1.     0.3333]]

  References:
    Huang et al. 2017, "Snapshot Ensembles: Train 1, get M for free" (ICLR), §3 (averaged softmax);
    CS231n "Neural Networks Part 3" (model ensembles).
  """
  call = "ensemble_predict"
  check_callable(call, "apply_fn", apply_fn)
  check_one_of(call, "method", method, METHODS)
  size = num_members(call, members)
  if mask is not None:
    if getattr(mask, "dtype", None) != np.dtype(bool) or np.shape(mask) != (size,):
      fail(call, "mask", mask, f"must be a bool array of shape ({size},), one flag per member")
  logits = jax.vmap(apply_fn, in_axes=(0, None))(members, x)
  values = jax.nn.softmax(logits, axis=-1) if method == "mean_probs" else logits
  if mask is None:
    return jnp.mean(values, axis=0)
  keep = jnp.asarray(mask).reshape((size,) + (1,) * (values.ndim - 1))
  total = jnp.sum(jnp.where(keep, values, jnp.zeros((), values.dtype)), axis=0)
  return total / jnp.sum(mask).astype(values.dtype)
