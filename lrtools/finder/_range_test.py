"""The learning-rate range test as one compiled loop: sweep, smooth, stop at divergence, suggest."""

from __future__ import annotations

import functools
import itertools
from typing import Any, Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrtools._loop import batch_at, leading_size, train_step
from lrtools._typing import INT32_MAX
from lrtools.finder._cache import ProgramKey, program_key
from lrtools.finder._checks import (check_arguments, check_representable, check_sweep, count_non_finite,
                                    host_count_non_finite, is_array_tree, warn_non_finite)
from lrtools.finder._result import RangeTestResult
from lrtools.finder._suggest import sweep_suggestions

Batches = Any  # pytree of arrays with a leading step axis | (key, step) -> batch | iterable of batches


class SweepState(NamedTuple):
  """The loop's carry. Buffers are preallocated; entries past ``step`` stay NaN."""
  step: jax.Array  # int32, the next step to run
  params: Any
  opt_state: Any
  smoothed: jax.Array  # running smoothed loss (the EMA itself when debiased)
  best: jax.Array  # best smoothed loss so far
  diverged: jax.Array  # bool
  losses: jax.Array  # (num_steps,)
  smoothed_losses: jax.Array  # (num_steps,)
  bad_data: jax.Array  # int32, non-finite values in the batches drawn from a batch function (saturating)


def sweep_lrs(start_lr: float, end_lr: float, num_steps: int, mode: str = "exponential") -> np.ndarray:
  r"""The learning rates of a range test, computed in float64.

  .. math:: \eta_i = \eta_s (\eta_e/\eta_s)^{i/(n-1)} \ \text{(exponential)}, \qquad
            \eta_i = \eta_s + (\eta_e - \eta_s)\, i/(n-1) \ \text{(linear)}

  so step 0 runs at ``start_lr`` and the last step at exactly ``end_lr``.

  Example:
    >>> from lrtools.finder import sweep_lrs
    >>> [float(v) for v in sweep_lrs(1e-3, 1.0, 4)]
    [0.001, 0.01, 0.1, 1.0]

  References:
    Smith 2017, §3.3 (linear sweep); fastai / torch-lr-finder (exponential sweep).
  """
  check_sweep("sweep_lrs", start_lr, end_lr, num_steps, mode)
  start_lr, end_lr, num_steps = float(start_lr), float(end_lr), int(num_steps)
  fraction = np.arange(num_steps, dtype=np.float64) / (num_steps - 1)
  if mode == "exponential":  # in logs: end_lr / start_lr overflows for a range like 1e-300 → 1e300
    lrs = np.exp(np.log(start_lr) * (1 - fraction) + np.log(end_lr) * fraction)
  else:
    lrs = start_lr + (end_lr - start_lr) * fraction
  lrs[0], lrs[-1] = start_lr, end_lr  # exact, whatever the rounding
  return lrs


class _Config(NamedTuple):
  """What the compiled sweep is specialised on (hashable: jit caches one program per distinct config, so
  a second range test with equivalent functions, the same shapes and options does not recompile). The
  functions are ProgramKeys (lrtools.finder._cache): equal for a re-created lambda or closure
  with the same code and captured values, a partial of the same function and arguments, ..."""
  loss_fn: ProgramKey
  optimizer: ProgramKey
  has_aux: bool
  debias: bool
  validate: bool  # record the loss on hyper.validation_batch after each step
  validation_loss_fn: ProgramKey | None  # None: loss_fn (its first output with has_aux)
  init_fn: ProgramKey | None
  batch_fn: ProgramKey | None  # batches given as (key, step) -> batch (each drawn batch is checked for NaN/inf)
  num_repeats: int


class _Hyper(NamedTuple):
  """The traced inputs: changing them reuses the compiled program."""
  lrs: jax.Array
  smoothing: jax.Array
  diverge_threshold: jax.Array
  validation_batch: Any


def _step(config: _Config, hyper: _Hyper, state: SweepState, batch) -> SweepState:
  """One range-test step: train on ``batch`` at ``lrs[step]``, record the loss, decide whether to stop."""
  i = state.step
  params, opt_state, record = train_step(config.loss_fn.fn, config.optimizer.fn(hyper.lrs[i]), state.params,
                                         state.opt_state, batch, i, has_aux=config.has_aux,
                                         learning_rate=hyper.lrs[i])
  loss = record.loss
  if config.validate:  # torch-lr-finder's val_loader: the loss after the step, on held-out data
    if config.validation_loss_fn is not None:
      loss = config.validation_loss_fn.fn(params, hyper.validation_batch)
    else:
      loss = config.loss_fn.fn(params, hyper.validation_batch)
      loss = loss[0] if config.has_aux else loss
  loss = jnp.asarray(loss, state.losses.dtype)
  bad_data = state.bad_data
  if config.batch_fn is not None:  # saturating: a long sweep of NaN batches must not wrap to a small count
    bad_data = bad_data + jnp.minimum(count_non_finite(batch), INT32_MAX - bad_data)
  w = jnp.where(hyper.smoothing == 0, 1, hyper.smoothing).astype(loss.dtype)  # weight of the newest loss
  if config.debias:  # fastai: an EMA from zero, divided by 1 − (1 − w)^(i+1)
    ema = (1 - w) * jnp.where(i == 0, 0, state.smoothed) + w * loss
    smooth = ema / (1 - (1 - w) ** (i + 1).astype(loss.dtype))
  else:  # torch-lr-finder: starts at the first loss
    ema = smooth = jnp.where(i == 0, loss, w * loss + (1 - w) * state.smoothed)
  best = jnp.where(i == 0, smooth, jnp.minimum(state.best, smooth))
  # best + (threshold − 1)·|best| is threshold·best for positive losses and stays above best for negative
  # ones (threshold·best would stop a negative loss at its first step).
  diverged = ~jnp.isfinite(loss) | (smooth > best + (hyper.diverge_threshold - 1) * jnp.abs(best))
  return SweepState(i + 1, params, opt_state, ema, best, diverged, state.losses.at[i].set(loss),
                    state.smoothed_losses.at[i].set(smooth), bad_data)


def _run_loop(config, hyper, state: SweepState, get_batch, stop) -> SweepState:
  """``lax.while_loop``: the steps after divergence are not computed."""
  def cond(s):
    return (s.step < stop) & ~s.diverged

  return jax.lax.while_loop(cond, lambda s: _step(config, hyper, s, get_batch(s.step)), state)


def _init_state(config: _Config, hyper: _Hyper, params) -> SweepState:
  nan = jnp.full(hyper.lrs.shape, jnp.nan, hyper.lrs.dtype)
  zero = jnp.zeros((), hyper.lrs.dtype)
  opt_state = config.optimizer.fn(hyper.lrs[0]).init(params)
  count = jnp.zeros((), jnp.int32)
  state = SweepState(count, params, opt_state, zero, zero, jnp.zeros((), bool), nan, nan, count)
  # Strong types: a weakly typed leaf (a Python-scalar param) would be promoted by the loop and change the
  # signature of the next chunk's call, recompiling it.
  return jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.asarray(x).dtype), state)


def _start(config: _Config, hyper: _Hyper, key, params) -> SweepState:
  """The starting state of every repeat (stacked on a leading axis when ``num_repeats > 1``)."""
  def one(rkey):
    start = params if config.init_fn is None else config.init_fn.fn(jax.random.fold_in(rkey, 1))
    return _init_state(config, hyper, start)
  return one(key) if config.num_repeats == 1 else jax.vmap(one)(jax.random.split(key, config.num_repeats))


def _run(config: _Config, hyper: _Hyper, key, data, state: SweepState, stop) -> tuple[SweepState, dict, jax.Array]:
  """Steps ``state.step … stop − 1`` of every repeat, the suggestions on the curves so far, and the count
  of non-finite values in the data (array batches: all of them; a batch function: the batches drawn),
  counted here rather than on the host: no transfer, no extra compilation."""
  size = None if data is None else leading_size("lr_range_test", data)

  def one_sweep(rkey, shuffle, start):
    data_key = jax.random.fold_in(rkey, 2)
    if config.batch_fn is not None:
      def get_batch(i):
        return batch_at(config.batch_fn.fn, data_key, i)
    else:
      order = jax.random.permutation(data_key, size) if shuffle else None

      def get_batch(i):
        return batch_at(data, None, i if order is None else order[i % size])
    final = _run_loop(config, hyper, start, get_batch, stop)
    # In the same program: a separate one for the suggestions would cost a second compilation.
    return final, sweep_suggestions(hyper.lrs, final.losses, final.smoothed_losses, final.step, hyper.smoothing)

  if config.num_repeats == 1:
    final, suggestions = one_sweep(key, False, state)
  else:
    keys = jax.random.split(key, config.num_repeats)
    final, suggestions = jax.vmap(lambda k, s: one_sweep(k, True, s))(keys, state)
  bad = count_non_finite(data) if data is not None else jnp.sum(final.bad_data)  # may wrap only past 2**31
  return final, suggestions, bad


@functools.partial(jax.jit, static_argnums=0)
def _device_sweep(config: _Config, hyper: _Hyper, key, params, data) -> tuple[SweepState, dict, jax.Array]:
  """The whole sweep (or ``num_repeats`` vmapped sweeps) as one program; data and params are arguments."""
  return _run(config, hyper, key, data, _start(config, hyper, key, params), hyper.lrs.shape[0])


_device_start = jax.jit(_start, static_argnums=0)
_device_run = jax.jit(_run, static_argnums=0)


def _sweep_in_chunks(config, hyper, key, params, data, chunk_size, progress):
  """The sweep of :func:`_device_sweep` in chunks of ``chunk_size`` steps, ``progress`` called on the host
  after each (no host callback in the program: it stays cacheable by JAX's persistent compilation cache)."""
  num_steps = hyper.lrs.shape[0]
  state = _device_start(config, hyper, key, params)
  done = 0
  while True:
    stop = min(done + chunk_size, num_steps)
    state, suggestions, bad = _device_run(config, hyper, key, data, state, np.int32(stop))
    steps, diverged = np.asarray(state.step), np.asarray(state.diverged)  # host copies: no jnp reductions
    done = int(steps.max())
    progress(done, num_steps)
    if done >= num_steps or diverged.all() or done < stop:
      return state, suggestions, bad


@functools.partial(jax.jit, static_argnums=0)
def _chunk_sweep(config: _Config, hyper: _Hyper, state: SweepState, chunk, offset, stop) -> SweepState:
  """Steps ``state.step … stop − 1`` on host-fed batches stacked in ``chunk`` (chunk[j] is step offset + j)."""
  def get_batch(i):
    return batch_at(chunk, None, i - offset)
  return _run_loop(config, hyper, state, get_batch, stop)


_init_on_device = jax.jit(_init_state, static_argnums=0)


@functools.lru_cache(maxsize=1)
def _default_key() -> jax.Array:
  """``jax.random.key(0)``, made once (a key is immutable; making it is a dispatch)."""
  return jax.random.key(0)


def lr_range_test(loss_fn: Callable, params: Any, optimizer: Callable[[Any], optax.GradientTransformation],
                  batches: Batches, *, start_lr: float = 1e-7, end_lr: float = 10.0, num_steps: int = 100,
                  mode: str = "exponential", smoothing: float = 0.05, debias: bool = False,
                  diverge_threshold: float = 5.0, has_aux: bool = False, num_repeats: int = 1,
                  key: jax.Array | None = None, init_fn: Callable[[jax.Array], Any] | None = None,
                  validation_batch: Any = None, validation_loss_fn: Callable | None = None,
                  chunk_size: int = 25, progress: Callable[[int, int], None] | None = None) -> RangeTestResult:
  r"""The learning-rate range test (Smith 2017): train while the LR grows from ``start_lr`` to ``end_lr``.

  Step :math:`i` trains one batch at :math:`\eta_i` (see :func:`sweep_lrs`) and records the loss
  :math:`L_i` and its smoothed value (torch-lr-finder's form; ``debias=True`` gives fastai's):

  .. math:: \bar L_0 = L_0,\quad \bar L_i = w L_i + (1 - w) \bar L_{i-1}
            \qquad\text{or}\qquad a_i = (1-w) a_{i-1} + w L_i,\ \bar L_i = a_i / (1 - (1-w)^{i+1})

  with :math:`w` = ``smoothing`` (0 disables smoothing). The sweep stops after step :math:`i` when
  :math:`L_i` is not finite or :math:`\bar L_i > b + (\text{diverge\_threshold} - 1)\,|b|` with :math:`b = \min_{j \le i} \bar L_j`
  (torch-lr-finder's :math:`\bar L_i > 5 b` for positive losses, still meaningful for negative ones);
  the remaining steps are not computed (``lax.while_loop`` over preallocated buffers, left NaN).

  The whole sweep is one compiled call when ``batches`` are arrays or a function (in chunks of
  ``chunk_size`` steps when ``progress`` is given); a Python iterable is fed from the host in chunks of
  ``chunk_size`` steps through one compiled chunk loop.

  Compiled once per program, not per call: the compiled sweep is cached on what determines it, so calling
  again with other rates, smoothing, threshold, data or parameters of the same shapes, or with functions
  re-created for the call, reuses it. ``loss_fn``, ``optimizer``, ``init_fn``, ``validation_loss_fn`` and a
  batch function are compared by what they compute (:mod:`lrtools.finder._cache`): a Python function by its
  code (not where it was written), its closure cells, defaults and the global names it reads; a
  ``functools.partial`` by its function and arguments; a bound method by its function and ``self``. The
  values they hold compare by equality for numbers, strings, bytes, ``None`` and tuples of those, and by
  **identity** for anything else (arrays, lists, dicts, models, objects). So an inline
  ``lambda lr: optax.sgd(lr, momentum=0.9)`` or a re-run notebook cell compiles once, while another
  momentum, another captured array or a changed global compiles anew; a container or array mutated in
  place is the same key and keeps the values it had when traced, which is ``jax.jit``'s own rule for the
  values a function reads. Other callables (callable objects, jitted functions) compare by identity. Each step is
  :func:`lrtools._loop.train_step`, the step every lrtools training loop shares. ``params`` are never
  modified or donated.

  Non-finite data: a ``RuntimeWarning`` naming the count of NaN/inf values is raised when array batches
  hold any (all of the data, counted on the device in the sweep's own program), when the batches a batch
  function drew during the sweep do (each drawn batch is counted inside the loop), or when the batches taken
  from an iterable do (each chunk, on the host). Only floating-point leaves are counted. The result's
  ``stop_reason`` says whether the sweep completed, diverged, or stopped on a non-finite loss.

  The rates are checked in float64, then the sweep runs in float32 (float64 when the parameters are):
  ``start_lr`` and ``end_lr`` must be normal, finite and distinct in that dtype.

  Args:
    loss_fn: ``loss_fn(params, batch) -> loss`` (or ``(loss, aux)`` with ``has_aux=True``).
    params: any pytree of arrays (the starting point of every repeat unless ``init_fn`` is given).
    optimizer: a factory ``learning_rate -> GradientTransformation`` called with a traced scalar, e.g.
      ``lambda lr: optax.sgd(lr, momentum=0.9)`` or ``lrtools.adam``. Its state must not depend on the value.
    batches: a pytree of arrays with a leading step axis (cycled if shorter than ``num_steps``), a function
      ``(key, step) -> batch`` generating data on the device, or a Python iterable of batches (a ``list``
      counts as one: a list of batches, not stacked arrays; a re-iterable is cycled).
    start_lr: first learning rate, positive.
    end_lr: last learning rate, ``> start_lr``.
    num_steps: number of steps, ``>= 2``.
    mode: ``"exponential"`` (log-spaced, the default of fastai and torch-lr-finder) or ``"linear"`` (Smith).
    smoothing: weight :math:`w \in [0, 1)` of the newest loss in the moving average.
    debias: fastai's debiased average instead of torch-lr-finder's.
    diverge_threshold: stop when the smoothed loss exceeds this multiple of the best, ``> 1``.
    has_aux: ``loss_fn`` returns ``(loss, aux)``.
    num_repeats: ``1 <= k <= 10000`` sweeps in one vmapped call, each with its own key: array batches are visited
      in a per-repeat random order, function batches get the repeat's key, and ``init_fn`` (if given)
      draws the repeat's parameters.
    key: the PRNG key of the repeats and of function batches (default ``jax.random.key(0)``): a typed key
      (``jax.random.key``) or a raw uint32 key of shape ``(2,)``.
    init_fn: ``key -> params`` for per-repeat initialisation.
    validation_batch: when given, the recorded loss is the validation loss on this fixed batch after each
      step (torch-lr-finder's ``val_loader`` mode) instead of the training batch's loss.
    validation_loss_fn: ``(params, batch) -> loss`` for the validation batch (default ``loss_fn``); only
      with ``validation_batch``.
    chunk_size: steps per host round trip for an iterable of batches, or between two ``progress`` calls
      (at most ``num_steps`` are used).
    progress: optional ``callback(steps_done, num_steps)``, called on the host after each chunk of
      ``chunk_size`` steps (with repeats, ``steps_done`` is the furthest repeat's), last when the sweep
      stops. The first call comes once compilation and the first chunk are done. The compiled programs
      hold no host callback, so JAX's persistent compilation cache keeps them.

  Returns:
    A :class:`RangeTestResult` with ``lrs``, ``losses``, ``smoothed_losses``, ``num_steps_run``,
    ``diverged``, ``stop_reason`` (one row or entry per repeat when ``num_repeats > 1``),
    ``suggest(method)`` and ``plot()``. ``suggest("steepest")`` takes the slope against
    :math:`\log\eta`, torch-lr-finder against the step index: the two pick the same point for an exponential
    sweep only (see :func:`~lrtools.finder.suggest_steepest`).

  Raises:
    ValueError: naming the argument and its value, for any argument out of its domain (checked before
      anything is compiled; ``optimizer`` is called once with ``start_lr`` as a Python float to check that
      it returns an ``optax.GradientTransformation``).

  Example:
    >>> import jax.numpy as jnp, optax, lrtools as lrt
    >>> xs = jnp.linspace(-1, 1, 32).reshape(4, 8)  # 4 batches of 8 points of y = 3x
    >>> loss = lambda w, x: jnp.mean((w * x - 3 * x) ** 2)
    >>> res = lrt.lr_range_test(loss, jnp.zeros(()), lambda lr: optax.sgd(lr), xs, start_lr=1e-3,
    ...                         end_lr=100.0, num_steps=50)
    >>> bool(res.diverged), res.num_steps_run < 50, 0.01 < res.suggest("valley") < 3.0, res.stop_reason
    (True, True, True, 'diverged')

  References:
    Smith 2017, "Cyclical Learning Rates for Training Neural Networks", §3.3; Smith 2018, "A disciplined
    approach to neural network hyper-parameters"; fastai ``lr_find``; torch-lr-finder.
  """
  call = "lr_range_test"
  check_arguments(call, loss_fn=loss_fn, params=params, optimizer=optimizer, batches=batches,
                  start_lr=start_lr, end_lr=end_lr, num_steps=num_steps, mode=mode, smoothing=smoothing,
                  debias=debias, diverge_threshold=diverge_threshold, has_aux=has_aux, num_repeats=num_repeats,
                  key=key, init_fn=init_fn, validation_batch=validation_batch,
                  validation_loss_fn=validation_loss_fn, chunk_size=chunk_size, progress=progress)
  key = _default_key() if key is None else key
  # Learning rates and losses are recorded in at least float32 (a bfloat16 sweep would round 1e-7 → 10
  # to a handful of distinct values), in float64 when the parameters are.
  with jax.numpy_dtype_promotion("standard"):  # mixed-precision params must not fail in strict mode
    dtype = jnp.promote_types(jnp.result_type(float, *jax.tree_util.tree_leaves(params)), jnp.float32)
  check_representable(call, start_lr, end_lr, dtype)
  lrs_host = sweep_lrs(float(start_lr), float(end_lr), int(num_steps), mode)
  from_host = not (callable(batches) or is_array_tree(batches))
  if from_host and (num_repeats > 1 or init_fn is not None):
    name, value = ("num_repeats", num_repeats) if num_repeats > 1 else ("init_fn", init_fn)
    raise ValueError(f"`{call}({name}=...)` (num_repeats > 1 or an init_fn) needs batches as arrays or a "
                     f"function (an iterable cannot be replayed in parallel), got {name}={value!r}")
  if not from_host and not callable(batches):
    leading_size(call, batches)  # a clear error before tracing
  validate = validation_batch is not None
  config = _Config(program_key(loss_fn), program_key(optimizer), has_aux, debias, validate,
                   program_key(validation_loss_fn) if validate else None, program_key(init_fn),
                   program_key(batches) if callable(batches) else None, int(num_repeats))
  # NumPy arrays: jit takes them as they are (a jnp conversion would be a dispatch each).
  hyper = _Hyper(np.asarray(lrs_host, dtype), np.asarray(smoothing, dtype), np.asarray(diverge_threshold, dtype),
                 validation_batch)
  if from_host:
    finals, bad = _sweep_from_host(config, hyper, params, batches, min(int(chunk_size), int(num_steps)), progress)
    suggestions = None
    warn_non_finite(bad, "the batches taken from the iterable held")
  else:
    data = None if callable(batches) else batches
    if progress is None:
      finals, suggestions, bad = _device_sweep(config, hyper, key, params, data)
    else:
      finals, suggestions, bad = _sweep_in_chunks(config, hyper, key, params, data,
                                                  min(int(chunk_size), int(num_steps)), progress)
    warn_non_finite(int(bad), "the batches drawn from the function held" if callable(batches) else "the data hold")
  return RangeTestResult.from_states(lrs_host, finals.losses, finals.smoothed_losses, finals.step,
                                     finals.diverged, suggestions, smoothing=float(smoothing))


def _sweep_from_host(config, hyper, params, batches: Iterable, chunk_size, progress) -> tuple[SweepState, int]:
  """Chunks of an iterable fed from the host; also returns the count of NaN/inf values among the batches
  taken (checked on the host as each chunk is stacked)."""
  num_steps = hyper.lrs.shape[0]
  state = _init_on_device(config, hyper, params)
  source = iter(batches)
  done, fresh, bad = 0, True, 0  # fresh: ``source`` has yielded nothing yet; bad: NaN/inf values fed
  while done < num_steps and not bool(state.diverged):
    taken = list(itertools.islice(source, min(chunk_size, num_steps - done)))
    if not taken:
      # Empty from the start (or again after a restart), or a one-shot iterator that cannot be cycled.
      if fresh or iter(batches) is batches:
        raise ValueError(f"`lr_range_test(batches=...)` ran out after {done} batches of {num_steps}: pass "
                         "at least num_steps batches, or a re-iterable (a list or data loader)")
      source, fresh = iter(batches), True  # a re-iterable (list, data loader) is cycled, as torch-lr-finder does
      continue
    fresh = False
    bad += host_count_non_finite(taken)
    # Pad the last chunk to the chunk shape so that every chunk reuses one compiled program.
    padded = taken + [taken[-1]] * (chunk_size - len(taken))
    chunk = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *padded)
    state = _chunk_sweep(config, hyper, state, chunk, done, done + len(taken))
    done = int(state.step)
    if progress is not None:
      progress(done, num_steps)
  return state, bad
