"""Adam (Kingma & Ba, CS231n) and Yogi (Zaheer et al., as in D2L 11.10).

Bias correction with a scheduled ``b1``/``b2`` (one-cycle or cyclical momentum): the moments are
weighted averages that start at zero, and the weights of ``m_t = Σ_i (1 − β_i) ∏_{j>i} β_j g_i`` sum to
``1 − ∏_{i≤t} β_i``. lrtools divides by exactly that, the product of the values actually used, which is
``1 − β^t`` for a constant ``β`` (PyTorch instead divides by ``1 − β_t^t`` with the current value).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from lrtools._hyperparams import check, decay_product, like, resolve_all, state_dtype, zero_count
from lrtools._typing import ScalarOrSchedule, check_flag, check_interval, check_positive
from lrtools.optimizers._learning_rate import build_scale_by_learning_rate, check_learning_rate
from lrtools._numerics import abs_sq, divide, real_zeros_like, times
from lrtools.optimizers._weight_decay import Mask, check_weight_decay, with_weight_decay


class AdamState(NamedTuple):
  """State of :func:`scale_by_adam` and :func:`scale_by_yogi`.

  Attributes:
    count: int32 number of updates so far.
    mu: first moment ``m`` (not bias-corrected).
    nu: second moment ``v`` of ``|g|²`` (Yogi's ``s``; not bias-corrected), in the parameters' real
      dtype.
    b1_product: ``∏ β1_i`` over the updates so far (``β1^t`` for a constant ``β1``).
    b2_product: ``∏ β2_i`` likewise.
    hyperparams: ``{"b1": ..., "b2": ..., "eps": ...}`` used by the last update.
  """
  count: jax.Array
  mu: optax.Updates
  nu: optax.Updates
  b1_product: jax.Array
  b2_product: jax.Array
  hyperparams: dict[str, jax.Array]


def _check_moments(call: str, b1, b2, eps) -> None:
  check(check_interval, call, "b1", b1, 0.0, 1.0)
  check(check_interval, call, "b2", b2, 0.0, 1.0)
  check(check_positive, call, "eps", eps)


def _scale_by_moments(b1, b2, eps, bias_correction: bool, second_moment) -> optax.GradientTransformation:
  """Adam's skeleton, unchecked; ``second_moment(b2, nu, |g|²)`` is the only place Adam and Yogi differ."""
  hyper = {"b1": b1, "b2": b2, "eps": eps}

  def init_fn(params):
    count = zero_count()
    # Distinct buffers for every field, so that the state can be donated.
    one = lambda: jnp.ones([], state_dtype())
    zeros = optax.tree.zeros_like
    return AdamState(count, zeros(params), real_zeros_like(params), one(), one(), resolve_all(hyper, count))

  def update_fn(updates, state, params=None):
    del params
    hp = resolve_all(hyper, state.count)
    t = optax.safe_increment(state.count)
    # Complements 1 − β are formed in the hyperparameter dtype, then cast (bfloat16 rounds 0.999 to 1).
    b1c = 1 - hp["b1"]
    mu = jax.tree.map(lambda g, m: (times(hp["b1"], m) + times(b1c, g)).astype(m.dtype), updates, state.mu)
    nu = jax.tree.map(lambda g, v: second_moment(hp["b2"], v, abs_sq(g)).astype(v.dtype), updates, state.nu)
    p1 = decay_product(state.b1_product, b1, hp["b1"], t)
    p2 = decay_product(state.b2_product, b2, hp["b2"], t)
    # Without correction the divisors are 1; the CS231n simplified form.
    c1, c2 = (1 - p1, 1 - p2) if bias_correction else (jnp.ones_like(p1), jnp.ones_like(p2))

    # Scalar reciprocals: one vector division per element instead of three.
    r1, r2 = 1 / c1, 1 / c2

    def direction(m, v):
      return divide(times(r1, m), jnp.sqrt(v * like(r2, v)) + like(hp["eps"], v))

    updates = jax.tree.map(direction, mu, nu)
    return updates, AdamState(t, mu, nu, p1, p2, hp)

  return optax.GradientTransformation(init_fn, update_fn)


def _adam_second(b2, v, g2):
  return like(b2, v) * v + like(1 - b2, v) * g2


def _yogi_second(b2, v, g2):
  # s += (1 − β2)·g²·sign(g² − s): moves s towards g² by a step that does not grow with s.
  return v + like(1 - b2, v) * g2 * jnp.sign(g2 - v)


def scale_by_adam(b1: ScalarOrSchedule = 0.9, b2: ScalarOrSchedule = 0.999,
                  eps: ScalarOrSchedule = 1e-8, bias_correction: bool = True
                  ) -> optax.GradientTransformation:
  r"""Rescales updates by Adam's bias-corrected moment estimates.

  .. math::
    m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1 - \beta_2) |g_t|^2, \quad
    u_t = \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}

  With ``bias_correction=False``, ``u_t = m_t / (\sqrt{v_t} + \epsilon)`` (CS231n's simplified form).
  A scheduled ``β`` uses ``1 - \prod_i \beta_i`` in place of ``1 - \beta^t`` (see the module notes).

  Args:
    b1: decay of the first moment in [0, 1): number, array, tracer or schedule.
    b2: decay of the second moment in [0, 1).
    eps: positive constant outside the root.
    bias_correction: divide the moments by ``1 - β^t`` (Kingma & Ba) or not.

  Returns:
    An ``optax.GradientTransformation`` with state :class:`AdamState`.

  Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> from lrtools.optimizers import scale_by_adam
    >>> tx = scale_by_adam()
    >>> u, state = tx.update(jnp.array([0.5, -3.0]), tx.init(jnp.zeros(2)))
    >>> print(np.round(np.asarray(u), 4))
    [ 1. -1.]

  References:
    Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization"; CS231n "Neural Networks Part 3";
    D2L 11.10.
  """
  _check_moments("scale_by_adam", b1, b2, eps)
  check_flag("scale_by_adam", "bias_correction", bias_correction)
  return _scale_by_moments(b1, b2, eps, bias_correction, _adam_second)


def scale_by_yogi(b1: ScalarOrSchedule = 0.9, b2: ScalarOrSchedule = 0.999,
                  eps: ScalarOrSchedule = 1e-3) -> optax.GradientTransformation:
  r"""Rescales updates by Yogi's moment estimates (D2L's form: zero start, bias-corrected).

  .. math::
    m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
    s_t = s_{t-1} + (1 - \beta_2) \, |g_t|^2 \, \operatorname{sign}(|g_t|^2 - s_{t-1}), \quad
    u_t = \frac{m_t / (1 - \beta_1^t)}{\sqrt{s_t / (1 - \beta_2^t)} + \epsilon}

  Differs from ``optax.scale_by_yogi``, which starts ``s`` at 1e-6 and corrects no bias.

  Args:
    b1: decay of the first moment in [0, 1): number, array, tracer or schedule.
    b2: rate of the second moment in [0, 1).
    eps: positive constant outside the root (1e-3, the paper's and D2L's).

  Returns:
    An ``optax.GradientTransformation`` with state :class:`AdamState`.

  Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> from lrtools.optimizers import scale_by_yogi
    >>> tx = scale_by_yogi(eps=1e-8)
    >>> u, state = tx.update(jnp.array([0.5, -3.0]), tx.init(jnp.zeros(2)))
    >>> print(np.round(np.asarray(u), 4))
    [ 1. -1.]

  References:
    Zaheer, Reddi, Sachan, Kale & Kumar 2018, "Adaptive Methods for Nonconvex Optimization";
    D2L 11.10.3.
  """
  _check_moments("scale_by_yogi", b1, b2, eps)
  return _scale_by_moments(b1, b2, eps, True, _yogi_second)


def adam(learning_rate: ScalarOrSchedule, b1: ScalarOrSchedule = 0.9, b2: ScalarOrSchedule = 0.999,
         eps: ScalarOrSchedule = 1e-8, bias_correction: bool = True, *,
         weight_decay: ScalarOrSchedule = 0.0, weight_decay_mask: Mask | None = None
         ) -> optax.GradientTransformationExtraArgs:
  r"""Adam: momentum on the gradient, RMSProp on its square, both bias-corrected; AdamW with weight decay.

  .. math::
    m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1 - \beta_2) |g_t|^2, \quad
    x_{t+1} = x_t - \eta_t \Big(\frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}
    + \lambda_t x_t\Big)

  With constant hyperparameters and ``bias_correction=True`` it is ``optax.adam`` (``optax.adamw`` with
  ``weight_decay``, the decay decoupled from the moments as in ``torch.optim.AdamW``); every argument may
  also be a schedule, e.g. ``adam(one_cycle_schedule(...), b1=one_cycle_momentum_schedule(...))``.

  Args:
    learning_rate: non-negative number, array, tracer or schedule.
    b1: decay of the first moment in [0, 1).
    b2: decay of the second moment in [0, 1).
    eps: positive constant outside the root.
    bias_correction: ``True`` for Kingma & Ba (CS231n's full form), ``False`` for CS231n's simplified
      form.
    weight_decay: decoupled weight decay ``λ`` (non-negative number, array, tracer or schedule): the
      update gains ``−η_t λ_t w``, after the moments, which it never enters. The default 0 adds nothing
      (not even state).
    weight_decay_mask: which parameters decay: a pytree of bools matching (a prefix of) the parameters,
      or a callable ``params -> mask``, as ``optax.add_decayed_weights``' mask; ``None``: all.

  Returns:
    ``optax.chain(scale_by_adam(...), scale_by_learning_rate(learning_rate))``, then the decay when
    ``weight_decay`` is set.

  Example:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> from lrtools.optimizers import adam
    >>> opt = adam(0.1)
    >>> params = jnp.array([1.0, -1.0])
    >>> updates, _ = opt.update(jnp.array([0.01, -100.0]), opt.init(params))
    >>> print(np.round(np.asarray(optax.apply_updates(params, updates)), 4))
    [ 0.9 -0.9]
    >>> opt = adam(0.1, weight_decay=0.5)
    >>> updates, _ = opt.update(jnp.array([0.01, -100.0]), opt.init(params), params)
    >>> print(np.round(np.asarray(optax.apply_updates(params, updates)), 4))
    [ 0.85 -0.85]

  References:
    Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization"; CS231n "Neural Networks Part 3";
    D2L 11.10; Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization" (AdamW).
  """
  check_learning_rate("adam", learning_rate)
  _check_moments("adam", b1, b2, eps)
  check_flag("adam", "bias_correction", bias_correction)
  check_weight_decay("adam", weight_decay, weight_decay_mask)
  return with_weight_decay("adam", learning_rate, weight_decay, weight_decay_mask,
                           _scale_by_moments(b1, b2, eps, bias_correction, _adam_second),
                           build_scale_by_learning_rate(learning_rate))


def yogi(learning_rate: ScalarOrSchedule, b1: ScalarOrSchedule = 0.9, b2: ScalarOrSchedule = 0.999,
         eps: ScalarOrSchedule = 1e-3) -> optax.GradientTransformationExtraArgs:
  r"""Yogi as in D2L: Adam whose second moment moves additively towards ``|g|²``.

  .. math::
    s_t = s_{t-1} + (1 - \beta_2) \, |g_t|^2 \, \operatorname{sign}(|g_t|^2 - s_{t-1}), \quad
    x_{t+1} = x_t - \eta_t \frac{m_t / (1 - \beta_1^t)}{\sqrt{s_t / (1 - \beta_2^t)} + \epsilon}

  Args:
    learning_rate: non-negative number, array, tracer or schedule.
    b1: decay of the first moment in [0, 1).
    b2: rate of the second moment in [0, 1).
    eps: positive constant outside the root.

  Returns:
    ``optax.chain(scale_by_yogi(...), scale_by_learning_rate(learning_rate))``.

  Example:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> from lrtools.optimizers import yogi
    >>> opt = yogi(0.1, eps=1e-8)
    >>> params = jnp.array([1.0, -1.0])
    >>> updates, _ = opt.update(jnp.array([0.01, -100.0]), opt.init(params))
    >>> print(np.round(np.asarray(optax.apply_updates(params, updates)), 4))
    [ 0.9 -0.9]

  References:
    Zaheer, Reddi, Sachan, Kale & Kumar 2018, "Adaptive Methods for Nonconvex Optimization";
    D2L 11.10.3.
  """
  check_learning_rate("yogi", learning_rate)
  _check_moments("yogi", b1, b2, eps)
  return optax.chain(_scale_by_moments(b1, b2, eps, True, _yogi_second),
                     build_scale_by_learning_rate(learning_rate))
