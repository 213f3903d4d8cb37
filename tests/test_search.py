"""Search on one machine: vectorized scores against one-by-one evaluation, chunking, non-finite scores, boundary
warnings, coarse-to-fine narrowing, successive halving's survivors, refine_lr on a real range test, bad inputs
and no recompilation."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrtools as lrt
from lrtools.search import (choice, coarse_to_fine, evaluate_configs, int_uniform, log_uniform, random_search,
                            refine_lr, sample_space, successive_halving, uniform)
from lrtools.search._coarse_to_fine import narrow_param
from lrtools.search._result import SearchResult, _position

RNG = np.random.default_rng(0)
D, B, SIZE = 4, 8, 3
XS, XV = RNG.normal(size=(SIZE, B, D)), RNG.normal(size=(16, D))
W_TRUE = RNG.normal(size=D)
SPACE = {"learning_rate": log_uniform(1e-3, 1.0), "momentum": uniform(0.0, 0.9)}


def dtype():
  return jnp.result_type(float)


def mse(params, batch):
  return jnp.mean((batch["x"] @ params["w"] - batch["y"]) ** 2)


def train(config, key, num_steps=12):
  """A real, tiny training run: linear regression, momentum SGD from a random start, the validation loss."""
  batches = {"x": jnp.asarray(XS, dtype()), "y": jnp.asarray(XS @ W_TRUE, dtype())}
  valid = {"x": jnp.asarray(XV, dtype()), "y": jnp.asarray(XV @ W_TRUE, dtype())}
  params = {"w": jax.random.normal(key, (D,), dtype())}
  opt = lrt.momentum(config["learning_rate"], config["momentum"])
  res = lrt.train_loop(mse, opt, params, opt.init(params), batches, num_steps=num_steps)
  return mse(res.params, valid)


def bowl(config, key):
  """Best at learning_rate = 10**-1.5 (the log-middle of SPACE), momentum 0.45; a little key noise."""
  noise = jax.random.uniform(key, (), dtype()) * 1e-3
  return (jnp.log10(config["learning_rate"]) + 1.5) ** 2 + (config["momentum"] - 0.45) ** 2 + noise


def configs_of(n, seed=0):
  return sample_space(SPACE, jax.random.key(seed), n)


# --- vectorized == one by one; chunking and vmap width change nothing ---

@pytest.mark.parametrize("vmap_size", [None, 7])  # the CPU default (lax.map) and every trial vmapped
def test_vectorized_scores_equal_one_by_one(vmap_size):
  configs, key = configs_of(7), jax.random.key(1)
  scores = evaluate_configs(train, configs, key, vmap_size=vmap_size)
  one = jax.jit(train)
  direct = np.asarray([one({k: v[i] for k, v in configs.items()}, jax.random.fold_in(key, i)) for i in range(7)])
  assert scores.shape == (7,) and scores.dtype == dtype()
  chex.assert_tree_all_finite(scores)
  assert len(set(np.round(direct, 4).tolist())) == 7  # the trials really differ
  tol = 1e-6 if dtype() == jnp.float64 else 2e-5
  np.testing.assert_allclose(scores, direct, rtol=tol, atol=tol)


def test_chunking_and_vmap_width_change_nothing():
  configs, key = configs_of(7), jax.random.key(2)
  tol = 1e-6 if dtype() == jnp.float64 else 2e-5
  whole = evaluate_configs(train, configs, key)
  np.testing.assert_allclose(evaluate_configs(train, configs, key, chunk_size=3, vmap_size=2), whole, rtol=tol,
                             atol=tol)  # 3 chunks, the last padded; groups of 2 vmapped (the last padded too)
  whole = evaluate_configs(bowl, configs, key)  # every chunking, on a cheap objective (bit for bit)
  for chunk, width in [(1, None), (3, None), (4, 4), (100, 3)]:
    np.testing.assert_allclose(evaluate_configs(bowl, configs, key, chunk_size=chunk, vmap_size=width), whole,
                               rtol=1e-6, err_msg=f"chunk_size={chunk}, vmap_size={width}")


def test_progress_called_per_chunk():
  calls = []
  evaluate_configs(bowl, configs_of(7), jax.random.key(0), chunk_size=3, progress=lambda d, t: calls.append((d, t)))
  assert calls == [(3, 7), (6, 7), (7, 7)]
  calls.clear()
  random_search(bowl, SPACE, 5, key=jax.random.key(0), progress=lambda d, t: calls.append((d, t)))
  assert calls == [(5, 5)]


def test_random_search_is_the_sampled_configs_scored():
  key = jax.random.key(4)
  res = random_search(bowl, SPACE, 16, key=key)
  configs = sample_space(SPACE, jax.random.fold_in(key, 0), 16)
  for k in SPACE:
    np.testing.assert_array_equal(res.configs[k], configs[k])
  np.testing.assert_allclose(res.scores, evaluate_configs(bowl, configs, jax.random.fold_in(key, 1)), rtol=1e-6)
  assert res.best_index == int(np.argmin(res.scores)) and res.best_score == pytest.approx(float(res.scores.min()))
  assert res.best_config == {k: res.configs[k][res.best_index].item() for k in SPACE}
  up = random_search(lambda c, k: -bowl(c, k), SPACE, 16, key=key, minimize=False)
  assert up.best_index == res.best_index
  table = res.table(top=3).splitlines()
  assert table[0].split() == ["rank", "trial", "score", "learning_rate", "momentum"]
  assert table[1].split()[1] == str(res.best_index) and table[-1] == "... 13 more"


def test_non_finite_scores_are_worst_and_reported():
  def diverging(config, key):  # NaN above lr 0.1, +inf below 0.003
    lr = config["learning_rate"]
    base = bowl(config, key)
    return jnp.where(lr > 0.1, jnp.nan, jnp.where(lr < 0.003, jnp.inf, base))
  for minimize in (True, False):
    res = random_search(diverging, SPACE, 32, key=jax.random.key(0), minimize=minimize)
    bad = ~np.isfinite(res.scores)
    assert 0 < bad.sum() < 32
    assert np.isfinite(res.best_score)
    rows = res.table().splitlines()[1:]
    assert all("non-finite" in r for r in rows[-bad.sum():]) and not any("non-finite" in r for r in rows[:-bad.sum()])
    assert any(f"{bad.sum()} of 32 trials gave a non-finite score" in w for w in res.warnings)
  nan = random_search(lambda c, k: jnp.full((), jnp.nan, dtype()), SPACE, 4, key=jax.random.key(0))
  assert nan.warnings == ["4 of 4 trials gave a non-finite score (NaN or inf), ranked worst"]  # no boundary guess


# --- boundary warnings ---

def test_boundary_warning_fires_at_the_edges():
  rising = random_search(lambda c, k: -jnp.log(c["learning_rate"]) + 0 * c["momentum"], SPACE, 64,
                         key=jax.random.key(0))  # best: the largest rate
  (msg,) = [w for w in rising.warnings if "learning_rate" in w]
  assert "top 10%" in msg and "upper end" in msg and "log_uniform(0.001, 10)" in msg
  low_m = random_search(lambda c, k: c["momentum"] + (jnp.log10(c["learning_rate"]) + 1.5) ** 2, SPACE, 64,
                        key=jax.random.key(0))
  (msg,) = low_m.warnings
  assert "momentum" in msg and "lower end" in msg and "uniform(-0.45, 0.9)" in msg


def test_boundary_warning_quiet_inside_and_for_choices():
  res = random_search(bowl, SPACE, 64, key=jax.random.key(0))
  assert res.warnings == []
  cat = {"width": choice([1, 2, 3]), "lr": log_uniform(1e-3, 1.0)}
  res = random_search(lambda c, k: c["width"].astype(dtype()) + (jnp.log10(c["lr"]) + 1.5) ** 2, cat, 32,
                      key=jax.random.key(0))
  assert res.best_config["width"] == 1 and res.warnings == []


def test_boundary_warning_quiet_when_the_edge_side_was_seen_to_be_worse():
  # A range test's picture: the loss falls with the rate, then blows up past the best, 4.0, which sits in the
  # top 10% of [1e-3, 10]. Trials beyond it that diverged, or 3 beyond it all worse than the median, say a
  # wider range would not help; one good trial beyond it keeps the warning.
  space = {"learning_rate": log_uniform(1e-3, 10.0)}
  lrs = np.array([1e-3, 1e-2, 0.1, 0.5, 1.0, 4.0, 6.0, 8.0, 9.0])
  below = [6.9, 4.6, 2.3, 0.7, 0.0, -1.4]

  def warned(beyond):
    res = SearchResult.build(space, {"learning_rate": lrs}, np.array(below + beyond), minimize=True)
    assert res.best_config == {"learning_rate": 4.0}
    return [w for w in res.warnings if "best learning_rate=4" in w]

  assert float(_position(space["learning_rate"], 4.0)) > 0.9
  assert warned([np.nan, np.nan, np.nan]) == []
  assert warned([10.0, 10.0, 10.0]) == []
  assert warned([-1.0, 10.0, 10.0])

def test_int_uniform_boundary_warning():
  res = random_search(lambda c, k: c["n"].astype(dtype()), {"n": int_uniform(1, 20)}, 40, key=jax.random.key(0))
  assert res.best_config == {"n": 1}
  (msg,) = res.warnings
  assert "best n=1" in msg and "int_uniform(-9, 20)" in msg


# --- coarse-to-fine ---

def test_narrow_param_rule_by_hand():
  # log space: u in [log 1e-3, log 1e-2], margin = (u_b - u_a) / 4 + (log 1 - log 1e-6) / 20
  got = narrow_param(log_uniform(1e-6, 1.0), np.array([1e-3, 3e-3, 1e-2]))
  a, b = np.log(1e-3), np.log(1e-2)
  m = 0.25 * (b - a) + 0.05 * (0.0 - np.log(1e-6))
  np.testing.assert_allclose([got.low, got.high], [np.exp(a - m), np.exp(b + m)], rtol=1e-12)
  lin = narrow_param(uniform(0.0, 1.0), np.array([0.9, 0.98]))  # clipped to the current range
  np.testing.assert_allclose([lin.low, lin.high], [0.9 - 0.02 - 0.05, 1.0])
  assert narrow_param(int_uniform(1, 100), np.array([50, 50])) == int_uniform(45, 55)
  assert narrow_param(choice([1, 2, 3]), np.array([3, 1])) == choice([1, 3])


def test_coarse_to_fine_narrows_around_the_best_and_passes_budgets():
  budgets = []

  def objective(config, key, steps):
    budgets.append(steps)  # traced once per budget: the budget is static
    assert isinstance(steps, int)
    return (jnp.log10(config["learning_rate"]) + 2.0) ** 2 + (config["momentum"] - 0.3) ** 2 + 1.0 / steps
  space = {"learning_rate": log_uniform(1e-6, 1.0), "momentum": uniform(0.0, 0.9)}
  stages = [{"num_trials": 32, "top_k": 4, "budget": 10},
            {"num_trials": 32, "top_k": 4, "budget": 20, "narrow": ("learning_rate",)},  # narrows stage 3's
            {"num_trials": 16, "budget": 40}]
  res = coarse_to_fine(objective, space, stages, key=jax.random.key(0))
  assert sorted(budgets) == [10, 20, 40]
  first, second = res.stages
  assert first.space == space and len(first.scores) == 32 and len(res.scores) == 16
  for prev, nxt in [(first, second), (second, res)]:
    top = np.argsort(prev.scores)[:4]
    for name in ("learning_rate",) if nxt is res else ("learning_rate", "momentum"):
      p, q = prev.space[name], nxt.space[name]
      assert p.low <= q.low and q.high <= p.high and (q.high - q.low) < (p.high - p.low)
      vals = prev.configs[name][top]
      assert q.low <= vals.min() and vals.max() <= q.high  # covers the top trials
  assert res.space["momentum"] == second.space["momentum"]  # not in stage 2's narrow: kept
  lr_span = np.log10(res.space["learning_rate"].high / res.space["learning_rate"].low)
  assert lr_span < 3.0  # from six decades
  assert abs(np.log10(res.best_config["learning_rate"]) + 2.0) < 0.2
  np.testing.assert_allclose(res.best_score, np.min(res.scores))
  assert res.warnings == []


@pytest.mark.parametrize("stages, what", [
    ([], "non-empty sequence"),
    ({"num_trials": 4}, "non-empty sequence"),
    ([{"top_k": 1}], "num_trials"),
    ([{"num_trials": 0}], "positive integer"),
    ([{"num_trials": 4, "top_k": 5}], r"\[1, 4\]"),
    ([{"num_trials": 4, "narrow": ("lr",)}], "unknown parameter 'lr'"),
    ([{"num_trials": 4, "narrow": "learning_rate"}], "tuple of names"),
    ([{"num_trials": 4, "steps": 3}], "unknown keys"),
    ([{"num_trials": 4, "budget": 1}, {"num_trials": 4}], "every stage or in none"),
    ([{"num_trials": 4, "budget": [1]}], "hashable"),
])
def test_coarse_to_fine_bad_stages(stages, what):
  with pytest.raises(ValueError, match=rf"`coarse_to_fine\(stages=\.\.\.\)`.*{what}"):
    coarse_to_fine(bowl, SPACE, stages, key=jax.random.key(0))


# --- successive halving ---

def test_successive_halving_keeps_the_right_trials():
  traces = []

  def init(config, key):
    return {"walked": jnp.zeros((), dtype()), "steps": jnp.zeros((), jnp.int32)}

  def step(state, config, num_steps):
    traces.append(num_steps)
    return {"walked": state["walked"] + num_steps * config["learning_rate"], "steps": state["steps"] + num_steps}

  def score(state):
    return (state["walked"] - 10.0) ** 2

  space = {"learning_rate": log_uniform(1e-2, 10.0)}
  key = jax.random.key(3)
  res = successive_halving(init, step, score, space, 20, key=key, min_steps=1, eta=3)
  # by hand: rung r trains to 3**r steps in all; 20 -> 7 -> 3 -> 1 trials (4 rungs), best first
  lrs = np.asarray(sample_space(space, jax.random.fold_in(key, 0), 20)["learning_rate"], np.float64)
  alive = np.arange(20)
  for r, rung in enumerate(list(res.stages) + [res]):
    np.testing.assert_allclose(rung.configs["learning_rate"], lrs[alive].astype(dtype()), rtol=0)
    expect = (3 ** r * lrs[alive] - 10.0) ** 2
    np.testing.assert_allclose(rung.scores, expect, rtol=1e-5, atol=1e-5)
    alive = alive[np.argsort(expect, kind="stable")[:math.ceil(len(alive) / 3)]]
  assert [len(r.scores) for r in res.stages] == [20, 7, 3] and len(res.scores) == 1
  assert traces == [1, 2, 6, 18]  # only the missing steps (states carried over), one trace per rung
  assert res.best_config["learning_rate"] == pytest.approx(float(lrs[alive[0]]), rel=1e-6)


def test_successive_halving_bad_inputs():
  init, step, score = (lambda c, k: jnp.zeros(())), (lambda s, c, n: s + c["lr"]), (lambda s: s)
  space = {"lr": log_uniform(1e-3, 1.0)}
  for kwargs, name in [({"eta": 1}, "eta"), ({"min_steps": 0}, "min_steps"), ({"num_rungs": 0}, "num_rungs"),
                       ({"num_rungs": 40, "eta": 2}, "num_rungs"), ({"vmap_size": 0}, "vmap_size")]:
    with pytest.raises(ValueError, match=rf"`successive_halving\({name}=\.\.\.\)`"):
      successive_halving(init, step, score, space, 4, key=jax.random.key(0), **{"min_steps": 1, **kwargs})
  with pytest.raises(ValueError, match=r"`successive_halving\(score_fn=\.\.\.\)`.*scalar"):
    successive_halving(init, step, lambda s: jnp.stack([s, s]), space, 4, key=jax.random.key(0), min_steps=1)
  with pytest.raises(ValueError, match=r"`successive_halving\(num_trials=\.\.\.\)`"):
    successive_halving(init, step, score, space, 0, key=jax.random.key(0), min_steps=1)


# --- refine_lr on a real range test ---

def test_refine_lr_on_a_real_range_test():
  data = {"x": jnp.asarray(XS, dtype()), "y": jnp.asarray(XS @ W_TRUE, dtype())}
  params = {"w": jnp.zeros(D, dtype())}
  rt = lrt.lr_range_test(mse, params, lambda lr: optax.sgd(lr, momentum=0.9), data, start_lr=1e-4, end_lr=10.0,
                         num_steps=60)

  def short_run(config, key):
    return train({**config, "momentum": jnp.asarray(0.9, dtype())}, key, 6)
  out = refine_lr(rt, short_run, key=jax.random.key(0), num_points=5)
  found = {m: lr for m, (lr, _) in rt.suggestions().items() if np.isfinite(lr)}
  assert out.suggestions == pytest.approx(found) and len(found) >= 2
  lrs = out.search.configs["learning_rate"]
  assert len(lrs) == len(found) + 5
  np.testing.assert_allclose(lrs[:len(found)], list(found.values()), rtol=1e-6)
  np.testing.assert_allclose(lrs[-1] / lrs[len(found)], max(found.values()) / min(found.values()) * 10, rtol=1e-5)
  one = jax.jit(short_run)
  direct = [one({"learning_rate": lr}, jax.random.fold_in(jax.random.key(0), i)) for i, lr in enumerate(lrs)]
  np.testing.assert_allclose(out.search.scores, direct, rtol=2e-5, atol=1e-6)
  best = int(np.nanargmin(np.where(np.isfinite(direct), direct, np.nan)))
  assert out.learning_rate == pytest.approx(float(lrs[best]), rel=1e-6)
  assert out.closest in found
  assert out.decades_from_closest == pytest.approx(min(abs(np.log10(out.learning_rate / v)) for v in found.values()),
                                                   abs=1e-6)


def test_refine_lr_bad_inputs():
  class NoSuggestion:
    def suggestions(self):
      return {"steepest": (float("nan"), -1), "minimum": (float("nan"), -1), "valley": (float("nan"), -1)}
  for args, kwargs, name in [((object(), bowl), {}, "range_test_result"),
                             ((NoSuggestion(), bowl), {}, "range_test_result"),
                             ((NoSuggestion(), bowl), {"num_points": 1}, "num_points"),
                             ((NoSuggestion(), bowl), {"methods": ("fast",)}, "methods"),
                             ((NoSuggestion(), bowl), {"span_decades": 0}, "span_decades"),
                             ((NoSuggestion(), 3), {}, "objective")]:
    with pytest.raises(ValueError, match=rf"`refine_lr\({name}=\.\.\.\)`"):
      refine_lr(*args, key=jax.random.key(0), **kwargs)


# --- bad inputs, no recompilation ---

@pytest.mark.parametrize("kwargs, name", [
    ({"num_trials": 0}, "num_trials"), ({"num_trials": 1.5}, "num_trials"), ({"objective": "f"}, "objective"),
    ({"key": 3}, "key"), ({"minimize": 1}, "minimize"), ({"chunk_size": 0}, "chunk_size"),
    ({"vmap_size": -1}, "vmap_size"), ({"progress": 3}, "progress"), ({"space": {}}, "space"),
    ({"objective": lambda c, k: jnp.stack([c["learning_rate"]] * 2)}, "objective"),  # not a scalar
    ({"objective": lambda c, k: (c["learning_rate"], c["momentum"])}, "objective"),
    ({"objective": lambda c, k: c["learning_rate"] > 0.1}, "objective"),  # a bool is not a score
])
def test_random_search_bad_inputs(kwargs, name):
  args = {"objective": bowl, "space": SPACE, "num_trials": 4, "key": jax.random.key(0), **kwargs}
  with pytest.raises(ValueError, match=rf"`random_search\({name}=\.\.\.\)`"):
    random_search(args.pop("objective"), args.pop("space"), args.pop("num_trials"), **args)


@pytest.mark.parametrize("configs", [{}, {"x": np.zeros((2, 2))}, {"x": np.zeros(2), "y": np.zeros(3)},
                                     {"x": np.zeros(0)}, {"x": np.array(["a", "b"])}, [np.zeros(2)]])
def test_evaluate_configs_bad_configs(configs):
  with pytest.raises(ValueError, match=r"`evaluate_configs\(configs=\.\.\.\)`"):
    evaluate_configs(lambda c, k: 0.0, configs, jax.random.key(0))


def test_no_recompilation_across_calls():
  traced = chex.assert_max_traces(bowl, n=1)
  first = random_search(traced, SPACE, 8, key=jax.random.key(0))
  for seed in (1, 2):  # new keys, new configurations: the same program
    random_search(traced, SPACE, 8, key=jax.random.key(seed))
  evaluate_configs(traced, configs_of(8, 5), jax.random.key(0))
  again = random_search(traced, SPACE, 8, key=jax.random.key(0))
  np.testing.assert_array_equal(first.scores, again.scores)


def test_plot_search(tmp_path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  stages = [{"num_trials": 24, "top_k": 4, "budget": 1}, {"num_trials": 16, "budget": 2}]
  space = {**SPACE, "width": choice([16, 32, 64])}
  res = coarse_to_fine(lambda c, k, b: jnp.where(c["learning_rate"] > 0.5, jnp.nan, bowl(c, k)), space, stages,
                       key=jax.random.key(0))
  fig = res.plot()
  assert [ax.get_xscale() for ax in fig.axes] == ["log", "linear", "linear"]
  assert [ax.get_xlabel() for ax in fig.axes] == ["learning_rate", "momentum", "width"]
  fig.savefig(tmp_path / "search.png", dpi=80)
  plt.close(fig)
