"""Optuna as the search engine: ask a batch of trials, evaluate it in one vectorized call, tell; repeat.

The seed's worker/master design on an existing engine. Every process that calls :func:`optuna_search` with
the same ``storage`` and ``study_name`` is a *worker* of one shared study (``load_if_exists=True``): Optuna's
storage gives each asked trial a unique number, each worker tells only the trials it asked, so no trial is
lost and none is told twice. A *master* reads the study at any time with :func:`optuna_result` (the CLI's
``lrtools search --storage URL --study NAME --report``).

Storages (``storage=``):

- ``None``: in memory, this process only;
- a file path (no ``://``): an Optuna journal file (``JournalStorage`` + ``JournalFileBackend``), several
  processes on one machine (file locks; no database needed);
- ``sqlite:///study.db``: several processes on one machine;
- any other SQLAlchemy URL, e.g. ``postgresql://user:pass@host/db`` or ``mysql+pymysql://...``: many
  machines (install the driver, e.g. ``psycopg2-binary`` or ``PyMySQL``);
- ``grpc://host:port``: Optuna's gRPC storage proxy (``optuna.storages.run_grpc_proxy_server`` in front of an
  RDB on one machine, ``grpcio`` installed): many machines, without each worker holding database connections;
- any ``optuna.storages.BaseStorage`` instance, as is.

Non-finite scores: a run that diverged (NaN or inf) is told to Optuna as the *worst* value (``+inf`` when
minimizing, ``-inf`` when maximizing), not as a failed trial: TPE then counts the region as bad and samples
it less, whereas a FAIL trial would be ignored and the region sampled again. The raw score is kept in the
trial's user attribute ``"lrtools_score"`` and is what the :class:`SearchResult` holds (ranked worst there).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from lrtools._typing import check_callable, check_flag, check_integer, fail, float_dtype
from lrtools.search._random import evaluate_configs
from lrtools.search._result import SearchResult
from lrtools.search._space import check_key, check_space, choice, int_uniform, log_uniform, param_dtype, uniform

INSTALL_HINT = 'install it with `pip install "lrtools[search]"` (or `pip install optuna`)'
SAMPLERS = ("tpe", "random")
RAW_SCORE = "lrtools_score"  # user attribute holding a non-finite raw score (Optuna is told the worst value)
_TRIAL = "__lrtools_trial_number__"  # extra config entry: each trial's key is fold_in(key, trial number)


def import_optuna(call: str):
  """``optuna``, or a ValueError with the install hint (lrtools never imports it at import time)."""
  try:
    import optuna
  except ImportError:
    raise ValueError(f"`{call}(...)` needs Optuna, which is not installed: {INSTALL_HINT}") from None
  return optuna


def distributions(space: dict) -> dict:
  """The lrtools space as Optuna distributions: ``log_uniform`` → ``FloatDistribution(log=True)``,
  ``uniform`` → ``FloatDistribution``, ``int_uniform`` → ``IntDistribution`` (both ends included, as in
  lrtools), ``choice`` → ``CategoricalDistribution`` of its values."""
  d = import_optuna("optuna_search").distributions
  out = {}
  for name, p in space.items():
    if p.kind == "choice":
      out[name] = d.CategoricalDistribution(list(p.values))
    elif p.kind == "int_uniform":
      out[name] = d.IntDistribution(int(p.low), int(p.high))
    else:
      out[name] = d.FloatDistribution(float(p.low), float(p.high), log=p.kind == "log_uniform")
  return out


def space_of(dists: dict) -> dict:
  """The inverse of :func:`distributions` (a study's distributions as an lrtools space, for a master)."""
  d = import_optuna("optuna_result").distributions
  out = {}
  for name, dist in dists.items():
    if isinstance(dist, d.CategoricalDistribution):
      out[name] = choice(dist.choices)
    elif isinstance(dist, d.IntDistribution):
      out[name] = int_uniform(dist.low, dist.high)
    else:
      out[name] = (log_uniform if dist.log else uniform)(dist.low, dist.high)
  return out


def open_storage(call: str, storage: Any):
  """``storage=`` as Optuna takes it: ``None``, an RDB URL (str), a journal file, a gRPC proxy, a storage."""
  optuna = import_optuna(call)
  if storage is None or isinstance(storage, optuna.storages.BaseStorage):
    return storage
  if isinstance(storage, os.PathLike) or (isinstance(storage, str) and storage and "://" not in storage):
    try:
      from optuna.storages.journal import JournalFileBackend
    except ImportError:  # Optuna < 4.0
      from optuna.storages import JournalFileStorage as JournalFileBackend
    return optuna.storages.JournalStorage(JournalFileBackend(os.fspath(storage)))
  if isinstance(storage, str) and storage.startswith("grpc://"):
    host, _, port = storage[len("grpc://"):].rstrip("/").rpartition(":")
    if not host or not port.isdigit():
      fail(call, "storage", storage, "must be grpc://HOST:PORT for Optuna's gRPC storage proxy")
    if not hasattr(optuna.storages, "GrpcStorageProxy"):
      fail(call, "storage", storage, "needs Optuna >= 4.2 for its gRPC storage proxy")
    try:
      with warnings.catch_warnings():  # the proxy is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.GrpcStorageProxy(host=host, port=int(port))
    except ImportError:
      fail(call, "storage", storage, "needs grpcio for Optuna's gRPC storage proxy (pip install grpcio)")
  if isinstance(storage, str) and storage:
    return storage  # an SQLAlchemy URL: Optuna builds (and caches) its RDBStorage
  fail(call, "storage", storage, "must be None, a journal file path, an RDB URL (sqlite:///FILE, "
       "postgresql://..., mysql+pymysql://...), grpc://HOST:PORT or an optuna.storages.BaseStorage")


def create_study(call: str, storage: Any, study_name: str | None, direction: str, sampler: Any = None):
  """``optuna.create_study(..., load_if_exists=True)``, retried while workers started together on a fresh
  database race to create Optuna's tables (optuna/optuna#1092): the losers retry once the winner made them."""
  optuna = import_optuna(call)
  for attempt in range(6):
    try:
      return optuna.create_study(storage=storage, study_name=study_name, sampler=sampler, direction=direction,
                                 load_if_exists=True)
    except Exception as e:  # noqa: BLE001 -- only SQLAlchemy's errors are retried
      if attempt == 5 or not type(e).__module__.startswith("sqlalchemy"):
        raise
      time.sleep(0.05 * 2**attempt + 0.01 * (os.getpid() % 7))  # backoff, staggered between processes


def _sampler(call: str, sampler: Any, seed: int):
  """The sampler to use: an Optuna sampler as is; ``None``/``"tpe"`` TPE and ``"random"`` seeded by ``seed``."""
  optuna = import_optuna(call)
  if isinstance(sampler, optuna.samplers.BaseSampler):
    return sampler
  if sampler is None or sampler == "tpe":
    with warnings.catch_warnings():  # constant_liar is experimental before Optuna 5
      warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
      # constant_liar: trials asked but not yet told (this batch, other workers') count as bad, so one
      # batch spreads out instead of asking eight times near the same point.
      return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
  if sampler == "random":
    return optuna.samplers.RandomSampler(seed=seed)
  fail(call, "sampler", sampler, f"must be None, one of {', '.join(map(repr, SAMPLERS))} or an "
       "optuna.samplers.BaseSampler")


def _seed(key: jax.Array, number: int) -> int:
  """A NumPy seed from ``fold_in(key, number)``."""
  return int(jax.random.randint(jax.random.fold_in(key, number), (), 0, 2**31 - 1, jnp.int32))


def _suggest(trial: Any, name: str, dist: Any) -> None:
  """Samples ``dist`` for ``trial`` through Optuna's public ``suggest_*`` API."""
  d = import_optuna("optuna_search").distributions
  if isinstance(dist, d.CategoricalDistribution):
    trial.suggest_categorical(name, dist.choices)
  elif isinstance(dist, d.IntDistribution):
    trial.suggest_int(name, dist.low, dist.high)
  else:
    trial.suggest_float(name, dist.low, dist.high, log=dist.log)


def _told_value(score: float, minimize: bool) -> float:
  return score if math.isfinite(score) else (math.inf if minimize else -math.inf)


def optuna_search(objective: Callable, space: dict, num_trials: int, *, key: jax.Array, storage: Any = None,
                  study_name: str | None = None, batch_size: int = 8, sampler: Any = None,
                  minimize: bool = True, chunk_size: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> SearchResult:
  r"""Searches ``space`` with an Optuna study, ``batch_size`` trials at a time in one vectorized call.

  Each round asks ``batch_size`` trials (fewer in the last round), evaluates them together with
  ``evaluate_configs`` (``jax.vmap``; a last, smaller batch is padded to the same shape, so it compiles
  once) and tells their scores:

  .. math:: \{x^{(i)}\}_{i=1}^{B} \sim \text{sampler}(\text{study}),\qquad
            s^{(i)} = \text{objective}(x^{(i)}, \text{fold\_in}(\text{key}, n_i))

  with :math:`n_i` trial :math:`i`'s number in the study, so a trial's score does not depend on its batch
  or its worker.

  ``num_trials`` counts the trials *this call* asks: ``k`` workers sharing a study (same ``storage`` and
  ``study_name``) add ``k × num_trials`` trials to it. The default sampler is TPE with ``constant_liar``
  (pending trials count as bad, so a batch spreads out), seeded from ``fold_in(key, n₀)`` with ``n₀`` the
  number of this call's first trial: one process is reproducible, and workers given the same key still
  sample differently. A score that is not finite is told as the worst value (see the module docstring).
  If ``objective`` raises (or the process is interrupted), the batch's trials are told FAIL before the error
  propagates, so the study keeps no trial RUNNING forever.

  Args:
    objective: ``objective(config, key) -> scalar``, jittable in ``config`` (a dict of scalars).
    space: a dict of names to :func:`log_uniform`, :func:`uniform`, :func:`int_uniform`, :func:`choice`.
    num_trials: the trials this call asks (at least 1).
    key: a PRNG key; trial ``n`` is evaluated with ``fold_in(key, n)``.
    storage: ``None`` (in memory), a journal file path, an RDB URL, ``grpc://HOST:PORT`` or an Optuna
      storage (see the module docstring).
    study_name: the study to create or join (``None``: a fresh name from Optuna).
    batch_size: trials asked and evaluated together.
    sampler: ``None`` or ``"tpe"`` (seeded TPE), ``"random"`` (seeded), or any ``optuna.samplers`` instance.
    minimize: lower scores are better (the study's direction; a joined study must agree).
    chunk_size: evaluate at most this many trials at once inside a batch (memory); default all.
    progress: ``progress(done, num_trials)``, called after each batch.

  Returns:
    A :class:`SearchResult` of *every* COMPLETE trial of the study (all workers' so far, in trial-number
    order) with ``study`` the ``optuna.Study``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from lrtools.search import log_uniform, optuna_search
    >>> objective = lambda c, k: (jnp.log10(c["learning_rate"]) + 2.0) ** 2  # best at 1e-2
    >>> res = optuna_search(objective, {"learning_rate": log_uniform(1e-5, 1.0)}, 24, key=jax.random.key(0))
    >>> res.num_trials, len(res.study.trials), res.best_score < 0.05
    (24, 24, True)

  References:
    Akiba et al. 2019, "Optuna: A Next-generation Hyperparameter Optimization Framework"; Bergstra et al.
    2011, "Algorithms for Hyper-Parameter Optimization" (TPE); CS231n "Neural Networks Part 3".
  """
  call = "optuna_search"
  check_callable(call, "objective", objective)
  check_space(call, space)
  check_integer(call, "num_trials", num_trials, 1)
  check_key(call, key)
  check_integer(call, "batch_size", batch_size, 1)
  check_flag(call, "minimize", minimize)
  if chunk_size is not None:
    check_integer(call, "chunk_size", chunk_size, 1)
  if study_name is not None and (not isinstance(study_name, str) or not study_name):
    fail(call, "study_name", study_name, "must be None or a non-empty str")
  if progress is not None:
    check_callable(call, "progress", progress)
  optuna = import_optuna(call)
  if not (sampler is None or isinstance(sampler, optuna.samplers.BaseSampler) or sampler in SAMPLERS):
    _sampler(call, sampler, 0)  # raises, naming the argument (before a study is created)
  num_trials, batch_size = int(num_trials), int(batch_size)
  dists = distributions(space)
  direction = "minimize" if minimize else "maximize"
  given = isinstance(sampler, optuna.samplers.BaseSampler)
  # Ours is seeded from the first trial's number, known once asked: until then (relative sampling happens
  # at ask time) a placeholder that samples nothing. A given sampler is used from the start (a grid sampler
  # prepares each trial when it is asked).
  study = create_study(call, open_storage(call, storage), study_name, direction,
                       sampler if given else optuna.samplers.RandomSampler())
  if study.direction.name.lower() != direction:
    fail(call, "minimize", minimize, f"must match the direction of the existing study {study.study_name!r} "
         f"({study.direction.name.lower()})")

  def evaluate(config, _):  # one jitted function for every batch: keys from trial numbers, not positions
    params = {name: v for name, v in config.items() if name != _TRIAL}
    return objective(params, jax.random.fold_in(key, config[_TRIAL]))

  asked = 0
  while asked < num_trials:
    size = min(batch_size, num_trials - asked)
    trials = []
    try:
      for _ in range(size):
        trials.append(study.ask())  # bare, so that the first trial's number can seed the sampler
        if asked == 0 and len(trials) == 1 and not given:
          study.sampler = _sampler(call, sampler, _seed(key, trials[0].number))
        for name, dist in dists.items():
          try:
            _suggest(trials[-1], name, dist)
          except ValueError as e:  # a joined study that sampled ``name`` from another distribution
            fail(call, "space", space, f"must match the study's distribution of {name!r} ({e})")
      scores = evaluate_configs(evaluate, _padded(space, trials, batch_size), key, chunk_size=chunk_size,
                                call=call)
    except BaseException:
      for trial in trials:
        with contextlib.suppress(Exception):  # the original error is the one to see
          study.tell(trial, state=optuna.trial.TrialState.FAIL)
      raise
    for trial, score in zip(trials, np.asarray(scores, np.float64)[:size].tolist()):
      if not math.isfinite(score):
        trial.set_user_attr(RAW_SCORE, repr(score))
      study.tell(trial, _told_value(score, minimize))
    asked += size
    if progress is not None:
      progress(asked, num_trials)
  return optuna_result(study, space)


def _padded(space: dict, trials: list, batch_size: int) -> dict:
  """The batch's configs (plus trial numbers), padded to ``batch_size`` by repeating the last trial."""
  rows = trials + [trials[-1]] * (batch_size - len(trials))
  configs = {name: jnp.asarray(np.asarray([t.params[name] for t in rows]), param_dtype(p))
             for name, p in space.items()}
  configs[_TRIAL] = jnp.asarray([t.number for t in rows], jnp.int32)
  return configs


def optuna_result(study: Any, space: dict | None = None) -> SearchResult:
  """The :class:`SearchResult` of an Optuna study's COMPLETE trials, as a master sees a shared study.

  Every worker's trials so far, in trial-number order (result index ``i`` is the ``i``-th completed trial,
  not Optuna's trial number ``i`` when some failed or are running); a trial lacking one of ``space``'s
  parameters is skipped. Warnings add how many trials failed and how many are still running (being
  evaluated by a worker, or left by one that was killed).

  Args:
    study: an ``optuna.Study`` (e.g. ``optuna.load_study(study_name=..., storage=...)``), single-objective.
    space: the lrtools space; default rebuilt from the distributions of the study's completed trials.

  Returns:
    A :class:`SearchResult` with ``study`` set; ``minimize`` is the study's direction.

  Example:
    >>> import optuna
    >>> from lrtools.search import optuna_result
    >>> study = optuna.create_study()
    >>> study.add_trial(optuna.trial.create_trial(params={"lr": 0.1}, value=1.5,
    ...     distributions={"lr": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)}))
    >>> res = optuna_result(study)
    >>> res.space, res.best_score
    ({'lr': LogUniform(low=0.001, high=1.0, kind='log_uniform')}, 1.5)
  """
  return snapshot(study, space)[0]


def snapshot(study: Any, space: dict | None = None) -> tuple[SearchResult, list[int]]:
  """:func:`optuna_result` and the Optuna number of each of its trials, from one read of the study."""
  optuna = import_optuna("optuna_result")
  if not isinstance(study, optuna.Study):
    fail("optuna_result", "study", study, "must be an optuna.Study")
  if len(study.directions) != 1:
    fail("optuna_result", "study", study, "must have a single objective")
  states = optuna.trial.TrialState
  trials = study.get_trials(deepcopy=False)
  done = sorted((t for t in trials if t.state == states.COMPLETE), key=lambda t: t.number)
  if space is None:
    found: dict = {}
    for t in done:
      found.update({k: v for k, v in t.distributions.items() if k not in found})
    if not found:
      fail("optuna_result", "study", study.study_name, "has no completed trial yet")
    space = space_of({k: found[k] for k in sorted(found)})  # storages differ in order: names sorted
  check_space("optuna_result", space)
  done = [t for t in done if all(name in t.params for name in space)]
  if not done:
    fail("optuna_result", "study", study.study_name, "has no completed trial with the parameters "
         f"{', '.join(space)} yet")
  configs = {name: np.asarray(np.asarray([t.params[name] for t in done]), param_dtype(p))
             for name, p in space.items()}
  scores = np.asarray([float(t.user_attrs.get(RAW_SCORE, t.value)) for t in done], float_dtype())
  notes = []
  for state in (states.FAIL, states.RUNNING):
    count = sum(t.state == state for t in trials)
    if count:
      notes.append(f"{count} trial{'s' * (count > 1)} of study {study.study_name!r} "
                   f"{'failed' if state == states.FAIL else 'still running (a worker busy, or killed)'}")
  minimize = study.direction == optuna.study.StudyDirection.MINIMIZE
  result = SearchResult.build(space, configs, scores, minimize=minimize, study=study, extra_warnings=tuple(notes))
  return result, [t.number for t in done]
