"""Search spaces: the distribution of each hyperparameter, and sampling a batch of configurations.

A space is a ``dict`` of names to parameters. Each parameter is a small ``NamedTuple`` with a ``kind``:

- ``log_uniform(low, high)``: :math:`\\log x \\sim U(\\log low, \\log high)`, the scale for learning rates and
  regularization strengths (CS231n: "search on a log scale");
- ``uniform(low, high)``: :math:`x \\sim U(low, high)` (momentum, dropout);
- ``int_uniform(low, high)``: an integer, each of ``low … high`` (both included) equally likely;
- ``choice(values)``: one of a tuple of numbers, each equally likely; a configuration holds the chosen
  *value* (not its index).

Sampled configurations are a ``dict`` of arrays, one value per trial: floats in the default float dtype
(float32, float64 under x64), integers int32, so a configuration feeds ``jax.vmap`` directly.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from lrtools._typing import (INT32_MAX, check_callable, check_finite, check_integer, check_positive, fail,
                             float_dtype)


class LogUniform(NamedTuple):
  """:math:`\\log x \\sim U(\\log \\text{low}, \\log \\text{high})`, ``0 < low < high``."""
  low: float
  high: float
  kind: str = "log_uniform"


class Uniform(NamedTuple):
  """:math:`x \\sim U(\\text{low}, \\text{high})`, ``low < high``."""
  low: float
  high: float
  kind: str = "uniform"


class IntUniform(NamedTuple):
  """An integer in ``[low, high]`` (both included), each equally likely; ``low < high``, both fit int32."""
  low: int
  high: int
  kind: str = "int_uniform"


class Choice(NamedTuple):
  """One of ``values`` (a tuple of numbers), each equally likely; a configuration holds the value."""
  values: tuple
  kind: str = "choice"


Parameter = Union[LogUniform, Uniform, IntUniform, Choice]
Space = dict  # str -> Parameter
KINDS = ("log_uniform", "uniform", "int_uniform", "choice")


def _host_float(call: str, name: str, value: Any) -> float:
  check_finite(call, name, value)
  return float(np.asarray(value))


def _check_order(call: str, low: float, high: float) -> None:
  if not low < high:
    raise ValueError(f"`{call}(low=..., high=...)` needs low < high, got low={low!r}, high={high!r}")


def log_uniform(low: float, high: float) -> LogUniform:
  r"""A parameter sampled uniformly on a log scale between ``low`` and ``high``.

  .. math:: \log x \sim \mathcal U(\log \text{low}, \log \text{high})

  Args:
    low: the smallest value, positive and finite.
    high: the largest value, above ``low``.

  Returns:
    A :class:`LogUniform` (``kind == "log_uniform"``).

  Example:
    >>> from lrtools.search import log_uniform
    >>> log_uniform(1e-5, 1.0)
    LogUniform(low=1e-05, high=1.0, kind='log_uniform')

  References:
    Bergstra & Bengio 2012, "Random Search for Hyper-Parameter Optimization"; CS231n "Neural Networks Part 3".
  """
  check_positive("log_uniform", "low", low)
  check_positive("log_uniform", "high", high)
  lo, hi = _host_float("log_uniform", "low", low), _host_float("log_uniform", "high", high)
  _check_order("log_uniform", lo, hi)
  return LogUniform(lo, hi)


def uniform(low: float, high: float) -> Uniform:
  r"""A parameter sampled uniformly between ``low`` and ``high``.

  .. math:: x \sim \mathcal U(\text{low}, \text{high})

  Args:
    low: the smallest value (finite).
    high: the largest value, above ``low``.

  Returns:
    A :class:`Uniform` (``kind == "uniform"``).

  Example:
    >>> from lrtools.search import uniform
    >>> uniform(0.5, 0.99)
    Uniform(low=0.5, high=0.99, kind='uniform')

  References:
    Bergstra & Bengio 2012, "Random Search for Hyper-Parameter Optimization".
  """
  lo, hi = _host_float("uniform", "low", low), _host_float("uniform", "high", high)
  _check_order("uniform", lo, hi)
  return Uniform(lo, hi)


def int_uniform(low: int, high: int) -> IntUniform:
  r"""An integer parameter, each of ``low, low + 1, …, high`` equally likely (both ends included).

  .. math:: P(x = k) = \frac{1}{\text{high} - \text{low} + 1},\quad k \in \{\text{low}, …, \text{high}\}

  Args:
    low: the smallest integer (fits int32).
    high: the largest integer, above ``low`` (fits int32).

  Returns:
    An :class:`IntUniform` (``kind == "int_uniform"``).

  Example:
    >>> from lrtools.search import int_uniform
    >>> int_uniform(1, 4)
    IntUniform(low=1, high=4, kind='int_uniform')

  References:
    Bergstra & Bengio 2012, "Random Search for Hyper-Parameter Optimization".
  """
  check_integer("int_uniform", "low", low, -INT32_MAX)
  check_integer("int_uniform", "high", high, -INT32_MAX)
  lo, hi = int(np.asarray(low)), int(np.asarray(high))
  _check_order("int_uniform", lo, hi)
  if hi - lo >= INT32_MAX:  # the count of values, high - low + 1, feeds int32 arithmetic
    raise ValueError(f"`int_uniform(low=..., high=...)` needs high - low < 2**31 - 1, got low={low!r}, "
                     f"high={high!r}")
  return IntUniform(lo, hi)


def choice(values) -> Choice:
  r"""A parameter taking one of ``values`` (numbers), each equally likely; configurations hold the value.

  .. math:: P(x = v_i) = 1/n,\quad i = 1 … n

  Args:
    values: a non-empty sequence of finite real numbers (all integers give an int32 parameter, otherwise
      float).

  Returns:
    A :class:`Choice` (``kind == "choice"``) with ``values`` a tuple of Python numbers.

  Example:
    >>> from lrtools.search import choice
    >>> choice([32, 64, 128])
    Choice(values=(32, 64, 128), kind='choice')

  References:
    Bergstra & Bengio 2012, "Random Search for Hyper-Parameter Optimization".
  """
  if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__"):
    fail("choice", "values", values, "must be a non-empty sequence of numbers")
  if len(values) == 0:
    fail("choice", "values", values, "must be a non-empty sequence of numbers")
  out = []
  for v in values:
    check_finite("choice", "values", v)
    a = np.asarray(v)
    if a.dtype.kind in "iu":
      check_integer("choice", "values", v, -INT32_MAX)
      out.append(int(a))
    else:
      out.append(float(a))
  return Choice(tuple(out))


def _is_int(param: Parameter) -> bool:
  return param.kind == "int_uniform" or (param.kind == "choice" and all(isinstance(v, int) for v in param.values))


def param_dtype(param: Parameter) -> jnp.dtype:
  """int32 for integer parameters, else the default float dtype."""
  return jnp.dtype(jnp.int32) if _is_int(param) else float_dtype()


def check_space(call: str, space: Any) -> None:
  """``space`` is a non-empty ``dict`` of str names to parameters (from the factories, or equal tuples)."""
  if not isinstance(space, dict) or not space:
    fail(call, "space", space, "must be a non-empty dict of names to parameters (log_uniform, uniform, ...)")
  for name, param in space.items():
    if not isinstance(name, str):
      fail(call, "space", space, f"must have str names, found {name!r}")
    if not isinstance(param, (LogUniform, Uniform, IntUniform, Choice)):
      fail(call, "space", space, f"must map {name!r} to a log_uniform, uniform, int_uniform or choice "
           f"parameter, found {param!r}")
    if param.kind == "choice":  # a hand-built tuple gets the factories' checks
      if choice(param.values) != param:
        fail(call, "space", space, f"has a malformed choice for {name!r}")
      continue
    factory = {"log_uniform": log_uniform, "uniform": uniform, "int_uniform": int_uniform}[param.kind]
    try:
      rebuilt = factory(param.low, param.high)
    except ValueError as e:
      fail(call, "space", space, f"has an invalid range for {name!r} ({e})")
    if rebuilt != param:
      fail(call, "space", space, f"has a malformed parameter for {name!r}")


def _sample_one(param: Parameter, key: jax.Array, num_trials: int) -> jax.Array:
  dtype = param_dtype(param)
  if param.kind == "log_uniform":
    u = jax.random.uniform(key, (num_trials,), dtype, np.log(param.low), np.log(param.high))
    # exp can round a hair past the ends: keep every value inside [low, high]
    return jnp.clip(jnp.exp(u), jnp.asarray(param.low, dtype), jnp.asarray(param.high, dtype))
  if param.kind == "uniform":
    return jax.random.uniform(key, (num_trials,), dtype, param.low, param.high)
  if param.kind == "int_uniform":  # randint's maxval is exclusive, and high + 1 may overflow int32: shift
    offset = jax.random.randint(key, (num_trials,), 0, param.high - param.low + 1, jnp.int32)
    return offset + jnp.asarray(param.low, jnp.int32)
  index = jax.random.randint(key, (num_trials,), 0, len(param.values), jnp.int32)
  return jnp.asarray(np.asarray(param.values), dtype)[index]


def sample_space(space: Space, key: jax.Array, num_trials: int) -> dict[str, jax.Array]:
  r"""``num_trials`` independent configurations drawn from ``space``, one array per parameter.

  Parameter ``j`` (in the dict's order) is drawn with its own key ``fold_in(key, j)``, so adding a
  parameter does not change the values drawn for the others.

  .. math:: x^{(i)}_j \sim p_j \quad (i = 1 … N)

  Args:
    space: a dict of names to parameters (:func:`log_uniform`, :func:`uniform`, :func:`int_uniform`,
      :func:`choice`).
    key: a PRNG key.
    num_trials: the number of configurations :math:`N \ge 1`.

  Returns:
    A dict of names to arrays of shape ``(num_trials,)``: floats in the default float dtype, int32 for
    integer parameters.

  Example:
    >>> import jax
    >>> from lrtools.search import log_uniform, sample_space
    >>> configs = sample_space({"learning_rate": log_uniform(1e-4, 1e-1)}, jax.random.key(0), 3)
    >>> configs["learning_rate"].shape
    (3,)

  References:
    Bergstra & Bengio 2012, "Random Search for Hyper-Parameter Optimization".
  """
  check_space("sample_space", space)
  check_integer("sample_space", "num_trials", num_trials, 1)
  check_key("sample_space", key)
  return _sample(tuple(space.items()), key, int(num_trials))


@functools.partial(jax.jit, static_argnums=(0, 2))
def _sample(items: tuple, key: jax.Array, num_trials: int) -> dict[str, jax.Array]:
  """One compiled call per (space, num_trials): a search samples without a dispatch per parameter."""
  return {name: _sample_one(param, jax.random.fold_in(key, j), num_trials) for j, (name, param) in enumerate(items)}


def check_key(call: str, key: Any) -> None:
  """A JAX PRNG key (typed ``jax.random.key`` or raw ``PRNGKey``), one key (not a batch)."""
  try:
    ok = (jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ()) or \
        (key.dtype == jnp.uint32 and key.shape == (2,))
  except AttributeError:
    ok = False
  if not ok:
    fail(call, "key", key, "must be one PRNG key (jax.random.key(seed))")


def check_objective(call: str, objective: Any) -> None:
  check_callable(call, "objective", objective)
