"""Every schedule in the float32 default, under jit, over every int32 step 0 … 2**31 − 1.

Steps are sampled densely around every phase change, restart, milestone and boundary (±3 steps), at the
ends of the int32 range and at 2,000 log-spaced and random steps, and compared with the float64 references
of ``tests/reference.py`` (integer steps, exact restarts). Errors are normalised by the schedule's largest
value. ``python tests/test_schedules_scale.py`` prints the table of largest errors quoted in the notes.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import lrtools as lrt  # noqa: E402
import reference as ref  # noqa: E402

TOP = 2**31 - 1
F = np.float32


def _around(points, width=3):
  return [p + d for p in points for d in range(-width, width + 1)]


def _periodic(period, offsets=(0,)):
  """Multiples of ``period`` (plus offsets) near 0, 2^24, 2^30 and the end of the int32 range."""
  ks = {0, 1, 2, 3}
  for anchor in (2**24, 2**28, 2**30, TOP):
    k = anchor // period
    ks.update({k - 1, k, k + 1})
  return [k * period + o for k in sorted(ks) if k >= 0 for o in offsets]


def _sgdr_starts(cycle_steps, cycle_mult):
  starts = ref.sgdr_restarts(cycle_steps, cycle_mult, TOP)
  return _periodic(cycle_steps) if starts is None else [int(s) for s in starts]


def _wsd_ref(peak, total, warm, decay, shape):
  return lambda ts: ref.wsd(ts, float(F(peak)), total, warm, decay, 0.0, 0.0, "linear", shape)


def _one_cycle_ref(total, peak, pct, anneal, three_phase):
  p = float(F(pct))
  return lambda ts: ref.one_cycle(ts, total, float(F(peak)) / 25, float(F(peak)), float(F(peak)) / 25 / 1e4, p,
                                  anneal, three_phase)


def _one_cycle_edges(total, pct, three_phase):
  p = float(F(pct))
  ends = [p * total - 1, 2 * p * total - 2, total - 1] if three_phase else [p * total - 1, total - 1]
  return [math.floor(e) for e in ends] + [0]


_traced_sgdr = jax.jit(lambda t, m: lrt.sgdr_schedule(F(0.1), 10, m, F(0.001))(t))

# name -> (schedule, reference(ts) -> float64 values, boundary steps, documented (low, high) range)
CASES = {
    "constant": (lrt.constant_schedule(F(0.3)), lambda ts: ref.constant(ts, float(F(0.3))), [0], (0.3, 0.3)),
    "step_decay": (lrt.step_decay_schedule(F(0.1), 2**24 + 1, F(0.9), F(1e-8)),
                   lambda ts: ref.step_decay(ts, float(F(0.1)), 2**24 + 1, float(F(0.9)), float(F(1e-8))),
                   _periodic(2**24 + 1), (1e-8, 0.1)),
    "step_decay_short": (lrt.step_decay_schedule(F(0.1), 7, F(0.9999999)),
                         lambda ts: ref.step_decay(ts, float(F(0.1)), 7, float(F(0.9999999)), 0.0),
                         _periodic(7), (0.0, 0.1)),
    "multistep": (lrt.multistep_schedule(F(0.1), [1000, 2**24 + 1, 2**30 + 3, TOP - 1], F(0.5)),
                  lambda ts: ref.multistep(ts, float(F(0.1)), [1000, 2**24 + 1, 2**30 + 3, TOP - 1], float(F(0.5))),
                  [1000, 2**24 + 1, 2**30 + 3, TOP - 1], (0.1 / 16, 0.1)),
    "exponential": (lrt.exponential_decay_schedule(F(0.1), F(1e-9)),
                    lambda ts: ref.exponential_decay(ts, float(F(0.1)), float(F(1e-9))), [0], (0.0, 0.1)),
    "inverse_time": (lrt.inverse_time_decay_schedule(F(0.1), F(1e-8)),
                     lambda ts: ref.inverse_time_decay(ts, float(F(0.1)), float(F(1e-8))), [0], (0.0, 0.1)),
    "polynomial": (lrt.polynomial_decay_schedule(F(0.1), F(0.001), TOP - 5, F(2.0)),
                   lambda ts: ref.polynomial_decay(ts, float(F(0.1)), float(F(0.001)), TOP - 5, 2.0),
                   [TOP - 5], (0.001, 0.1)),
    "cosine": (lrt.cosine_decay_schedule(F(0.1), 2**24 + 3, F(0.001)),
               lambda ts: ref.cosine_decay(ts, float(F(0.1)), 2**24 + 3, float(F(0.001))), [2**24 + 3],
               (0.001, 0.1)),
    "cyclical_triangular": (lrt.cyclical_schedule(F(0.001), F(0.1), 3, 7),
                            lambda ts: ref.cyclic_lr(ts, float(F(0.001)), float(F(0.1)), 3, 7, "triangular", 1.0),
                            _periodic(10, (0, 3)), (0.001, 0.1)),
    "cyclical_long": (lrt.cyclical_schedule(F(0.001), F(0.1), 2**29 + 1, 2**29 - 1),
                      lambda ts: ref.cyclic_lr(ts, float(F(0.001)), float(F(0.1)), 2**29 + 1, 2**29 - 1,
                                               "triangular", 1.0),
                      [0, 2**29 + 1, 2**30, 2**30 + 2**29 + 1, 2**31 - 1], (0.001, 0.1)),
    "cyclical_triangular2": (lrt.cyclical_schedule(F(0.001), F(0.1), 1000, 1000, "triangular2"),
                             lambda ts: ref.cyclic_lr(ts, float(F(0.001)), float(F(0.1)), 1000, 1000,
                                                      "triangular2", 1.0),
                             _periodic(2000, (0, 1000)), (0.001, 0.1)),
    "cyclical_exp_range": (lrt.cyclical_schedule(F(0.001), F(0.1), 5, 5, "exp_range", F(0.99999999)),
                           lambda ts: ref.cyclic_lr(ts, float(F(0.001)), float(F(0.1)), 5, 5, "exp_range",
                                                    float(F(0.99999999))),
                           _periodic(10, (0, 5)), (0.001, 0.1)),
    "cyclical_momentum": (lrt.cyclical_momentum_schedule(F(0.85), F(0.95), 3, 7),
                          lambda ts: ref.cyclic_lr(ts, float(F(0.85)), float(F(0.95)), 3, 7, "triangular", 1.0,
                                                   momentum=True),
                          _periodic(10, (0, 3)), (0.85, 0.95)),
    "one_cycle": (lrt.one_cycle_schedule(TOP, F(0.1), F(0.3)), _one_cycle_ref(TOP, 0.1, 0.3, "cos", False),
                  _one_cycle_edges(TOP, 0.3, False), (0.1 / 25 / 1e4, 0.1)),
    "one_cycle_3phase_linear": (lrt.one_cycle_schedule(10**9 + 7, F(0.1), F(0.37), anneal="linear",
                                                       three_phase=True),
                                _one_cycle_ref(10**9 + 7, 0.1, 0.37, "linear", True),
                                _one_cycle_edges(10**9 + 7, 0.37, True), (0.1 / 25 / 1e4, 0.1)),
    "one_cycle_momentum": (lrt.one_cycle_momentum_schedule(TOP, F(0.85), F(0.95), F(0.25)),
                           lambda ts: ref.one_cycle(ts, TOP, float(F(0.95)), float(F(0.85)), float(F(0.95)),
                                                    float(F(0.25)), "cos", False),
                           _one_cycle_edges(TOP, 0.25, False), (0.85, 0.95)),
    **{f"sgdr_T{t0}_m{m:g}": (lrt.sgdr_schedule(F(0.1), t0, F(m), F(0.001)),
                             (lambda t0, m: lambda ts: ref.sgdr(ts, float(F(0.1)), t0, float(F(m)),
                                                                 float(F(0.001)), 1.0, 1.0))(t0, m),
                             _sgdr_starts(t0, m), (0.001, 0.1))
       for t0, m in [(1, 1.0), (7, 1.0), (10, 2.0), (1, 3.0), (1, 100.0), (3, 1000.0)]},
    "sgdr_T10_m1.3": (lrt.sgdr_schedule(F(0.1), 10, F(1.3), F(0.001)),
                      lambda ts: ref.sgdr(ts, float(F(0.1)), 10, float(F(1.3)), float(F(0.001)), 1.0, 1.0),
                      _sgdr_starts(10, float(F(1.3))), (0.001, 0.1)),
    "sgdr_T10_m1.3_traced": (lambda t: _traced_sgdr(t, F(1.3)),
                             lambda ts: ref.sgdr(ts, float(F(0.1)), 10, float(F(1.3)), float(F(0.001)), 1.0, 1.0),
                             _sgdr_starts(10, float(F(1.3))), (0.001, 0.1)),
    "warmup_cosine": (lrt.warmup_schedule(lrt.cosine_decay_schedule(F(0.1), 2**30), 2**30 + 1, F(1e-4)),
                      lambda ts: ref.warmup(ts, lambda s: ref.cosine_decay(s, float(F(0.1)), 2**30, 0.0),
                                            2**30 + 1, float(F(1e-4))),
                      [2**30 + 1, 2**31 - 1], (0.0, 0.1)),
    "join": (lrt.join_schedules([lrt.constant_schedule(F(0.1)), lrt.cosine_decay_schedule(F(0.1), 2**30),
                                 lrt.constant_schedule(F(0.01))], [2**24 + 1, TOP - 10]),
             lambda ts: np.where(np.asarray(ts) < 2**24 + 1, float(F(0.1)),
                                 np.where(np.asarray(ts) < TOP - 10,
                                          ref.cosine_decay([max(t - 2**24 - 1, 0) for t in ts], float(F(0.1)),
                                                           2**30, 0.0), float(F(0.01)))),
             [2**24 + 1, TOP - 10], (0.0, 0.1)),
    **{f"wsd_{shape}": (lrt.wsd_schedule(F(0.1), TOP, 2**20 + 1, decay_shape=shape),
                        _wsd_ref(0.1, TOP, 2**20 + 1, TOP // 5, shape), [2**20 + 1, TOP - TOP // 5, TOP], (0.0, 0.1))
       for shape in ("linear", "1-sqrt", "cosine", "square")},
}

# A traced real cycle_mult is evaluated on the device: in float32 its restarts are exact only while float32
# resolves the boundary (documented in sgdr_schedule); concrete ones (above) are exact everywhere.
EXACT_BELOW = {"sgdr_T10_m1.3_traced": 2**12}


def sample_steps(boundaries, seed=0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  steps = set(_around([b for b in boundaries if 0 <= b <= TOP]))
  steps.update(np.unique(np.logspace(0, np.log10(TOP), 1000).astype(np.int64)).tolist())
  steps.update(rng.integers(0, TOP, 1000).tolist())
  steps.update([0, 1, 2, TOP - 2, TOP - 1, TOP])
  return np.array(sorted(s for s in steps if 0 <= s <= TOP), np.int64)


def errors(name):
  """(steps, float32 values, reference values, normalised absolute errors) of one case."""
  schedule, reference, boundaries, _ = CASES[name]
  ts = sample_steps(boundaries)
  got = np.asarray(jax.jit(schedule)(jnp.asarray(ts, jnp.int32)))
  want = np.asarray(reference(ts), np.float64)
  scale = max(np.abs(want).max(), 1e-30)
  return ts, got, want, np.abs(got.astype(np.float64) - want) / scale


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_jit_over_the_whole_int32_range(name):
  ts, got, want, err = errors(name)
  low, high = CASES[name][3]
  assert got.dtype == np.float32
  assert np.all(np.isfinite(got)), ts[~np.isfinite(got)][:5]
  assert np.all(got >= np.float32(low) * (1 - 1e-6)) and np.all(got <= np.float32(high) * (1 + 1e-6))
  exact = ts < EXACT_BELOW.get(name, TOP + 1)
  # 1e-5 of the schedule's range: far below one step's change at a restart or phase change (an off-by-one
  # moves the value by a whole cycle's amplitude), above float32's rounding of positions and powers.
  bad = exact & (err > 1e-5)
  assert not bad.any(), f"worst at step {ts[np.argmax(np.where(exact, err, 0))]}: {err[exact].max():.3g}"


def test_bfloat16_hyperparameters_do_not_round_steps():
  """Only the returned value follows a bfloat16 hyperparameter; the step arithmetic stays integer."""
  bf = jnp.bfloat16
  decay = lrt.step_decay_schedule(bf(0.1), 1000, bf(0.5))(jnp.arange(995, 1005))
  assert decay.dtype == bf
  assert np.all(np.asarray(decay[:5], np.float32) == np.float32(bf(0.1)))  # not decayed before step 1000
  assert np.all(np.asarray(decay[5:], np.float32) == np.float32(bf(0.05)))
  fires = np.asarray(lrt.multistep_schedule(bf(0.1), [300])(jnp.arange(297, 303)), np.float32)
  assert list(fires > 0.05) == [True, True, True, False, False, False]
  sgdr = np.asarray(lrt.sgdr_schedule(bf(0.1), 100)(jnp.asarray([25500, 25599, 25600])), np.float32)
  np.testing.assert_allclose(sgdr, [0.1, ref.sgdr([25599], 0.1, 100, 1.0, 0.0, 1.0, 1.0)[0], 0.1], rtol=1e-2)


def test_reported_defects_are_fixed():
  """The cases found adversarially (each was wrong before: −0.42, NaN, 0.233, NaN)."""
  cyc = jax.jit(lrt.cyclical_schedule(0.01, 0.1, 10))(jnp.int32(999_900_000))
  assert float(cyc) == pytest.approx(0.01)
  mom = jax.jit(lrt.cyclical_momentum_schedule(0.85, 0.95, 10))(jnp.int32(999_900_000))
  assert float(mom) == pytest.approx(0.95)
  for t in (2**24, 2**28 + 1, TOP):
    assert float(lrt.sgdr_schedule(0.1, 1)(jnp.int32(t))) == pytest.approx(0.1)
  assert float(lrt.sgdr_schedule(1.0, 1, 100.0)(9_999_967)) == pytest.approx(
      ref.sgdr([9_999_967], 1.0, 1, 100.0, 0.0, 1.0, 1.0)[0], rel=1e-5)  # 0.980, not 0.233
  restarts = np.flatnonzero(np.asarray(lrt.sgdr_schedule(1.0, 10, 1.3)(jnp.arange(100))) == 1.0)
  assert restarts.tolist() == [0, 10, 23, 40, 62, 91]  # 23, not 24: the ceiling of the exact boundary


def test_sgdr_real_mult_restarts_match_exact_arithmetic():
  """For a real ``cycle_mult`` restarts land on ⌈T_0 Σ m^j⌉ (exact rational reference) at every int32 step."""
  for t0, m in [(10, 1.3), (37, 1.5), (1, 1.1), (5, 1.25), (3, 1.7), (2, 1.01)]:
    starts = [s for s in ref.sgdr_restarts(t0, m, TOP) if s <= TOP]
    sched = jax.jit(lrt.sgdr_schedule(np.float32(1.0), t0, m))  # float32 values, m exactly as written
    at = np.asarray(sched(jnp.asarray(starts, jnp.int32)))
    assert np.all(at == 1.0), (t0, m, np.asarray(starts)[at != 1.0][:5])
    before = np.asarray(starts[1:]) - 1  # the last step of each cycle, at its minimum
    np.testing.assert_allclose(sched(jnp.asarray(before, jnp.int32)), ref.sgdr(before, 1.0, t0, m, 0.0, 1.0, 1.0),
                               atol=1e-6)


if __name__ == "__main__":
  print(f"{'schedule':28s} {'samples':>8s} {'max |err|/max':>14s} {'at step':>12s}")
  for case in CASES:
    ts, _, _, err = errors(case)
    print(f"{case:28s} {ts.size:8d} {err.max():14.3g} {int(ts[np.argmax(err)]):12d}")
