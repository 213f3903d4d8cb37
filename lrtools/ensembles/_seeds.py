"""Ensembles of independent runs: members stacked from a list, or the top ``k`` of a vectorized search.

Independently initialised models trained at once (CS231n's "same model, different initializations") need
no helper: ``jax.vmap`` a function of the PRNG key that initialises and runs ``lrtools.train_loop``, and
its stacked params are the ensemble's members::

    def run(key):
      params = model.init(key, x[:1])["params"]
      return lrt.train_loop(loss, opt, params, opt.init(params), batches).params

    members = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), 8))
    probs = ensemble_predict(apply_fn, members, x_test)
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lrtools._typing import check_flag, check_integer, fail
from lrtools.ensembles._predict import num_members


class TopK(NamedTuple):
  """What :func:`top_k_members` returns.

  Attributes:
    members: the chosen members stacked on a leading axis of ``k``, best first.
    scores: their scores ``(k,)``.
    indices: their int32 indices in the input ``(k,)``.
  """
  members: Any
  scores: jax.Array
  indices: jax.Array


def stack_members(trees: Sequence[Any]) -> Any:
  """Stacks same-structure pytrees (one per member) on a new leading axis, the layout ensembles take.

  Example:
    >>> import jax.numpy as jnp
    >>> from lrtools.ensembles import stack_members
    >>> stack_members([{"w": jnp.zeros(2)}, {"w": jnp.ones(2)}])["w"].shape
    (2, 2)
  """
  if isinstance(trees, (str, bytes)) or not isinstance(trees, Sequence) or len(trees) == 0:
    fail("stack_members", "trees", trees, "must be a non-empty sequence of pytrees")
  structures = {jax.tree.structure(t) for t in trees}
  if len(structures) != 1:
    fail("stack_members", "trees", f"<{len(structures)} different structures>", "must share one structure")
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def top_k_members(members: Any, scores: Any, k: int, *, minimize: bool = True) -> TopK:
  r"""The ``k`` best members of a vectorized run (seeds, or the configurations of a search), best first.

  .. math:: I = \operatorname{arg\,top\text{-}k}_i\, (\mp s_i), \qquad \text{members}[I]

  A non-finite score (a diverged run) ranks after every finite one, so it is chosen only when fewer
  than ``k`` scores are finite (its score in the result shows it). Ties keep the input order. Jittable
  (``k`` static). To keep the configurations with the parameters, pass both as one pytree:
  ``top_k_members((params, configs), scores, 4)``.

  Args:
    members: a pytree of arrays with a common leading axis of ``N`` runs (e.g. the params of
      ``jax.vmap(train)(configs)`` and the configs' arrays).
    scores: ``(N,)`` real scores, e.g. validation losses (``minimize=True``) or accuracies.
    k: how many to keep, an integer in ``[1, N]``.
    minimize: lower scores are better.

  Returns:
    A :class:`TopK` ``(members, scores, indices)``.

  Example:
    >>> import jax.numpy as jnp
    >>> from lrtools.ensembles import top_k_members
    >>> lrs = jnp.array([0.3, 0.01, 0.1, 1.0])
    >>> losses = jnp.array([0.20, 0.50, 0.10, jnp.nan])
    >>> best = top_k_members({"lr": lrs}, losses, 2)
    >>> print(best.members["lr"], best.indices)
    [0.1 0.3] [2 0]

  References:
    CS231n "Neural Networks Part 3" (model ensembles: top models discovered during cross-validation).
  """
  call = "top_k_members"
  size = num_members(call, members)
  check_flag(call, "minimize", minimize)
  check_integer(call, "k", k, 1, size)
  dtype = getattr(scores, "dtype", None)
  if (np.shape(scores) != (size,) or dtype is None or not jnp.issubdtype(dtype, jnp.number)
      or jnp.issubdtype(dtype, jnp.complexfloating) or dtype == np.dtype(bool)):
    fail(call, "scores", scores, f"must be a real array of shape ({size},), one score per member")
  scores = jnp.asarray(scores)
  key = (-scores if minimize else scores).astype(jnp.result_type(float, scores.dtype))
  key = jnp.where(jnp.isfinite(key), key, -jnp.inf)
  _, index = jax.lax.top_k(key, int(k))  # stable: ties in input order
  index = index.astype(jnp.int32)
  return TopK(jax.tree.map(lambda x: jnp.asarray(x)[index], members), scores[index], index)
