"""Test configuration: three legs of one suite.

- default (no variable): JAX's defaults, float32/int32, what every user gets. Comparisons with the float64
  references in ``tests/reference.py`` use the ``x64`` fixture, which enables x64 for that test only.
- ``LRTOOLS_TEST_LEG=float64``: the whole suite with ``jax_enable_x64`` on, as a user who enables it runs.
- ``LRTOOLS_TEST_LEG=strict``: ``jax_numpy_dtype_promotion="strict"``, ``jax_numpy_rank_promotion="raise"``
  and every warning an error, to catch implicit promotions and broadcasts in lrtools' code.

``.ci/run`` runs all three; the README's command runs the default leg. This file sits at the root so that the
doctests under ``lrtools/`` and the examples run in the same leg.
"""

import os

import chex
import jax
import pytest
from hypothesis import settings

LEG = os.environ.get("LRTOOLS_TEST_LEG", "default")
if LEG not in ("default", "float64", "strict"):
  raise ValueError(f"LRTOOLS_TEST_LEG must be default, float64 or strict, got {LEG!r}")
if LEG == "float64":
  jax.config.update("jax_enable_x64", True)
if LEG == "strict":
  jax.config.update("jax_numpy_dtype_promotion", "strict")
  jax.config.update("jax_numpy_rank_promotion", "raise")

# Few, fast examples by default: the suite must stay under ~10 minutes on 2 cores.
settings.register_profile("lrtools", max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "30")), deadline=None)
settings.load_profile("lrtools")


def pytest_configure(config):
  config.addinivalue_line("markers", "x64: compares with a float64 reference; runs with jax_enable_x64 on")
  if LEG == "strict":
    config.addinivalue_line("filterwarnings", "error")


@pytest.fixture(autouse=True)
def _fresh_trace_counts():
  """``chex.assert_max_traces`` counts per function code across tests: each test starts from zero."""
  chex.clear_trace_counter()
  yield


@pytest.fixture
def x64():
  """Enables x64 for one test (float64 comparisons with ``tests/reference.py``), restoring it after."""
  with jax.enable_x64(True):
    yield


@pytest.fixture(autouse=True)
def _x64_marker(request):
  """``@pytest.mark.x64`` (on a test or on one ``pytest.param``) enables x64 for that test only. Autouse
  fixtures run first, so every other fixture of the test already sees x64."""
  if request.node.get_closest_marker("x64"):
    with jax.enable_x64(True):
      yield
  else:
    yield
