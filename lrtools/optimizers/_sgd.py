"""Stochastic gradient descent, momentum and Nesterov momentum (CS231n, D2L 11.4 and 11.6).

Where the learning rate sits. CS231n (and Sutskever et al. 2013) put it inside the velocity,
``v = μv − ηg; x += v``; D2L, optax and PyTorch outside, ``v = μv + g; x −= ηv``. The two produce the same
iterates for a constant rate and differ once it is scheduled: with the rate inside, each gradient moves
the parameters by the rate current when it was computed, so a rate drop (step decay, warm restarts,
reduce-on-plateau before the velocity) takes effect smoothly; with it outside, the whole accumulated
velocity is rescaled at once. lrtools defaults to the CS231n form (``lr_in_velocity=True``): it is the
seeds' formula, the velocity is then the actual parameter displacement, and a schedule's value at step t
weighs only the gradient of step t. ``lr_in_velocity=False`` gives the optax/PyTorch form. Either way
the alias is a chain of :func:`scale_by_learning_rate` and :func:`scale_by_momentum`; only their order
differs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import optax

from lrtools._typing import ScalarOrSchedule, check_interval, check_nonnegative
from lrtools._hyperparams import (check, like, resolve_all, zero_count)
from lrtools.optimizers._learning_rate import scale_by_learning_rate


class MomentumState(NamedTuple):
  """State of :func:`scale_by_momentum`.

  Attributes:
    count: int32 number of updates so far.
    velocity: the velocity ``v`` (same tree and dtypes as the parameters).
    hyperparams: ``{"momentum": μ}`` used by the last update.
  """
  count: jax.Array
  velocity: optax.Updates
  hyperparams: dict[str, jax.Array]


def scale_by_momentum(momentum: ScalarOrSchedule = 0.9, nesterov: bool = False
                      ) -> optax.GradientTransformation:
  r"""Accumulates incoming updates in a velocity (heavy ball), optionally with Nesterov's look-ahead.

  .. math::
    v_t = \mu_t v_{t-1} + u_t, \qquad
    \text{out}_t = v_t \;\;\text{or, Nesterov,}\;\; \text{out}_t = u_t + \mu_t v_t
                 = (1 + \mu_t) v_t - \mu_t v_{t-1}

  Fed ``u_t = -\eta_t g_t`` this is CS231n's momentum (``x += v``) and Nesterov update
  (``x += -μ v_prev + (1 + μ) v``); fed ``u_t = g_t`` and followed by the learning rate it is the
  D2L/optax form.

  Args:
    momentum: momentum coefficient ``μ`` in [0, 1): number, array, tracer or schedule (e.g. Smith's
      cyclical momentum).
    nesterov: use the Nesterov update.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`MomentumState`.

  Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> from lrtools.optimizers import scale_by_momentum
    >>> tx = scale_by_momentum(0.5)
    >>> state = tx.init(jnp.zeros(2))
    >>> for _ in range(3):
    ...   u, state = tx.update(jnp.ones(2), state)
    >>> print(np.round(np.asarray(u), 4))
    [1.75 1.75]

  References:
    Polyak 1964; Sutskever et al. 2013, "On the importance of initialization and momentum in deep
    learning"; CS231n "Neural Networks Part 3"; D2L 11.6.
  """
  check(check_interval, "scale_by_momentum", "momentum", momentum, 0.0, 1.0)
  hyper = {"momentum": momentum}

  def init_fn(params):
    count = zero_count()
    return MomentumState(count, optax.tree.zeros_like(params), resolve_all(hyper, count))

  def update_fn(updates, state, params=None):
    del params
    hp = resolve_all(hyper, state.count)
    mu = hp["momentum"]
    velocity = jax.tree.map(lambda u, v: (like(mu, v) * v + u).astype(v.dtype), updates, state.velocity)
    if nesterov:
      updates = jax.tree.map(lambda u, v: u + like(mu, u) * v, updates, velocity)
    else:
      updates = velocity
    return updates, MomentumState(optax.safe_increment(state.count), velocity, hp)

  return optax.GradientTransformation(init_fn, update_fn)


def _with_learning_rate(call: str, learning_rate: ScalarOrSchedule, momentum: ScalarOrSchedule,
                        nesterov: bool, lr_in_velocity: bool) -> optax.GradientTransformationExtraArgs:
  check(check_nonnegative, call, "learning_rate", learning_rate)
  check(check_interval, call, "momentum", momentum, 0.0, 1.0)
  lr = scale_by_learning_rate(learning_rate)
  mom = scale_by_momentum(momentum, nesterov=nesterov)
  return optax.chain(lr, mom) if lr_in_velocity else optax.chain(mom, lr)


def sgd(learning_rate: ScalarOrSchedule) -> optax.GradientTransformationExtraArgs:
  r"""Vanilla stochastic gradient descent.

  .. math::
    x_{t+1} = x_t - \eta_t g_t

  Args:
    learning_rate: non-negative number, array, tracer or schedule.

  Returns:
    ``optax.chain(scale_by_learning_rate(learning_rate))``.

  Example:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> from lrtools.optimizers import sgd
    >>> opt = sgd(0.1)
    >>> params = jnp.array([1.0, -2.0])
    >>> updates, _ = opt.update(2 * params, opt.init(params))
    >>> print(np.round(np.asarray(optax.apply_updates(params, updates)), 4))
    [ 0.8 -1.6]

  References:
    Robbins & Monro 1951; CS231n "Neural Networks Part 3" (vanilla update); D2L 11.4.
  """
  check(check_nonnegative, "sgd", "learning_rate", learning_rate)
  return optax.chain(scale_by_learning_rate(learning_rate))


def momentum(learning_rate: ScalarOrSchedule, momentum: ScalarOrSchedule = 0.9, *,
             lr_in_velocity: bool = True) -> optax.GradientTransformationExtraArgs:
  r"""SGD with (heavy-ball) momentum.

  .. math::
    v_t = \mu_t v_{t-1} - \eta_t g_t, \quad x_{t+1} = x_t + v_t
    \qquad (\texttt{lr\_in\_velocity=False}: \; v_t = \mu_t v_{t-1} + g_t, \; x_{t+1} = x_t - \eta_t v_t)

  The two forms agree for a constant learning rate; see the module notes for why the CS231n form
  (rate inside the velocity) is the default.

  Args:
    learning_rate: non-negative number, array, tracer or schedule.
    momentum: momentum coefficient in [0, 1): number, array, tracer or schedule.
    lr_in_velocity: ``True`` (default) for CS231n's form, ``False`` for the D2L/optax/PyTorch form.

  Returns:
    An ``optax.chain`` of :func:`scale_by_learning_rate` and :func:`scale_by_momentum`.

  Example:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> from lrtools.optimizers import momentum
    >>> opt = momentum(0.1, 0.9)
    >>> params = jnp.array([1.0])
    >>> state = opt.init(params)
    >>> for _ in range(2):
    ...   updates, state = opt.update(2 * params, state)
    ...   params = optax.apply_updates(params, updates)
    >>> print(np.round(np.asarray(params), 4))
    [0.46]

  References:
    Polyak 1964; Sutskever et al. 2013; CS231n "Neural Networks Part 3"; D2L 11.6.
  """
  return _with_learning_rate("momentum", learning_rate, momentum, False, lr_in_velocity)


def nesterov(learning_rate: ScalarOrSchedule, momentum: ScalarOrSchedule = 0.9, *,
             lr_in_velocity: bool = True) -> optax.GradientTransformationExtraArgs:
  r"""SGD with Nesterov momentum, in CS231n's look-ahead-free form.

  .. math::
    v_t = \mu_t v_{t-1} - \eta_t g_t, \quad x_{t+1} = x_t - \mu_t v_{t-1} + (1 + \mu_t) v_t
    \qquad (\texttt{lr\_in\_velocity=False}: \; v_t = \mu_t v_{t-1} + g_t, \;
    x_{t+1} = x_t - \eta_t (g_t + \mu_t v_t))

  Args:
    learning_rate: non-negative number, array, tracer or schedule.
    momentum: momentum coefficient in [0, 1): number, array, tracer or schedule.
    lr_in_velocity: ``True`` (default) for CS231n's form, ``False`` for the optax/PyTorch form.

  Returns:
    An ``optax.chain`` of :func:`scale_by_learning_rate` and ``scale_by_momentum(nesterov=True)``.

  Example:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> from lrtools.optimizers import nesterov
    >>> opt = nesterov(0.1, 0.9)
    >>> params = jnp.array([1.0])
    >>> state = opt.init(params)
    >>> for _ in range(2):
    ...   updates, state = opt.update(2 * params, state)
    ...   params = optax.apply_updates(params, updates)
    >>> print(np.round(np.asarray(params), 4))
    [0.2224]

  References:
    Nesterov 1983; Sutskever et al. 2013; Bengio et al. 2012, "Advances in optimizing recurrent
    networks" (the reparametrised form); CS231n "Neural Networks Part 3".
  """
  return _with_learning_rate("nesterov", learning_rate, momentum, True, lr_in_velocity)
