"""The key the range test's compiled program is cached on: what determines the program, not object identity.

``jax.jit`` caches a program per static argument by ``hash``/``==``; a function compares by identity, so a
``lambda`` or closure re-created at each call (``lr_range_test(loss, params, lambda lr: optax.sgd(lr), ...)``,
or a notebook cell run again) would compile again although the program is the same. :func:`program_key`
wraps a callable in a :class:`ProgramKey` that compares what the traced program depends on:

- a Python function: what its code computes (bytecode, constants, names, argument layout; not the file,
  name, line or column it was written at: the same lambda written twice, or a re-run cell, matches), the contents of its closure cells, its defaults and keyword defaults, its globals dictionary (by
  identity) and the current values of the global names its code (and nested code) refers to;
- a bound method: the function and ``__self__``; a builtin method: its name and ``__self__``;
- a ``functools.partial``: the function, the positional and keyword arguments;
- every value met on the way (a cell, a default, a global, an argument): ``None``, bools, numbers, strings,
  bytes, ``numpy`` dtypes, types and tuples / frozensets of those by equality (a float by its
  exact bits, so ``0.0`` and ``-0.0`` differ), callables by this same rule (recursively), **anything else by
  identity**: arrays (never by value: cheap, and a captured array is a constant of the program), lists,
  dicts, modules, models, any object. A container mutated in place is therefore the same key: as with
  ``jax.jit`` itself, values read at trace time are baked into the program.

Any other callable (a callable object, a jitted function, a builtin) is keyed by identity. The key holds
the objects it compares, so an identity is never reused by a new object while the key is alive.
"""

from __future__ import annotations

import functools
import types
from typing import Any, Callable

import numpy as np

_MAX_DEPTH = 8  # deeper structures are keyed by identity (still correct, possibly a recompilation)
_SCALARS = (type(None), bool, int, str, bytes, np.dtype, type)


class _Same:
  """An object compared by identity (holding it keeps its ``id`` from being reused)."""
  __slots__ = ("obj",)

  def __init__(self, obj):
    self.obj = obj

  def __eq__(self, other):
    return isinstance(other, _Same) and other.obj is self.obj

  def __hash__(self):
    return id(self.obj)


_ABSENT = ("absent",)  # an empty cell, a global name not (yet) defined: a builtin or an attribute name


def _names(code: types.CodeType) -> tuple[str, ...]:
  """The global (and attribute) names ``code`` and its nested code objects refer to."""
  names = list(code.co_names)
  for const in code.co_consts:
    if isinstance(const, types.CodeType):
      names.extend(_names(const))
  return tuple(dict.fromkeys(names))


@functools.lru_cache(maxsize=4096)
def _code(code: types.CodeType) -> tuple:
  """What a code object computes, without where it was written: bytecode, constants (nested code
  likewise), names and argument layout; not its file, name, line or column numbers (two identical
  lambdas on different lines of a cell are the same program)."""
  consts = tuple(_value(c, 0, ()) for c in code.co_consts)  # 0.0 and -0.0 differ
  return (code.co_code, consts, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
          code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags,
          getattr(code, "co_exceptiontable", b""))


def _value(x: Any, depth: int, stack: tuple) -> Any:
  """The comparable form of a value a program may depend on (see the module docstring)."""
  if isinstance(x, float):  # the type too: np.float64(0.9) is strongly typed in JAX, 0.9 weakly
    return (type(x), float(x).hex())
  if isinstance(x, complex):
    return (type(x), x.real.hex(), x.imag.hex())
  if isinstance(x, types.CodeType):
    return (types.CodeType, _code(x))
  if isinstance(x, _SCALARS):
    return (type(x), x)
  if depth < _MAX_DEPTH and type(x) in (tuple, frozenset):
    return (type(x), type(x)(_value(v, depth + 1, stack) for v in x))
  if callable(x) and not isinstance(x, type):
    return _callable(x, depth + 1, stack)
  return _Same(x)


def _callable(fn: Callable, depth: int, stack: tuple) -> Any:
  for level, outer in enumerate(stack):  # a recursive function refers to itself: mark where, not what
    if outer is fn:
      return ("cycle", level)
  if depth >= _MAX_DEPTH:
    return _Same(fn)
  stack = stack + (fn,)
  if isinstance(fn, functools.partial):
    return ("partial", _callable(fn.func, depth + 1, stack), _value(fn.args, depth, stack),
            tuple(sorted((k, _value(v, depth + 1, stack)) for k, v in fn.keywords.items())))
  if isinstance(fn, types.MethodType):
    return ("method", _callable(fn.__func__, depth + 1, stack), _value(fn.__self__, depth + 1, stack))
  if isinstance(fn, types.BuiltinMethodType) and not isinstance(fn.__self__, (types.ModuleType, type(None))):
    return ("builtin method", type(fn.__self__), fn.__name__, _Same(fn.__self__))
  if isinstance(fn, types.FunctionType):
    cells = []
    for cell in fn.__closure__ or ():
      try:
        cells.append(_value(cell.cell_contents, depth + 1, stack))
      except ValueError:  # an empty cell
        cells.append(_ABSENT)
    glob = fn.__globals__
    found = tuple((name, _value(glob[name], depth + 1, stack) if name in glob else _ABSENT)
                  for name in _names(fn.__code__))
    return ("function", _code(fn.__code__), tuple(cells), _value(fn.__defaults__, depth, stack),
            _value(tuple(sorted((fn.__kwdefaults__ or {}).items())), depth, stack), _Same(glob), found)
  return _Same(fn)


class ProgramKey:
  """A callable's stand-in as a static argument of ``jax.jit``: equal keys trace to the same program.

  Calling the key calls the callable it was made from (the first of equal keys is the one traced).

  Example:
    >>> import functools, optax
    >>> from lrtools.finder._cache import program_key
    >>> program_key(lambda lr: optax.sgd(lr, momentum=0.9)) == program_key(lambda lr: optax.sgd(lr, momentum=0.9))
    True
    >>> program_key(functools.partial(optax.sgd, momentum=0.9)) == program_key(functools.partial(optax.sgd, momentum=0.5))
    False
  """
  __slots__ = ("fn", "key", "_hash")

  def __init__(self, fn: Callable):
    self.fn = fn
    self.key = _callable(fn, 0, ())
    self._hash = hash(self.key)

  def __call__(self, *args, **kwargs):
    return self.fn(*args, **kwargs)

  def __eq__(self, other):
    return isinstance(other, ProgramKey) and self._hash == other._hash and self.key == other.key

  def __hash__(self):
    return self._hash

  def __repr__(self):
    return f"ProgramKey({self.fn!r})"


def program_key(fn: Callable | None) -> ProgramKey | None:
  """``ProgramKey(fn)``, ``None`` for ``None``."""
  return None if fn is None else ProgramKey(fn)
