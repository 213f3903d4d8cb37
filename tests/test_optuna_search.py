"""optuna_search: the ask/evaluate/tell bridge, shared studies (two processes on one SQLite file, a journal
file), non-finite scores, failures, bad inputs."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from lrtools.search import (_random, choice, int_uniform, log_uniform, optuna_result,  # noqa: E402
                            optuna_search, uniform)
from lrtools.search._optuna import RAW_SCORE, snapshot  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACE = {"lr": log_uniform(1e-4, 1.0), "m": uniform(0.5, 0.99), "n": int_uniform(1, 4), "c": choice([2.0, 3.0])}
S = optuna.trial.TrialState


def objective(config, key):
  """Uses every parameter and the trial's key, so a wrong value or a wrong key changes the score."""
  noise = jax.random.uniform(key, (), jnp.result_type(float))
  return ((jnp.log10(config["lr"]) + 2.0) ** 2 + config["m"] + config["n"].astype(noise.dtype) * 0.25
          + config["c"] + noise)


def quadratic(config, key):
  return (jnp.log10(config["lr"]) + 2.0) ** 2


def test_scores_equal_direct_evaluation_and_compile_once():
  key = jax.random.key(3)
  before = _random._evaluate_chunk._cache_size()
  res = optuna_search(objective, SPACE, 10, key=key, batch_size=4)  # batches of 4, 4, 2 (padded to 4)
  assert _random._evaluate_chunk._cache_size() - before == 1  # the padded last batch reused the program
  trials = res.study.get_trials(states=(S.COMPLETE,))
  assert [t.number for t in trials] == list(range(10)) and res.num_trials == 10
  one = jax.jit(objective)
  for i, t in enumerate(trials):
    config = {k: res.configs[k][i] for k in SPACE}
    direct = one(config, jax.random.fold_in(key, t.number))  # trial n's key is fold_in(key, n)
    chex.assert_trees_all_close(res.scores[i], direct, rtol=1e-6, atol=0)
    assert t.value == pytest.approx(float(res.scores[i]), rel=1e-6)
    for k in ("lr", "m"):  # Optuna's double, rounded to the dtype that was evaluated
      assert res.configs[k][i] == np.asarray(t.params[k], res.configs[k].dtype)
    assert res.configs["n"][i] == t.params["n"] and res.configs["c"][i] == t.params["c"]


def test_distributions_mapped():
  res = optuna_search(objective, SPACE, 6, key=jax.random.key(0), batch_size=3)
  d = optuna.distributions
  assert res.study.trials[0].distributions == {
      "lr": d.FloatDistribution(1e-4, 1.0, log=True), "m": d.FloatDistribution(0.5, 0.99),
      "n": d.IntDistribution(1, 4), "c": d.CategoricalDistribution([2.0, 3.0])}
  assert res.configs["n"].dtype == np.int32 and res.configs["lr"].dtype == jnp.result_type(float)
  assert np.all((res.configs["lr"] >= 1e-4) & (res.configs["lr"] <= 1.0))
  assert np.all((res.configs["n"] >= 1) & (res.configs["n"] <= 4))
  assert set(res.configs["c"].tolist()) <= {2.0, 3.0}
  assert res.space == SPACE and optuna_result(res.study).space == SPACE  # rebuilt from the distributions


def test_reproducible_from_key_and_tpe_finds_the_optimum():
  space = {"lr": log_uniform(1e-5, 1.0)}
  a = optuna_search(quadratic, space, 32, key=jax.random.key(1))
  b = optuna_search(quadratic, space, 32, key=jax.random.key(1))
  c = optuna_search(quadratic, space, 32, key=jax.random.key(2))
  np.testing.assert_array_equal(a.configs["lr"], b.configs["lr"])
  assert not np.array_equal(a.configs["lr"], c.configs["lr"])
  assert 10 ** -2.3 < a.best_config["lr"] < 10 ** -1.7 and a.warnings == []
  assert isinstance(a.study.sampler, optuna.samplers.TPESampler)


def test_grid_sampler_prepares_every_trial():  # a given sampler is the study's from its first ask
  grid = [1e-4, 1e-3, 1e-2, 1e-1]  # not exhausted: Optuna's grid sampler stops a study only inside optimize()
  res = optuna_search(quadratic, {"lr": log_uniform(1e-5, 1.0)}, 3, key=jax.random.key(0),
                      sampler=optuna.samplers.GridSampler({"lr": grid}, seed=0))
  values = res.configs["lr"].tolist()
  assert len(set(values)) == 3 and all(min(abs(v / g - 1) for g in grid) < 1e-6 for v in values)


def test_any_sampler_and_progress():
  calls = []
  res = optuna_search(quadratic, {"lr": log_uniform(1e-5, 1.0)}, 5, key=jax.random.key(0), batch_size=2,
                      sampler=optuna.samplers.RandomSampler(seed=0), progress=lambda d, t: calls.append((d, t)))
  assert calls == [(2, 5), (4, 5), (5, 5)] and isinstance(res.study.sampler, optuna.samplers.RandomSampler)
  res = optuna_search(quadratic, {"lr": log_uniform(1e-5, 1.0)}, 3, key=jax.random.key(0), sampler="random",
                      chunk_size=1)
  assert res.num_trials == 3 and isinstance(res.study.sampler, optuna.samplers.RandomSampler)


@pytest.mark.parametrize("minimize", [True, False])
def test_non_finite_scores_told_worst_and_reported_raw(minimize):
  def diverging(config, key):  # NaN above 0.1, +inf below 1e-3
    x = config["lr"]
    return jnp.where(x > 0.1, jnp.nan, jnp.where(x < 1e-3, jnp.inf, jnp.log10(x)))
  res = optuna_search(diverging, {"lr": log_uniform(1e-5, 10.0)}, 16, key=jax.random.key(0), batch_size=4,
                      minimize=minimize)  # TPE: 10 random startup trials, then 6 fitted to them
  worst = math.inf if minimize else -math.inf
  lr = res.configs["lr"]
  for t in res.study.trials:
    assert t.state == S.COMPLETE
    x = t.params["lr"]
    assert t.value == (worst if (x > 0.1 or x < 1e-3) else pytest.approx(math.log10(x), rel=1e-5, abs=1e-6))
  assert np.array_equal(np.isnan(res.scores), lr > 0.1) and np.array_equal(np.isposinf(res.scores), lr < 1e-3)
  assert {t.user_attrs.get(RAW_SCORE) for t in res.study.trials} == {None, "nan", "inf"}
  assert np.isfinite(res.best_score) and any("non-finite" in w for w in res.warnings)
  assert 1e-3 <= res.best_config["lr"] <= 0.1


def test_journal_file_shared_by_two_calls(tmp_path):
  path = str(tmp_path / "journal.log")
  space = {"lr": log_uniform(1e-5, 1.0)}
  first = optuna_search(quadratic, space, 3, key=jax.random.key(0), storage=path, study_name="s", batch_size=2)
  second = optuna_search(quadratic, space, 4, key=jax.random.key(0), storage=path, study_name="s", batch_size=2)
  assert first.num_trials == 3 and second.num_trials == 7  # the second worker sees the first one's trials
  # Same key, yet the second worker's seed comes from its first trial's number: different configurations.
  assert not np.isin(second.configs["lr"][3:], first.configs["lr"]).any()
  loaded = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(
      optuna.storages.journal.JournalFileBackend(path)))
  np.testing.assert_array_equal(optuna_result(loaded).scores, second.scores)


_WORKER = """
import os, sys, time, jax, jax.numpy as jnp
import lrtools, lrtools.cli
from lrtools.search import log_uniform, uniform, optuna_search
assert "optuna" not in sys.modules  # importing lrtools never imports optuna
open(sys.argv[1] + f".ready{sys.argv[2]}", "w").close()  # a barrier: both ask at the same time
deadline = time.time() + 120
while len([f for f in os.listdir(os.path.dirname(sys.argv[1])) if ".ready" in f]) < 2 and time.time() < deadline:
  time.sleep(0.02)
objective = lambda c, k: (jnp.log10(c["lr"]) + 2.0) ** 2 + c["m"]
res = optuna_search(objective, {"lr": log_uniform(1e-5, 1.0), "m": uniform(0.0, 1.0)}, int(sys.argv[2]),
                    key=jax.random.key(0), storage=sys.argv[3], study_name="shared", batch_size=3)
print(res.num_trials)
"""


def test_two_processes_share_one_sqlite_study(tmp_path):
  """Two worker processes (importing lrtools without optuna first) start together on a fresh database (racing
  to create Optuna's tables), then ask and tell concurrently."""
  url = f"sqlite:///{tmp_path / 'study.db'}"
  script = tmp_path / "worker.py"
  script.write_text(textwrap.dedent(_WORKER))
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
  env.pop("LRTOOLS_TEST_LEG", None)
  barrier = str(tmp_path / "barrier")
  workers = [subprocess.Popen([sys.executable, str(script), barrier, str(n), url], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in (7, 5)]
  outs = [w.communicate(timeout=240) for w in workers]
  assert [w.returncode for w in workers] == [0, 0], [err[-2000:] for _, err in outs]
  study = optuna.load_study(study_name="shared", storage=url)
  trials = study.get_trials()
  assert len(trials) == 7 + 5  # none lost
  assert sorted(t.number for t in trials) == list(range(12))  # unique numbers
  assert all(t.state == S.COMPLETE and math.isfinite(t.value) for t in trials)  # each told exactly once
  assert len({(t.params["lr"], t.params["m"]) for t in trials}) == 12  # the workers sampled differently
  assert max(int(out.split()[-1]) for out, _ in outs) == 12  # the last worker to finish saw every trial
  assert optuna_result(study).num_trials == 12


def test_failed_objective_leaves_no_trial_running(tmp_path):
  path = str(tmp_path / "journal.log")
  with pytest.raises(ValueError, match="objective"):
    optuna_search(lambda c, k: jnp.ones(3) * c["lr"], {"lr": log_uniform(1e-5, 1.0)}, 4, key=jax.random.key(0),
                  storage=path, study_name="s", batch_size=2)
  study = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(
      optuna.storages.journal.JournalFileBackend(path)))
  assert [t.state for t in study.trials] == [S.FAIL, S.FAIL]
  with pytest.raises(ValueError, match="no completed trial"):
    optuna_result(study)
  res = optuna_search(quadratic, {"lr": log_uniform(1e-5, 1.0)}, 2, key=jax.random.key(0), storage=path,
                      study_name="s")
  assert res.num_trials == 2 and "2 trials of study 's' failed" in res.warnings
  assert snapshot(res.study)[1] == [2, 3]  # the Optuna numbers of the result's trials


def test_bad_inputs(tmp_path):
  space, key = {"lr": log_uniform(1e-5, 1.0)}, jax.random.key(0)
  cases = [
      ({"num_trials": 0}, "num_trials"), ({"num_trials": 2.5}, "num_trials"), ({"num_trials": True}, "num_trials"),
      ({"batch_size": 0}, "batch_size"), ({"storage": 123}, "storage"), ({"storage": ""}, "storage"),
      ({"storage": "grpc://nohost"}, "storage"), ({"sampler": "cmaes"}, "sampler"),
      ({"sampler": object()}, "sampler"), ({"minimize": "yes"}, "minimize"), ({"study_name": ""}, "study_name"),
      ({"chunk_size": 0}, "chunk_size"), ({"key": 0}, "key"), ({"progress": 3}, "progress"),
  ]
  for kwargs, name in cases:
    kwargs = {"num_trials": 2, "key": key, **kwargs}
    with pytest.raises(ValueError, match=rf"`optuna_search\({name}=\.\.\.\)`"):
      optuna_search(quadratic, space, **kwargs)
  with pytest.raises(ValueError, match="space"):
    optuna_search(quadratic, {}, 2, key=key)
  with pytest.raises(ValueError, match="objective"):
    optuna_search(3, space, 2, key=key)
  path = str(tmp_path / "j.log")
  optuna_search(quadratic, space, 1, key=key, storage=path, study_name="s")
  with pytest.raises(ValueError, match=r"`optuna_search\(minimize=\.\.\.\)` must match the direction"):
    optuna_search(quadratic, space, 1, key=key, storage=path, study_name="s", minimize=False)
  with pytest.raises(ValueError, match=r"`optuna_search\(space=\.\.\.\)` must match the study's distribution"):
    optuna_search(quadratic, {"lr": uniform(1e-5, 1.0)}, 1, key=key, storage=path, study_name="s")
  with pytest.raises(ValueError, match="study"):
    optuna_result("not a study")


def test_grpc_proxy_without_grpcio_names_the_storage():
  try:
    import grpc  # noqa: F401
    pytest.skip("grpcio is installed")
  except ImportError:
    pass
  with pytest.raises(ValueError, match=r"`optuna_search\(storage=\.\.\.\)` needs grpcio"):
    optuna_search(quadratic, {"lr": log_uniform(1e-5, 1.0)}, 1, key=jax.random.key(0),
                  storage="grpc://localhost:13000")


def test_missing_optuna_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` now raises ImportError
  with pytest.raises(ValueError, match=r'pip install "lrtools\[search\]"'):
    optuna_search(quadratic, {"lr": log_uniform(1e-5, 1.0)}, 2, key=jax.random.key(0))

