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

from lrtools._hyperparams import check, resolve_all, zero_count
from lrtools._typing import ScalarOrSchedule, check_flag, check_interval
from lrtools.optimizers._learning_rate import build_scale_by_learning_rate, check_learning_rate
from lrtools._numerics import times
from lrtools.optimizers._weight_decay import Mask, check_weight_decay, with_weight_decay


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
  _check_momentum("scale_by_momentum", momentum)
  check_flag("scale_by_momentum", "nesterov", nesterov)
  return _build_momentum(momentum, nesterov)


def _check_momentum(call: str, momentum: ScalarOrSchedule) -> None:
  check(check_interval, call, "momentum", momentum, 0.0, 1.0)


def _build_momentum(momentum: ScalarOrSchedule, nesterov: bool) -> optax.GradientTransformation:
  hyper = {"momentum": momentum}

  def init_fn(params):
    count = zero_count()
    return MomentumState(count, optax.tree.zeros_like(params), resolve_all(hyper, count))

  def update_fn(updates, state, params=None):
    del params
    hp = resolve_all(hyper, state.count)
    mu = hp["momentum"]
    velocity = jax.tree.map(lambda u, v: (times(mu, v) + u).astype(v.dtype), updates, state.velocity)
    if nesterov:
      updates = jax.tree.map(lambda u, v: u + times(mu, v).astype(u.dtype), updates, velocity)
    else:
      updates = velocity
    return updates, MomentumState(optax.safe_increment(state.count), velocity, hp)

  return optax.GradientTransformation(init_fn, update_fn)


def _with_learning_rate(call: str, learning_rate: ScalarOrSchedule, momentum: ScalarOrSchedule,
                        nesterov: bool, lr_in_velocity: bool, weight_decay: ScalarOrSchedule,
                        weight_decay_mask: Mask | None) -> optax.GradientTransformationExtraArgs:
  check_learning_rate(call, learning_rate)
  _check_momentum(call, momentum)
  check_flag(call, "lr_in_velocity", lr_in_velocity)
  check_weight_decay(call, weight_decay, weight_decay_mask)
  lr = build_scale_by_learning_rate(learning_rate)
  mom = _build_momentum(momentum, nesterov)
  return with_weight_decay(call, learning_rate, weight_decay, weight_decay_mask,
                           *((lr, mom) if lr_in_velocity else (mom, lr)))


def sgd(learning_rate: ScalarOrSchedule, *, weight_decay: ScalarOrSchedule = 0.0,
        weight_decay_mask: Mask | None = None) -> optax.GradientTransformationExtraArgs:
  r"""Vanilla stochastic gradient descent, optionally with weight decay.

  .. math::
    x_{t+1} = x_t - \eta_t (g_t + \lambda_t x_t)

  Without momentum decoupled and L2 weight decay coincide: this is ``torch.optim.SGD(lr,
  weight_decay=λ)``.

  Args:
    learning_rate: non-negative number, array, tracer or schedule.
    weight_decay: decoupled weight decay ``λ`` (non-negative number, array, tracer or schedule): the
      update gains ``−η_t λ_t w``. The default 0 adds nothing (not even state).
    weight_decay_mask: which parameters decay: a pytree of bools matching (a prefix of) the parameters,
      or a callable ``params -> mask``, as ``optax.add_decayed_weights``' mask; ``None``: all.

  Returns:
    ``optax.chain(scale_by_learning_rate(learning_rate))``, then the decay when ``weight_decay`` is set.

  Example:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> from lrtools.optimizers import sgd
    >>> opt = sgd(0.1)
    >>> params = jnp.array([1.0, -2.0])
    >>> updates, _ = opt.update(2 * params, opt.init(params))
    >>> print(np.round(np.asarray(optax.apply_updates(params, updates)), 4))
    [ 0.8 -1.6]
    >>> opt = sgd(0.1, weight_decay=0.5)
    >>> updates, _ = opt.update(2 * params, opt.init(params), params)
    >>> print(np.round(np.asarray(optax.apply_updates(params, updates)), 4))
    [ 0.75 -1.5 ]

  References:
    Robbins & Monro 1951; CS231n "Neural Networks Part 3" (vanilla update); D2L 11.4; Loshchilov &
    Hutter 2019, "Decoupled Weight Decay Regularization".
  """
  check_learning_rate("sgd", learning_rate)
  check_weight_decay("sgd", weight_decay, weight_decay_mask)
  return with_weight_decay("sgd", learning_rate, weight_decay, weight_decay_mask,
                           build_scale_by_learning_rate(learning_rate))


def momentum(learning_rate: ScalarOrSchedule, momentum: ScalarOrSchedule = 0.9, *,
             lr_in_velocity: bool = True, weight_decay: ScalarOrSchedule = 0.0,
             weight_decay_mask: Mask | None = None) -> optax.GradientTransformationExtraArgs:
  r"""SGD with (heavy-ball) momentum, optionally with decoupled weight decay (SGDW).

  .. math::
    v_t = \mu_t v_{t-1} - \eta_t g_t, \quad x_{t+1} = x_t + v_t - \eta_t \lambda_t x_t
    \qquad (\texttt{lr\_in\_velocity=False}: \; v_t = \mu_t v_{t-1} + g_t, \;
    x_{t+1} = x_t - \eta_t (v_t + \lambda_t x_t))

  The two forms agree for a constant learning rate; see the module notes for why the CS231n form
  (rate inside the velocity) is the default. The weight decay is decoupled (Loshchilov & Hutter's
  SGDW): it does not enter the velocity, so with momentum it differs from ``torch.optim.SGD(
  weight_decay=λ)``, whose L2 term ``λx`` is added to the gradient and accumulates in the velocity.

  Args:
    learning_rate: non-negative number, array, tracer or schedule.
    momentum: momentum coefficient in [0, 1): number, array, tracer or schedule.
    lr_in_velocity: ``True`` (default) for CS231n's form, ``False`` for the D2L/optax/PyTorch form.
    weight_decay: decoupled weight decay ``λ`` (non-negative number, array, tracer or schedule): the
      update gains ``−η_t λ_t w``, after the velocity, which it never enters. The default 0 adds
      nothing (not even state).
    weight_decay_mask: which parameters decay: a pytree of bools matching (a prefix of) the parameters,
      or a callable ``params -> mask``, as ``optax.add_decayed_weights``' mask; ``None``: all.

  Returns:
    An ``optax.chain`` of :func:`scale_by_learning_rate` and :func:`scale_by_momentum`, then the decay
    when ``weight_decay`` is set.

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
    Polyak 1964; Sutskever et al. 2013; CS231n "Neural Networks Part 3"; D2L 11.6; Loshchilov & Hutter
    2019, "Decoupled Weight Decay Regularization" (SGDW).
  """
  return _with_learning_rate("momentum", learning_rate, momentum, False, lr_in_velocity, weight_decay,
                             weight_decay_mask)


def nesterov(learning_rate: ScalarOrSchedule, momentum: ScalarOrSchedule = 0.9, *,
             lr_in_velocity: bool = True, weight_decay: ScalarOrSchedule = 0.0,
             weight_decay_mask: Mask | None = None) -> optax.GradientTransformationExtraArgs:
  r"""SGD with Nesterov momentum, in CS231n's look-ahead-free form, optionally with decoupled weight decay.

  .. math::
    v_t = \mu_t v_{t-1} - \eta_t g_t, \quad
    x_{t+1} = x_t - \mu_t v_{t-1} + (1 + \mu_t) v_t - \eta_t \lambda_t x_t
    \qquad (\texttt{lr\_in\_velocity=False}: \; v_t = \mu_t v_{t-1} + g_t, \;
    x_{t+1} = x_t - \eta_t (g_t + \mu_t v_t + \lambda_t x_t))

  The weight decay is decoupled (SGDW), unlike ``torch.optim.SGD(nesterov=True, weight_decay=λ)``'s
  L2 term, which enters the velocity (see :func:`momentum`).

  Args:
    learning_rate: non-negative number, array, tracer or schedule.
    momentum: momentum coefficient in [0, 1): number, array, tracer or schedule.
    lr_in_velocity: ``True`` (default) for CS231n's form, ``False`` for the optax/PyTorch form.
    weight_decay: decoupled weight decay ``λ`` (non-negative number, array, tracer or schedule): the
      update gains ``−η_t λ_t w``, after the velocity, which it never enters. The default 0 adds
      nothing (not even state).
    weight_decay_mask: which parameters decay: a pytree of bools matching (a prefix of) the parameters,
      or a callable ``params -> mask``, as ``optax.add_decayed_weights``' mask; ``None``: all.

  Returns:
    An ``optax.chain`` of :func:`scale_by_learning_rate` and ``scale_by_momentum(nesterov=True)``, then
    the decay when ``weight_decay`` is set.

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
    networks" (the reparametrised form); CS231n "Neural Networks Part 3"; Loshchilov & Hutter 2019.
  """
  return _with_learning_rate("nesterov", learning_rate, momentum, True, lr_in_velocity, weight_decay,
                             weight_decay_mask)
