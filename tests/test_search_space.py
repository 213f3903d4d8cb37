"""Search spaces: the factories' checks, sampling ranges, dtypes and distributions (fixed keys)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrtools.search import choice, int_uniform, log_uniform, sample_space, uniform
from lrtools.search._space import LogUniform, check_space

N = 4000  # samples for the distribution tests: one compiled call per space


def ks_uniform(u: np.ndarray) -> float:
  """Kolmogorov-Smirnov statistic of ``u`` against U(0, 1) (the textbook two-sided D_n)."""
  u = np.sort(u)
  n = len(u)
  return float(max(np.max(np.arange(1, n + 1) / n - u), np.max(u - np.arange(n) / n)))


KS_CRITICAL = 1.95 / np.sqrt(N)  # alpha = 0.001, asymptotic


def test_log_uniform_is_uniform_in_log_space_and_in_range():
  low, high = 1e-6, 1.0
  x = np.asarray(sample_space({"lr": log_uniform(low, high)}, jax.random.key(0), N)["lr"], np.float64)
  assert np.all((x >= low) & (x <= high))
  u = (np.log(x) - np.log(low)) / (np.log(high) - np.log(low))
  assert ks_uniform(u) < KS_CRITICAL
  # the test has power: the same values are far from uniform on a linear scale
  assert ks_uniform((x - low) / (high - low)) > 10 * KS_CRITICAL
  # each decade gets about a sixth of the samples
  counts = np.histogram(np.log10(x), bins=6, range=(-6, 0))[0]
  np.testing.assert_allclose(counts / N, 1 / 6, atol=0.03)


def test_uniform_is_uniform_and_in_range():
  x = np.asarray(sample_space({"m": uniform(0.5, 0.99)}, jax.random.key(1), N)["m"], np.float64)
  assert np.all((x >= 0.5) & (x <= 0.99))
  assert ks_uniform((x - 0.5) / 0.49) < KS_CRITICAL
  assert ks_uniform((np.log(x) - np.log(0.5)) / (np.log(0.99) - np.log(0.5))) > 2 * KS_CRITICAL


def test_int_uniform_covers_both_ends_equally():
  x = np.asarray(sample_space({"n": int_uniform(-2, 3)}, jax.random.key(2), N)["n"])
  assert x.dtype == np.int32
  counts = np.bincount(x + 2, minlength=6)
  assert len(counts) == 6 and counts.min() > 0
  chi2 = float(np.sum((counts - N / 6) ** 2 / (N / 6)))
  assert chi2 < 20.5  # chi-square, 5 degrees of freedom, alpha = 0.001


def test_int_uniform_at_the_ends_of_int32():
  x = np.asarray(sample_space({"n": int_uniform(2**31 - 3, 2**31 - 1)}, jax.random.key(0), 200)["n"])
  assert set(x.tolist()) == {2**31 - 3, 2**31 - 2, 2**31 - 1}


def test_choice_holds_values_with_their_dtype():
  configs = sample_space({"width": choice([32, 64, 128]), "p": choice([0.1, 0.5])}, jax.random.key(3), 600)
  w, p = np.asarray(configs["width"]), np.asarray(configs["p"])
  assert w.dtype == np.int32 and p.dtype == jnp.result_type(float)
  assert set(w.tolist()) == {32, 64, 128}
  np.testing.assert_allclose(np.bincount(w // 32)[[1, 2, 4]] / 600, 1 / 3, atol=0.07)
  np.testing.assert_allclose(sorted(set(p.tolist())), [0.1, 0.5], rtol=1e-6)


def test_sampling_is_reproducible_and_parameters_independent():
  space = {"lr": log_uniform(1e-4, 1.0), "m": uniform(0.0, 1.0)}
  a = sample_space(space, jax.random.key(5), 16)
  b = sample_space(space, jax.random.key(5), 16)
  c = sample_space(space, jax.random.key(6), 16)
  more = sample_space({**space, "n": int_uniform(1, 9)}, jax.random.key(5), 16)
  assert all(v.shape == (16,) and v.dtype == jnp.result_type(float) for v in a.values())
  np.testing.assert_array_equal(a["lr"], b["lr"])
  assert not np.any(np.asarray(a["lr"]) == np.asarray(c["lr"]))
  np.testing.assert_array_equal(a["lr"], more["lr"])  # adding a parameter keeps the others' draws
  np.testing.assert_array_equal(a["m"], more["m"])


def test_raw_prng_key_accepted():
  out = sample_space({"lr": log_uniform(1e-3, 1.0)}, jax.random.PRNGKey(0), 3)
  assert out["lr"].shape == (3,)


@pytest.mark.parametrize("make, name", [
    (lambda: log_uniform(1.0, 1.0), "low=..., high"),
    (lambda: log_uniform(1.0, 0.1), "low=..., high"),
    (lambda: log_uniform(0.0, 1.0), "low"),
    (lambda: log_uniform(-1e-3, 1.0), "low"),
    (lambda: log_uniform(1e-3, float("inf")), "high"),
    (lambda: log_uniform(True, 2.0), "low"),
    (lambda: uniform(0.5, 0.5), "low=..., high"),
    (lambda: uniform(float("nan"), 1.0), "low"),
    (lambda: uniform("0", 1.0), "low"),
    (lambda: int_uniform(3, 2), "low=..., high"),
    (lambda: int_uniform(1.5, 3), "low"),
    (lambda: int_uniform(0, 2**31), "high"),
    (lambda: int_uniform(-(2**31 - 1), 2**31 - 1), "low=..., high"),
    (lambda: choice([]), "values"),
    (lambda: choice(()), "values"),
    (lambda: choice("abc"), "values"),
    (lambda: choice(3), "values"),
    (lambda: choice([1, float("nan")]), "values"),
    (lambda: choice([True, False]), "values"),
    (lambda: choice([2**40]), "values"),
])
def test_bad_parameters_raise_naming_the_argument(make, name):
  with pytest.raises(ValueError, match=rf"\(({name})=\.\.\.\)"):
    make()


@pytest.mark.parametrize("space, what", [
    ({}, "non-empty dict"),
    ([("lr", log_uniform(1e-3, 1.0))], "non-empty dict"),
    ({1: log_uniform(1e-3, 1.0)}, "str names"),
    ({"lr": (1e-3, 1.0)}, "log_uniform, uniform"),
    ({"lr": LogUniform(-1.0, 1.0)}, "invalid range"),
    ({"lr": LogUniform(1.0, 0.1)}, "invalid range"),
])
def test_bad_spaces_raise_naming_space(space, what):
  with pytest.raises(ValueError, match=rf"`sample_space\(space=\.\.\.\)`.*{what}"):
    sample_space(space, jax.random.key(0), 2)
  with pytest.raises(ValueError, match="space="):
    check_space("random_search", space)


@pytest.mark.parametrize("kwargs, name", [({"num_trials": 0}, "num_trials"), ({"num_trials": 2.5}, "num_trials"),
                                          ({"num_trials": True}, "num_trials"), ({"key": 0}, "key"),
                                          ({"key": jax.random.split(jax.random.key(0), 2)}, "key")])
def test_bad_sample_arguments(kwargs, name):
  args = {"space": {"lr": log_uniform(1e-3, 1.0)}, "key": jax.random.key(0), "num_trials": 4, **kwargs}
  with pytest.raises(ValueError, match=rf"`sample_space\({name}=\.\.\.\)`"):
    sample_space(**args)
