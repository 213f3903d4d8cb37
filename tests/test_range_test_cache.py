"""The range test compiles once per *program*: re-created lambdas, closures, partials, bound methods and a
re-run notebook cell reuse it; a different captured value, default, global or array gives a new program."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrtools as lrt
from lrtools.finder import _range_test
from lrtools.finder._cache import program_key

XS = jnp.linspace(-1.0, 1.0, 64).reshape(8, 8)  # 8 batches of y = 3x
TRACES = []  # one entry per trace of a loss built from `counted`


def counted(w, x, scale=3.0):
  TRACES.append(1)  # runs only while tracing: counts the programs built
  return jnp.mean((w * x - scale * x) ** 2)


def sweep(loss, optimizer, *, batches=XS, **kwargs):
  kwargs = {"start_lr": 1e-3, "end_lr": 10.0, "num_steps": 30, **kwargs}
  return lrt.lr_range_test(loss, jnp.zeros(()), optimizer, batches, **kwargs)


@pytest.fixture(autouse=True)
def _count():
  TRACES.clear()
  yield


def test_inline_lambdas_compile_once():
  # The docstring's own call style, re-run with other rates as a notebook user does.
  first = sweep(lambda w, x: counted(w, x), lambda lr: optax.sgd(lr, momentum=0.9))
  for end_lr in (5.0, 2.0):
    sweep(lambda w, x: counted(w, x), lambda lr: optax.sgd(lr, momentum=0.9), end_lr=end_lr)
  assert len(TRACES) == 1
  hoisted = sweep(counted, functools.partial(optax.sgd, momentum=0.9))  # another program, same numbers
  assert len(TRACES) == 2
  np.testing.assert_allclose(first.losses, hoisted.losses, rtol=1e-6)


def make_closure(momentum, scale):
  return (lambda w, x: counted(w, x, scale)), (lambda lr: optax.sgd(lr, momentum=momentum))


def test_recreated_closures_share_a_program_only_with_equal_captured_values():
  a = sweep(*make_closure(0.9, 3.0))
  sweep(*make_closure(0.9, 3.0))
  assert len(TRACES) == 1
  b = sweep(*make_closure(0.5, 3.0))  # another momentum: another program
  c = sweep(*make_closure(0.9, 2.0))  # another target: another program
  assert len(TRACES) == 3
  assert not np.allclose(a.losses, b.losses, equal_nan=True)
  assert not np.allclose(a.losses, c.losses, equal_nan=True)
  np.testing.assert_allclose(b.losses, sweep(counted, lambda lr: optax.sgd(lr, momentum=0.5)).losses, rtol=1e-6)


def test_zero_and_negative_zero_are_different_values():
  assert program_key(lambda: 0.0) != program_key(lambda: -0.0)
  assert program_key(make_closure(0.9, 0.0)[0]) != program_key(make_closure(0.9, -0.0)[0])
  assert program_key(make_closure(1, 3.0)[1]) != program_key(make_closure(1.0, 3.0)[1])  # int vs float
  # a NumPy scalar is strongly typed in JAX, a Python float weakly: other promotions, another program
  assert program_key(make_closure(np.float64(0.9), 3.0)[1]) != program_key(make_closure(0.9, 3.0)[1])
  assert program_key(make_closure(float("nan"), 3.0)[1]) == program_key(make_closure(float("nan"), 3.0)[1])


def test_partials_compare_function_and_arguments():
  sweep(functools.partial(counted, scale=3.0), functools.partial(optax.sgd, momentum=0.9))
  sweep(functools.partial(counted, scale=3.0), functools.partial(optax.sgd, momentum=0.9))
  assert len(TRACES) == 1
  other = sweep(functools.partial(counted, scale=2.0), functools.partial(optax.sgd, momentum=0.9))
  assert len(TRACES) == 2
  np.testing.assert_allclose(other.losses, sweep(lambda w, x: counted(w, x, 2.0), functools.partial(
      optax.sgd, momentum=0.9)).losses, rtol=1e-6)


def test_defaults_are_part_of_the_program():
  def make(scale):
    def loss(w, x, scale=scale):
      return counted(w, x, scale)
    return loss
  sweep(make(3.0), optax.sgd)
  sweep(make(3.0), optax.sgd)
  sweep(make(1.0), optax.sgd)
  assert len(TRACES) == 2


class Model:
  def __init__(self, scale):
    self.scale = scale

  def loss(self, w, x):
    return counted(w, x, self.scale)


def test_bound_methods_compare_function_and_self_by_identity():
  model = Model(3.0)
  sweep(model.loss, optax.sgd)  # model.loss is a new bound-method object at each access
  sweep(model.loss, optax.sgd)
  assert len(TRACES) == 1
  other = sweep(Model(2.0).loss, optax.sgd)  # another object: identity, never its attributes' values
  assert len(TRACES) == 2
  np.testing.assert_allclose(other.losses, sweep(lambda w, x: counted(w, x, 2.0), optax.sgd).losses, rtol=1e-6)


def test_captured_arrays_compare_by_identity():
  target = jnp.asarray(3.0)

  def make(t):
    return lambda w, x: counted(w, x, t)
  sweep(make(target), optax.sgd)
  sweep(make(target), optax.sgd)
  assert len(TRACES) == 1
  other = sweep(make(jnp.asarray(2.0)), optax.sgd)  # equal or not, another array is another program
  assert len(TRACES) == 2
  np.testing.assert_allclose(other.losses, sweep(lambda w, x: counted(w, x, 2.0), optax.sgd).losses, rtol=1e-6)


CELL = """
import jax.numpy as jnp, optax
import lrtools as lrt
loss = lambda w, x: counted(w, x, SCALE)
result = lrt.lr_range_test(loss, jnp.zeros(()), lambda lr: optax.sgd(lr, momentum=0.9), XS, start_lr=1e-3,
                           end_lr=10.0, num_steps=30)
"""


def test_a_rerun_notebook_cell_reuses_the_program_until_a_global_changes():
  namespace = {"counted": counted, "XS": XS, "SCALE": 3.0}
  for _ in range(3):  # each run compiles the cell's source again: new code objects, equal ones
    exec(compile(CELL, "<cell>", "exec"), namespace)
  assert len(TRACES) == 1
  first = namespace["result"]
  namespace["SCALE"] = 2.0  # a global the lambda reads: the key holds its current value
  exec(compile(CELL, "<cell>", "exec"), namespace)
  assert len(TRACES) == 2
  assert not np.allclose(first.losses, namespace["result"].losses, equal_nan=True)


def test_recreated_batch_and_init_functions_share_a_program():
  def run():
    return sweep(lambda w, x: counted(w, x), lambda lr: optax.sgd(lr), batches=lambda key, i: XS[i % 8],
                 num_repeats=2, init_fn=lambda key: jnp.zeros(()) + 0.1 * jax.random.normal(key))
  first, second = run(), run()
  assert len(TRACES) == 1
  np.testing.assert_array_equal(first.losses, second.losses)


def test_progress_is_reported_between_chunks_and_does_not_recompile():
  seen = []
  for _ in range(2):  # a new callback object each time
    sweep(lambda w, x: counted(w, x), optax.sgd, end_lr=1e-2, chunk_size=7,
          progress=lambda done, total: seen.append((done, total)))
  assert len(TRACES) == 1
  assert seen == [(7, 30), (14, 30), (21, 30), (28, 30), (30, 30)] * 2
  np.testing.assert_array_equal(sweep(counted, optax.sgd, end_lr=1e-2).losses,
                                sweep(counted, optax.sgd, end_lr=1e-2, chunk_size=7, progress=print).losses)


def test_progress_stops_with_the_sweep():
  seen = []
  result = sweep(counted, optax.sgd, end_lr=1e3, chunk_size=5, progress=lambda d, n: seen.append(d))
  assert result.diverged and seen[-1] == result.num_steps_run < 30
  assert seen == sorted(seen) and len(seen) == -(-result.num_steps_run // 5)


def test_one_compiled_sweep_per_equivalent_call():
  before = _range_test._device_sweep._cache_size()
  for _ in range(3):
    sweep(lambda w, x: jnp.mean((w * x - 3 * x) ** 2), lambda lr: optax.sgd(lr, momentum=0.9), num_steps=31)
  assert _range_test._device_sweep._cache_size() == before + 1


def test_recursive_and_mutually_referencing_functions_have_a_key():
  def make():
    def f(n):
      return 0 if n == 0 else f(n - 1)
    return f
  assert program_key(make()) == program_key(make())
  assert hash(program_key(print)) == hash(program_key(print))
  obj = object()
  assert program_key(functools.partial(counted, obj)) != program_key(functools.partial(counted, object()))


def test_cli_keeps_a_persistent_cache_by_default_with_the_progress_bar(tmp_path):
  import os
  import subprocess
  import sys
  env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "home-cache")}
  env.pop("XLA_FLAGS", None)
  cmd = [sys.executable, "-m", "lrtools.cli", "find-lr", "--steps", "20"]
  shown = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
  assert shown.stderr.count("compiled; sweeping") == 1  # the progress bar ran (once)
  kept = sorted(p.name for p in (tmp_path / "home-cache" / "lrtools" / "jax").iterdir())
  assert any(name.startswith("jit__run") for name in kept), kept  # the program fed to the bar is cached
  subprocess.run(cmd + ["--quiet", "--no-cache"], env={**env, "XDG_CACHE_HOME": str(tmp_path / "none")},
                 capture_output=True, check=True)
  assert not (tmp_path / "none").exists()
