"""Per-coordinate adaptive rates: Adagrad, RMSProp and Adadelta (CS231n, D2L 11.7-11.9).

Adagrad and RMSProp add ``eps`` outside the square root, as CS231n writes them (optax's defaults put it
inside); Adadelta puts it inside both roots, as Zeiler and D2L do. Every statistic accumulates ``|g|²``
(``g²`` for real parameters) in the parameters' real dtype, so complex parameters work as in optax.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from lrtools._hyperparams import check, like, resolve, resolve_all, zero_count
from lrtools._typing import ScalarOrSchedule, check_interval, check_nonnegative, check_positive
from lrtools.optimizers._learning_rate import build_scale_by_learning_rate, check_learning_rate
from lrtools._numerics import abs_sq, divide, real_dtype, real_zeros_like, times


class AdagradState(NamedTuple):
  """State of :func:`scale_by_adagrad`.

  Attributes:
    count: int32 number of updates so far.
    sum_of_squares: the cache ``Σ |g|²`` (plus the initial accumulator value), in the real dtype.
    hyperparams: ``{"eps": ...}`` used by the last update.
  """
  count: jax.Array
  sum_of_squares: optax.Updates
  hyperparams: dict[str, jax.Array]


class RMSPropState(NamedTuple):
  """State of :func:`scale_by_rmsprop`.

  Attributes:
    count: int32 number of updates so far.
    nu: the leaky average of squared gradients ``cache`` (``|g|²``, in the real dtype).
    hyperparams: ``{"decay": ..., "eps": ...}`` used by the last update.
  """
  count: jax.Array
  nu: optax.Updates
  hyperparams: dict[str, jax.Array]


class AdadeltaState(NamedTuple):
  """State of :func:`scale_by_adadelta`.

  Attributes:
    count: int32 number of updates so far.
    e_g: leaky average of squared gradients ``s``.
    e_x: leaky average of squared rescaled updates ``Δx``.
    hyperparams: ``{"rho": ..., "eps": ...}`` used by the last update.
  """
  count: jax.Array
  e_g: optax.Updates
  e_x: optax.Updates
  hyperparams: dict[str, jax.Array]


def _leaky(decay: jax.Array, average: jax.Array, square: jax.Array) -> jax.Array:
  # 1 − d is formed before the cast: in bfloat16, 0.999 rounds to 1 and 1 − d would vanish.
  return (like(decay, average) * average + like(1 - decay, average) * square).astype(average.dtype)


def scale_by_adagrad(eps: ScalarOrSchedule = 1e-8, initial_accumulator_value: ScalarOrSchedule = 0.0
                     ) -> optax.GradientTransformation:
  r"""Divides each coordinate by the root of its accumulated squared gradients.

  .. math::
    c_t = c_{t-1} + |g_t|^2, \quad c_0 = \text{initial\_accumulator\_value}, \qquad
    u_t = \frac{g_t}{\sqrt{c_t} + \epsilon}

  Args:
    eps: positive constant added outside the root.
    initial_accumulator_value: non-negative starting value of the cache (a schedule is read at step 0).

  Returns:
    An ``optax.GradientTransformation`` with state :class:`AdagradState`.

  Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> from lrtools.optimizers import scale_by_adagrad
    >>> tx = scale_by_adagrad()
    >>> state = tx.init(jnp.zeros(2))
    >>> u, state = tx.update(jnp.array([3.0, -4.0]), state)
    >>> u, state = tx.update(jnp.array([4.0, 3.0]), state)
    >>> print(np.round(np.asarray(u), 4))
    [0.8 0.6]

  References:
    Duchi, Hazan & Singer 2011, "Adaptive Subgradient Methods for Online Learning and Stochastic
    Optimization"; CS231n "Neural Networks Part 3"; D2L 11.7.
  """
  _check_adagrad("scale_by_adagrad", eps, initial_accumulator_value)
  return _build_adagrad(eps, initial_accumulator_value)


def _check_adagrad(call: str, eps, initial_accumulator_value) -> None:
  check(check_positive, call, "eps", eps)
  check(check_nonnegative, call, "initial_accumulator_value", initial_accumulator_value)


def _build_adagrad(eps, initial_accumulator_value) -> optax.GradientTransformation:
  hyper = {"eps": eps}

  def init_fn(params):
    count = zero_count()
    start = resolve(initial_accumulator_value, count)
    cache = jax.tree.map(lambda p: jnp.full(p.shape, like(start, p), real_dtype(p)), params)
    return AdagradState(count, cache, resolve_all(hyper, count))

  def update_fn(updates, state, params=None):
    del params
    hp = resolve_all(hyper, state.count)
    cache = jax.tree.map(lambda g, c: (c + abs_sq(g)).astype(c.dtype), updates, state.sum_of_squares)
    updates = jax.tree.map(lambda g, c: divide(g, jnp.sqrt(c) + like(hp["eps"], c)), updates, cache)
    return updates, AdagradState(optax.safe_increment(state.count), cache, hp)

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_rmsprop(decay: ScalarOrSchedule = 0.9, eps: ScalarOrSchedule = 1e-8
                     ) -> optax.GradientTransformation:
  r"""Divides each coordinate by the root of a leaky average of its squared gradients.

  .. math::
    c_t = d_t c_{t-1} + (1 - d_t) |g_t|^2, \quad c_0 = 0, \qquad u_t = \frac{g_t}{\sqrt{c_t} + \epsilon}

  Args:
    decay: decay rate ``d`` in [0, 1).
    eps: positive constant added outside the root.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`RMSPropState`.

  Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> from lrtools.optimizers import scale_by_rmsprop
    >>> tx = scale_by_rmsprop(decay=0.75)
    >>> u, state = tx.update(jnp.array([2.0, -2.0]), tx.init(jnp.zeros(2)))
    >>> print(np.round(np.asarray(u), 4))
    [ 2. -2.]

  References:
    Tieleman & Hinton 2012, Lecture 6.5 of "Neural Networks for Machine Learning"; CS231n
    "Neural Networks Part 3"; D2L 11.8.
  """
  _check_rmsprop("scale_by_rmsprop", decay, eps)
  return _build_rmsprop(decay, eps)


def _check_rmsprop(call: str, decay, eps) -> None:
  check(check_interval, call, "decay", decay, 0.0, 1.0)
  check(check_positive, call, "eps", eps)


def _build_rmsprop(decay, eps) -> optax.GradientTransformation:
  hyper = {"decay": decay, "eps": eps}

  def init_fn(params):
    count = zero_count()
    return RMSPropState(count, real_zeros_like(params), resolve_all(hyper, count))

  def update_fn(updates, state, params=None):
    del params
    hp = resolve_all(hyper, state.count)
    nu = jax.tree.map(lambda g, c: _leaky(hp["decay"], c, abs_sq(g)), updates, state.nu)
    updates = jax.tree.map(lambda g, c: divide(g, jnp.sqrt(c) + like(hp["eps"], c)), updates, nu)
    return updates, RMSPropState(optax.safe_increment(state.count), nu, hp)

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_adadelta(rho: ScalarOrSchedule = 0.9, eps: ScalarOrSchedule = 1e-6
                      ) -> optax.GradientTransformation:
  r"""Rescales each coordinate by the ratio of the RMS of past updates to the RMS of gradients.

  .. math::
    s_t = \rho_t s_{t-1} + (1 - \rho_t) |g_t|^2, \quad
    g'_t = \sqrt{\frac{\Delta x_{t-1} + \epsilon}{s_t + \epsilon}} \, g_t, \quad
    \Delta x_t = \rho_t \Delta x_{t-1} + (1 - \rho_t) |g'_t|^2, \qquad u_t = g'_t

  Args:
    rho: decay rate in [0, 1) of both leaky averages.
    eps: positive constant inside both roots (it also sets the scale of the first steps).

  Returns:
    An ``optax.GradientTransformation`` with state :class:`AdadeltaState`.

  Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> from lrtools.optimizers import scale_by_adadelta
    >>> tx = scale_by_adadelta(rho=0.5, eps=1.0)
    >>> u, state = tx.update(jnp.array([2.0]), tx.init(jnp.zeros(1)))
    >>> print(np.round(np.asarray(u), 4))
    [1.1547]

  References:
    Zeiler 2012, "ADADELTA: An Adaptive Learning Rate Method"; D2L 11.9.
  """
  _check_adadelta("scale_by_adadelta", rho, eps)
  return _build_adadelta(rho, eps)


def _check_adadelta(call: str, rho, eps) -> None:
  check(check_interval, call, "rho", rho, 0.0, 1.0)
  check(check_positive, call, "eps", eps)


def _build_adadelta(rho, eps) -> optax.GradientTransformation:
  hyper = {"rho": rho, "eps": eps}

  def init_fn(params):
    count = zero_count()
    zeros = real_zeros_like  # distinct buffers, so that the state can be donated
    return AdadeltaState(count, zeros(params), zeros(params), resolve_all(hyper, count))

  def update_fn(updates, state, params=None):
    del params
    hp = resolve_all(hyper, state.count)
    e_g = jax.tree.map(lambda g, s: _leaky(hp["rho"], s, abs_sq(g)), updates, state.e_g)

    def rescale(g, s, x):
      e = like(hp["eps"], s)
      return times(jnp.sqrt(x + e) / jnp.sqrt(s + e), g)

    updates = jax.tree.map(rescale, updates, e_g, state.e_x)
    e_x = jax.tree.map(lambda u, x: _leaky(hp["rho"], x, abs_sq(u)), updates, state.e_x)
    return updates, AdadeltaState(optax.safe_increment(state.count), e_g, e_x, hp)

  return optax.GradientTransformation(init_fn, update_fn)


def adagrad(learning_rate: ScalarOrSchedule, eps: ScalarOrSchedule = 1e-8,
            initial_accumulator_value: ScalarOrSchedule = 0.0) -> optax.GradientTransformationExtraArgs:
  r"""Adagrad, with ``eps`` outside the root (CS231n).

  .. math::
    c_t = c_{t-1} + |g_t|^2, \qquad x_{t+1} = x_t - \eta_t \frac{g_t}{\sqrt{c_t} + \epsilon}

  Args:
    learning_rate: non-negative number, array, tracer or schedule.
    eps: positive constant outside the root.
    initial_accumulator_value: non-negative starting value of the cache (optax uses 0.1 and ``eps``
      inside the root; pass both to reproduce it closely).

  Returns:
    ``optax.chain(scale_by_adagrad(...), scale_by_learning_rate(learning_rate))``.

  Example:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> from lrtools.optimizers import adagrad
    >>> opt = adagrad(0.5)
    >>> params = jnp.array([1.0, -1.0])
    >>> updates, _ = opt.update(jnp.array([0.1, -10.0]), opt.init(params))
    >>> print(np.round(np.asarray(optax.apply_updates(params, updates)), 4))
    [ 0.5 -0.5]

  References:
    Duchi, Hazan & Singer 2011; CS231n "Neural Networks Part 3"; D2L 11.7.
  """
  check_learning_rate("adagrad", learning_rate)
  _check_adagrad("adagrad", eps, initial_accumulator_value)
  return optax.chain(_build_adagrad(eps, initial_accumulator_value),
                     build_scale_by_learning_rate(learning_rate))


def rmsprop(learning_rate: ScalarOrSchedule, decay: ScalarOrSchedule = 0.9,
            eps: ScalarOrSchedule = 1e-8) -> optax.GradientTransformationExtraArgs:
  r"""RMSProp, with ``eps`` outside the root (CS231n).

  .. math::
    c_t = d_t c_{t-1} + (1 - d_t) |g_t|^2, \qquad x_{t+1} = x_t - \eta_t \frac{g_t}{\sqrt{c_t} + \epsilon}

  Same as ``optax.rmsprop(learning_rate, decay, eps, eps_in_sqrt=False)``.

  Args:
    learning_rate: non-negative number, array, tracer or schedule.
    decay: decay rate in [0, 1).
    eps: positive constant outside the root.

  Returns:
    ``optax.chain(scale_by_rmsprop(decay, eps), scale_by_learning_rate(learning_rate))``.

  Example:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> from lrtools.optimizers import rmsprop
    >>> opt = rmsprop(0.01, decay=0.99)
    >>> params = jnp.array([1.0, -1.0])
    >>> updates, _ = opt.update(jnp.array([3.0, -0.001]), opt.init(params))
    >>> print(np.round(np.asarray(optax.apply_updates(params, updates)), 4))
    [ 0.9 -0.9]

  References:
    Tieleman & Hinton 2012; CS231n "Neural Networks Part 3"; D2L 11.8.
  """
  check_learning_rate("rmsprop", learning_rate)
  _check_rmsprop("rmsprop", decay, eps)
  return optax.chain(_build_rmsprop(decay, eps), build_scale_by_learning_rate(learning_rate))


def adadelta(learning_rate: ScalarOrSchedule = 1.0, rho: ScalarOrSchedule = 0.9,
             eps: ScalarOrSchedule = 1e-6) -> optax.GradientTransformationExtraArgs:
  r"""Adadelta (Zeiler 2012 as in D2L); the learning rate, 1 in the paper, scales the rescaled update.

  .. math::
    s_t = \rho s_{t-1} + (1 - \rho) |g_t|^2, \quad
    g'_t = \sqrt{\frac{\Delta x_{t-1} + \epsilon}{s_t + \epsilon}} \, g_t, \quad
    \Delta x_t = \rho \Delta x_{t-1} + (1 - \rho) |g'_t|^2, \quad x_{t+1} = x_t - \eta_t g'_t

  Same as ``optax.adadelta(learning_rate, rho, eps)``.

  Args:
    learning_rate: non-negative number, array, tracer or schedule (default 1, the paper's).
    rho: decay rate in [0, 1).
    eps: positive constant inside both roots.

  Returns:
    ``optax.chain(scale_by_adadelta(rho, eps), scale_by_learning_rate(learning_rate))``.

  Example:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> from lrtools.optimizers import adadelta
    >>> opt = adadelta(rho=0.5, eps=1.0)
    >>> params = jnp.array([1.0])
    >>> updates, _ = opt.update(jnp.array([2.0]), opt.init(params))
    >>> print(np.round(np.asarray(optax.apply_updates(params, updates)), 4))
    [-0.1547]

  References:
    Zeiler 2012, "ADADELTA: An Adaptive Learning Rate Method"; D2L 11.9.
  """
  check_learning_rate("adadelta", learning_rate)
  _check_adadelta("adadelta", rho, eps)
  return optax.chain(_build_adadelta(rho, eps), build_scale_by_learning_rate(learning_rate))
