"""The one compiled training loop: a ``lax.scan`` of optimizer steps recording the loss and the learning
rate of every step. The range test, the examples, search and ensembles train through it.

Three layers, each a pure function of arrays (no Python control flow on values, so each traces once per
shape under ``jax.jit`` and batches over traced hyperparameters under ``jax.vmap``):

- :func:`batch_at`: the batch of step ``i`` from stacked arrays (cycled) or a ``(key, step) -> batch`` function;
- :func:`train_step`: one step (gradient, update, apply) and its :class:`StepRecord`;
- :func:`train_loop`: ``num_steps`` steps in one ``lax.scan``, records stacked on a leading step axis.

A non-finite loss is recorded as it is (NaN or inf) and the loop goes on (the parameters then usually turn
NaN too): nothing is masked, so :func:`first_non_finite` on the records finds where a run broke. Wrap the
optimizer in ``optax.apply_if_finite`` to skip such steps instead.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrtools._hyperparams import current_hyperparams, resolve
from lrtools._typing import INT32_MAX, ScalarOrSchedule, check_callable, check_flag, check_integer

Batches = Any  # a pytree of arrays with a leading step axis | (key, step) -> batch


class StepRecord(NamedTuple):
  """What one step records (a leading step axis after :func:`train_loop`).

  Attributes:
    loss: the training loss on the step's batch at the parameters *before* the step (what
      ``jax.value_and_grad`` returned), as is: NaN or inf stay visible.
    learning_rate: the learning rate the step's update used.
    aux: ``loss_fn``'s auxiliary output with ``has_aux=True``, else ``None``.
    state: what :func:`train_loop`'s ``record(opt_state)`` returned after the step (e.g.
      ``lrtools.read_monitor``'s update:weight ratios), else ``None``.
  """
  loss: jax.Array
  learning_rate: jax.Array
  aux: Any = None
  state: Any = None


class LoopResult(NamedTuple):
  """The state after :func:`train_loop` and its per-step records."""
  params: Any
  opt_state: Any
  records: StepRecord


def leading_size(call: str, batches: Any) -> int:
  """The common leading (step) axis of stacked batches, or a ValueError naming ``call``'s ``batches``."""
  sizes = {np.shape(x)[0] if np.ndim(x) else 0 for x in jax.tree_util.tree_leaves(batches)}
  if len(sizes) != 1 or 0 in sizes:
    raise ValueError(f"`{call}(batches=...)` arrays need one common leading (step) axis, got leading "
                     f"sizes {sorted(sizes)}")
  return sizes.pop()


def batch_at(batches: Batches, key: jax.Array | None, step: jax.Array) -> Any:
  """The batch of step ``step``: ``batches(fold_in(key, step), step)`` for a function, else entry
  ``step mod size`` of every stacked array (data shorter than the run is cycled)."""
  if callable(batches):
    return batches(jax.random.fold_in(key, step), step)
  size = leading_size("batch_at", batches)
  return jax.tree_util.tree_map(lambda x: jnp.asarray(x)[step % size], batches)  # NumPy arrays index too


def _learning_rate(learning_rate: ScalarOrSchedule | None, opt_state: Any, step: jax.Array) -> jax.Array:
  """The rate to record: ``learning_rate`` (a value, or a schedule at ``step``), else the optimizer state's."""
  if learning_rate is not None:
    return jnp.asarray(resolve(learning_rate, step))
  found = current_hyperparams(opt_state)
  names = [k for k in found if k == "learning_rate" or k.endswith("/learning_rate")]
  if len(names) != 1:
    raise ValueError("`train_loop(learning_rate=...)` is needed: the optimizer state records "
                     f"{'no learning_rate' if not names else 'several: ' + ', '.join(names)}, got learning_rate=None")
  return found[names[0]]


def train_step(loss_fn: Callable, optimizer: optax.GradientTransformation, params: Any, opt_state: Any,
               batch: Any, step: jax.Array, *, has_aux: bool = False,
               learning_rate: ScalarOrSchedule | None = None) -> tuple[Any, Any, StepRecord]:
  r"""One training step and its record.

  .. math:: L_t, g_t = \text{value\_and\_grad}(\ell)(\theta_t, b_t),\quad
            u_t, s_{t+1} = \text{update}(g_t, s_t, \theta_t),\quad \theta_{t+1} = \theta_t + u_t

  An ``optax.GradientTransformationExtraArgs`` (every ``optax.chain``, lrtools' optimizers,
  ``lrtools.reduce_on_plateau``) also receives the step's loss as ``update(..., value=L_t)``, so a plateau
  transform in the chain reduces the rate on the training loss.

  Args:
    loss_fn: ``loss_fn(params, batch) -> loss`` (or ``(loss, aux)`` with ``has_aux=True``).
    optimizer: the transformation of this step.
    params: the parameters :math:`\theta_t`.
    opt_state: the optimizer state :math:`s_t`.
    batch: the batch :math:`b_t`.
    step: the step index, used only to evaluate a ``learning_rate`` schedule.
    has_aux: ``loss_fn`` returns ``(loss, aux)``.
    learning_rate: the rate to record, a value or a schedule of ``step``; ``None`` reads it back from the
      optimizer state (``lrtools.current_hyperparams``: lrtools optimizers, ``optax.inject_hyperparams``).

  Returns:
    ``(params, opt_state, StepRecord(loss, learning_rate, aux))`` after the step.
  """
  value, grads = jax.value_and_grad(loss_fn, has_aux=has_aux)(params, batch)
  loss, aux = value if has_aux else (value, None)
  # Transforms that take extra arguments (reduce_on_plateau, optax.contrib's) get the step's loss as `value`.
  extra = {"value": loss} if isinstance(optimizer, optax.GradientTransformationExtraArgs) else {}
  updates, opt_state = optimizer.update(grads, opt_state, params, **extra)
  params = optax.apply_updates(params, updates)
  return params, opt_state, StepRecord(loss, _learning_rate(learning_rate, opt_state, step), aux)


def train_loop(loss_fn: Callable, optimizer: optax.GradientTransformation, params: Any, opt_state: Any,
               batches: Batches, key: jax.Array | None = None, *, num_steps: int | None = None,
               has_aux: bool = False, learning_rate: ScalarOrSchedule | None = None,
               record: Callable[[Any], Any] | None = None, first_step: Any = 0, unroll: int = 1) -> LoopResult:
  r"""``num_steps`` training steps as one ``lax.scan``, recording the loss and learning rate of each.

  Step :math:`t = s_0 … s_0 + n-1` (``first_step`` :math:`s_0`, default 0) runs :func:`train_step` on batch
  :math:`b_t` = ``batches[t mod size]`` of stacked
  arrays, or ``batches(fold_in(key, t), t)`` of a function:

  .. math:: \theta_{t+1} = \theta_t + u_t(\nabla \ell(\theta_t, b_t)),\qquad
            \text{records}_t = (\ell(\theta_t, b_t),\ \eta_t)

  A pure function of ``(params, opt_state, batches, key)``: call it inside ``jax.jit`` (with ``loss_fn``,
  ``optimizer``, a batch function and ``num_steps`` closed over) and it compiles once per shape; build
  ``optimizer`` from traced hyperparameters inside ``jax.vmap`` and it trains every configuration at once.
  Losses are recorded as they are: a NaN or inf loss is visible in the records (see :func:`first_non_finite`).

  Args:
    loss_fn: ``loss_fn(params, batch) -> loss`` (or ``(loss, aux)`` with ``has_aux=True``).
    optimizer: an ``optax.GradientTransformation``.
    params: the starting parameters (any pytree of arrays).
    opt_state: the starting optimizer state, e.g. ``optimizer.init(params)``.
    batches: a pytree of arrays with a leading step axis (cycled when shorter than ``num_steps``), or a
      function ``(key, step) -> batch`` (traced once; ``step`` counts from ``first_step``).
    key: the PRNG key of a batch function (unused for arrays).
    num_steps: steps to run; default the leading size of array batches (required for a function).
    has_aux: ``loss_fn`` returns ``(loss, aux)``; the aux of every step is stacked into the records.
    learning_rate: the rate to record: a value, or a schedule evaluated at ``t``; ``None`` reads the rate
      each update used back from the optimizer state (lrtools optimizers, ``optax.inject_hyperparams``).
    record: ``record(opt_state) -> pytree`` of arrays, evaluated after every step inside the loop and stacked
      into ``records.state`` (e.g. ``lambda s: lrt.read_monitor(s)`` for per-step update:weight ratios).
    first_step: the global step of the first step (an int32 integer, or traced): a loop called once per epoch
      passes ``epoch * steps_per_epoch``, so that a ``learning_rate`` schedule, a batch function and stacked
      batches (entry ``t mod size``) see the run's step, not a count restarted at 0.
    unroll: ``lax.scan``'s unroll factor.

  Returns:
    A :class:`LoopResult` ``(params, opt_state, records)`` with ``records`` a :class:`StepRecord` of arrays
    of leading size ``num_steps``.

  Example:
    >>> import jax, jax.numpy as jnp, lrtools as lrt
    >>> xs = jnp.linspace(-1.0, 1.0, 40).reshape(5, 8)  # 5 batches of y = 3x
    >>> loss = lambda w, x: jnp.mean((w * x - 3 * x) ** 2)
    >>> def run(lr):
    ...   opt = lrt.sgd(lr)
    ...   w = jnp.zeros(())
    ...   return lrt.train_loop(loss, opt, w, opt.init(w), xs, num_steps=20)
    >>> out = jax.jit(jax.vmap(run))(jnp.array([0.1, 1.0]))  # two learning rates, one compiled program
    >>> out.records.loss.shape, [round(float(w), 2) for w in out.params]
    ((2, 20), [2.32, 3.0])
    >>> out.records.learning_rate[:, 0].tolist()
    [0.1, 1.0]

  References:
    CS231n "Neural Networks Part 3" (the training loop, babysitting the loss); JAX ``lax.scan``.
  """
  check_callable("train_loop", "loss_fn", loss_fn)
  if not isinstance(optimizer, optax.GradientTransformation):
    raise ValueError("`train_loop(optimizer=...)` must be an optax.GradientTransformation (call a factory "
                     f"such as `lrt.sgd(0.1)` first), got optimizer={optimizer!r}")
  check_integer("train_loop", "unroll", unroll, 1)
  if record is not None:
    check_callable("train_loop", "record", record)
  if callable(batches):
    if num_steps is None:
      raise ValueError("`train_loop(num_steps=...)` is needed with a batch function, got num_steps=None")
    if key is None:
      raise ValueError("`train_loop(key=...)` is needed with a batch function, got key=None")
  else:
    size = leading_size("train_loop", batches)
    num_steps = size if num_steps is None else num_steps
  check_integer("train_loop", "num_steps", num_steps, 1)
  check_flag("train_loop", "has_aux", has_aux)
  check_integer("train_loop", "first_step", first_step, 0, INT32_MAX - int(num_steps) + 1)  # no int32 overflow

  record_fn = record

  def body(carry, step):
    params, opt_state = carry
    params, opt_state, record = train_step(loss_fn, optimizer, params, opt_state, batch_at(batches, key, step),
                                           step, has_aux=has_aux, learning_rate=learning_rate)
    if record_fn is not None:
      record = record._replace(state=record_fn(opt_state))
    return (params, opt_state), record

  steps = jnp.asarray(first_step, jnp.int32) + jnp.arange(int(num_steps), dtype=jnp.int32)
  (params, opt_state), records = jax.lax.scan(body, (params, opt_state), steps,
                                              unroll=int(unroll))
  return LoopResult(params, opt_state, records)


def first_non_finite(losses: jax.Array) -> jax.Array:
  """The index of the first NaN or inf along the last axis of ``losses``, −1 when all are finite.

  Example:
    >>> import jax.numpy as jnp
    >>> from lrtools import first_non_finite
    >>> first_non_finite(jnp.array([[1.0, jnp.nan, jnp.inf], [1.0, 2.0, 3.0]])).tolist()
    [1, -1]
  """
  bad = ~jnp.isfinite(losses)
  return jnp.where(jnp.any(bad, axis=-1), jnp.argmax(bad, axis=-1), -1).astype(jnp.int32)
