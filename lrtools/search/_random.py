"""Random search with every trial trained at once: configurations sampled from a space, evaluated together
with ``jax.vmap`` in chunks, sharded over devices when there are several.

Trial ``i`` always gets the key ``fold_in(key, i)`` and the objective sees one trial's configuration (a
dict of scalars), so chunking, padding and sharding change nothing in the scores: they only decide how many
trials one compiled call trains together.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from lrtools._typing import check_callable, check_flag, check_integer, fail
from lrtools.search import _sharding
from lrtools.search._result import SearchResult
from lrtools.search._space import Space, _sample, check_key, check_space


class NotAScore(Exception):
  """Raised while tracing when the objective's output is not one real scalar (re-raised as a ValueError that
  names the public call and argument, outside the compiled function: the call's name is not a static
  argument, so every public call shares one compiled program)."""


def check_score(out: Any) -> None:
  """The objective returned one real number (checked at trace time, on the shape and dtype: once per
  compiled program, so repeated calls with the same objective and shapes cost nothing more)."""
  if isinstance(out, (int, float)) and not isinstance(out, bool):  # a Python constant is a scalar too
    return
  shape, dtype = getattr(out, "shape", None), getattr(out, "dtype", None)
  if shape != () or dtype is None or not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
    raise NotAScore(str(jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)),
                                               out)))


def not_a_score(call: str, name: str, fn: Callable, error: NotAScore) -> None:
  fail(call, name, fn, f"must return one real scalar per configuration, but returned {error}")


def _dtype(x: Any) -> np.dtype:
  """The dtype of an array (no device-to-host copy) or of a sequence."""
  dtype = getattr(x, "dtype", None)
  return np.dtype(dtype) if dtype is not None else np.asarray(x).dtype


def _one_trial(objective: Callable, static_args: tuple, key: jax.Array, config: dict, index: jax.Array):
  out = objective(config, jax.random.fold_in(key, index), *static_args)
  check_score(out)
  return out


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _evaluate_chunk(objective: Callable, static_args: tuple, shards: int, width: int, key: jax.Array,
                    configs: dict, indices: jax.Array) -> jax.Array:
  """One chunk of trials in one compiled call (compiled once per objective, arguments and chunk shape).

  The chunk is split into ``shards`` equal parts (one per device, vmapped so the sharded axis stays
  sharded); within a part ``lax.map`` runs groups of ``width`` trials, each group vmapped together.
  """
  trial = functools.partial(_one_trial, objective, static_args, key)
  def part(xs):
    if width == 1:
      return jax.lax.map(lambda x: trial(*x), xs)
    return jax.lax.map(lambda x: trial(*x), xs, batch_size=width)
  xs = (configs, indices)
  if shards == 1:
    return part(xs)
  split = jax.tree_util.tree_map(lambda x: x.reshape(shards, -1), xs)
  return jax.vmap(part)(split).reshape(-1)


def default_width(size: int) -> int:
  """Trials vmapped together by default: all of a chunk on an accelerator, one at a time on CPU.

  XLA's CPU backend runs the batched matmuls of a vmapped training step (both operands batched) slower than
  one trial's plain matmuls: benchmarks/bench_search.py measured a
  full vmap at 0.67–0.85× a Python loop of the jitted trial on 2 cores (N = 8–64), while trials run one after
  another inside one compiled ``lax.map`` matched the loop (0.99–1.03×, one dispatch and no per-trial
  ``fold_in`` instead of N). GPUs and TPUs gain from the width instead.
  """
  return 1 if jax.default_backend() == "cpu" else size


def evaluate_configs(objective: Callable, configs: dict, key: jax.Array, *, chunk_size: int | None = None,
                     vmap_size: int | None = None, static_args: tuple = (),
                     progress: Callable[[int, int], None] | None = None,
                     call: str = "evaluate_configs") -> np.ndarray:
  r"""The score of every configuration, trials trained together with ``jax.vmap`` in chunks.

  .. math:: s_i = \text{objective}(\{k: c_k[i]\},\ \text{fold\_in}(\text{key}, i), *\text{static\_args})

  Trials are cut into chunks of ``chunk_size`` (the last one padded with copies of the last trial, so every
  chunk has one shape and compiles once); with several devices each chunk is padded to a multiple of the
  device count and sharded over them. Inside a chunk, groups of ``vmap_size`` trials are trained together
  with ``jax.vmap`` and the groups run one after another in the same compiled ``lax.map``. Every chunk is
  dispatched before any score is read back. One compiled program serves every call with the same
  objective, ``static_args``, chunk shape and dtypes (the objective's output is checked when it is traced).
  With one chunk on one device, ``configs`` go to the program as they are (device arrays stay on the
  device: no host round trip). The scores do not depend on ``chunk_size``, ``vmap_size`` or
  the devices (up to float rounding: a batched matmul may round differently from a plain one).

  Args:
    objective: ``objective(config, key, *static_args) -> scalar``, jittable in ``config`` (a dict of scalars).
    configs: name -> array of ``num_trials`` values (e.g. from ``sample_space``).
    key: the PRNG key; trial ``i`` gets ``fold_in(key, i)``.
    chunk_size: trials per compiled call (bounds memory); default all of them at once.
    vmap_size: trials vmapped together inside a chunk; default the whole chunk on a GPU/TPU and 1 on CPU,
      where XLA runs a loop of plain matmuls faster than batched ones (see :func:`default_width`).
    static_args: extra hashable arguments passed to ``objective`` as they are (e.g. a step budget).
    progress: ``progress(done, num_trials)``, called as each chunk's scores arrive (for a progress bar).
    call: the public call named in errors.

  Returns:
    A NumPy array of ``num_trials`` scores, as the objective returned them (NaN and inf kept).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from lrtools.search import evaluate_configs
    >>> scores = evaluate_configs(lambda c, k: (c["x"] - 1.0) ** 2, {"x": jnp.array([0.0, 1.0, 3.0])},
    ...                           jax.random.key(0))
    >>> scores.tolist()
    [1.0, 0.0, 4.0]

  References:
    Bergstra & Bengio 2012, "Random Search for Hyper-Parameter Optimization".
  """
  check_callable(call, "objective", objective)
  check_key(call, key)
  if not isinstance(configs, dict) or not configs or not all(isinstance(k, str) for k in configs):
    fail(call, "configs", configs, "must be a non-empty dict of str names to arrays")
  sizes = {np.shape(v) for v in configs.values()}
  if len(sizes) != 1 or len(next(iter(sizes))) != 1 or next(iter(sizes))[0] < 1:
    fail(call, "configs", configs, "must hold 1-D arrays of one common length num_trials >= 1")
  if not all(_dtype(v).kind in "biuf" for v in configs.values()):
    fail(call, "configs", configs, "must hold arrays of real numbers")
  num_trials = next(iter(sizes))[0]
  check_integer(call, "configs", num_trials, 1)  # trial indices are int32
  if chunk_size is not None:
    check_integer(call, "chunk_size", chunk_size, 1)
  if vmap_size is not None:
    check_integer(call, "vmap_size", vmap_size, 1)
  if progress is not None:
    check_callable(call, "progress", progress)
  try:
    hash(tuple(static_args))
  except TypeError:
    fail(call, "static_args", static_args, "must be a tuple of hashable values")

  sharding = _sharding.trial_sharding()
  shards = _sharding.num_shards(sharding)
  size = min(int(chunk_size or num_trials), num_trials)
  size = -(-size // shards) * shards  # a multiple of the device count
  width = min(int(vmap_size or default_width(size)), size // shards)
  run = functools.partial(_evaluate_chunk, objective, tuple(static_args), shards, width, key)
  try:
    if shards == 1 and size == num_trials:  # one chunk, no padding: no host round trip
      outs = [run({k: jnp.asarray(v) for k, v in configs.items()}, np.arange(num_trials, dtype=np.int32))]
    else:
      host = {k: np.asarray(v) for k, v in configs.items()}
      outs = []
      for start in range(0, num_trials, size):  # dispatch every chunk, then read back
        take = np.minimum(np.arange(start, start + size), num_trials - 1)  # pad with the last trial
        outs.append(run(*_sharding.shard(({k: v[take] for k, v in host.items()}, take.astype(np.int32)),
                                         sharding)))
  except NotAScore as e:
    not_a_score(call, "objective", objective, e)
  scores = []
  for i, out in enumerate(outs):  # blocks on each chunk in turn, while the later ones run
    scores.append(_sharding.gather(out))
    if progress is not None:
      progress(min((i + 1) * size, num_trials), num_trials)
  return np.concatenate(scores)[:num_trials]


@jax.jit
def _search_keys(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The sampling and the trial keys of a search, in one dispatch (eager ``fold_in`` costs ~1 ms each)."""
  return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def random_search(objective: Callable, space: Space, num_trials: int, *, key: jax.Array, minimize: bool = True,
                  chunk_size: int | None = None, vmap_size: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> SearchResult:
  r"""Random search: ``num_trials`` configurations sampled from ``space``, trained together, the best kept.

  .. math:: c^{(i)} \sim \text{space},\quad s_i = \text{objective}(c^{(i)}, \text{fold\_in}(k_2, i)),\quad
            i^* = \arg\min_i s_i \ (\arg\max \text{ with } \texttt{minimize=False})

  Configurations are sampled with ``fold_in(key, 0)``, trials run with ``fold_in(key, 1)``. Trials are trained
  together with ``jax.vmap`` (chunks of ``chunk_size``), sharded over devices when there are several. A
  non-finite score is ranked worst and reported in ``warnings``, with the boundary warnings.

  Args:
    objective: ``objective(config, key) -> scalar``: trains and evaluates one configuration (a dict of
      scalars), jittable in ``config``, e.g. builds ``lrt.momentum(config["learning_rate"], ...)`` and runs
      ``lrt.train_loop``.
    space: name -> parameter (``log_uniform``, ``uniform``, ``int_uniform``, ``choice``).
    num_trials: the number of configurations (fits int32).
    key: the PRNG key of the whole search.
    minimize: lower scores are better (``False``: higher, e.g. accuracy).
    chunk_size: trials per compiled call; default all at once.
    vmap_size: trials vmapped together inside a chunk (see :func:`evaluate_configs`); default the whole
      chunk on a GPU/TPU, 1 on CPU.
    progress: ``progress(done, num_trials)``, called as each chunk's scores arrive (e.g. to advance a
      progress bar; with ``chunk_size=None`` once, at the end).

  Returns:
    A :class:`SearchResult`.

  Example:
    >>> import jax
    >>> from lrtools.search import log_uniform, random_search
    >>> space = {"learning_rate": log_uniform(1e-3, 1.0)}
    >>> objective = lambda c, k: (jax.numpy.log10(c["learning_rate"]) + 1.5) ** 2  # best at 10**-1.5
    >>> res = random_search(objective, space, 32, key=jax.random.key(0))
    >>> 0.02 < res.best_config["learning_rate"] < 0.05, res.warnings
    (True, [])

  References:
    Bergstra & Bengio 2012, "Random Search for Hyper-Parameter Optimization"; CS231n "Neural Networks Part 3".
  """
  check_callable("random_search", "objective", objective)
  check_space("random_search", space)
  check_integer("random_search", "num_trials", num_trials, 1)
  check_key("random_search", key)
  check_flag("random_search", "minimize", minimize)
  if progress is not None:
    check_callable("random_search", "progress", progress)
  sample_key, trial_key = _search_keys(key)
  configs = _sample(tuple(space.items()), sample_key, int(num_trials))  # = sample_space, checked above
  scores = evaluate_configs(objective, configs, trial_key, chunk_size=chunk_size, vmap_size=vmap_size,
                            progress=progress, call="random_search")
  return SearchResult.build(space, configs, scores, minimize=minimize)
