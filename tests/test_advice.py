"""advise(): every rule fires on a constructed history, names its numbers, and stays quiet on a healthy run."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from lrtools.diagnostics import TrainingHistory, advise
from lrtools.diagnostics import _advice

N = 40


def history(steps=None, epochs=None, num_classes=10, epoch_steps=N):
  """A two-epoch history: ``steps`` series over 2·epoch_steps steps, ``epochs`` series of 2 values; healthy
  defaults for whatever is not given."""
  healthy_steps = {"loss": np.geomspace(math.log(10), 0.2, 2 * epoch_steps),
                   "update_ratio/Dense_0/kernel": np.full(2 * epoch_steps, 1e-3),
                   "update_ratio/Dense_0/bias": np.full(2 * epoch_steps, 0.5),  # biases are skipped
                   "update_ratio": np.full(2 * epoch_steps, 1.2e-3)}
  healthy_epochs = {"train_accuracy": [0.90, 0.95], "valid_accuracy": [0.88, 0.92],
                    "dead_fraction/Dense_0": [0.05, 0.1], "saturated_fraction/Dense_0": [0.0, 0.02]}
  steps = {**healthy_steps, **(steps or {})}
  epochs = {**healthy_epochs, **(epochs or {})}
  h = TrainingHistory(num_classes=num_classes)
  for e in range(2):
    h.record_steps(e * epoch_steps, {k: jnp.asarray(v[e * epoch_steps:(e + 1) * epoch_steps]) for k, v in steps.items()})
    h.record_epoch(e, {k: v[e] for k, v in epochs.items()})
  return h


def test_a_healthy_run_gets_no_advice():
  assert advise(history()) == []
  assert advise(TrainingHistory()) == []  # nothing recorded: nothing to say


def test_nan_loss_names_the_step():
  loss = np.geomspace(2.3, 0.2, 2 * N)
  loss[50:] = np.nan
  (msg,) = advise(history({"loss": loss}))
  assert "NaN or inf at step 50" in msg and "30 of 80" in msg and "too high" in msg


def test_diverging_loss():
  (msg,) = advise(history({"loss": np.geomspace(2.3, 40.0, 2 * N)}))
  assert msg.startswith("The loss diverged") and "from 3.243" in msg and "to 28.38" in msg and "too high" in msg


def test_flat_loss():
  (msg,) = advise(history({"loss": np.full(2 * N, 2.3)}))
  assert msg.startswith("The loss is not decreasing") and "2.3" in msg and "too low" in msg


def test_initial_loss_far_from_ln_c():
  loss = np.geomspace(6.0, 0.2, 2 * N)
  (msg,) = advise(history({"loss": loss}))
  assert "initial loss 6 " in msg and "ln(10) = 2.303" in msg
  assert advise(history({"loss": loss}, num_classes=None)) == []  # unknown C: no check


def test_initial_loss_uses_num_classes_argument():
  loss = np.geomspace(6.0, 0.2, 2 * N)
  assert advise(history({"loss": loss}, num_classes=None), num_classes=400) == []  # ln 400 = 5.99
  assert len(advise(history({"loss": loss}, num_classes=None), num_classes=10)) == 1


@pytest.mark.parametrize("value, word", [(2e-6, "far below"), (0.3, "far above")])
def test_update_ratio_outside_the_band_per_leaf_over_the_last_epoch(value, word):
  ratio = np.full(2 * N, 1e-3)
  ratio[N:] = value  # the last epoch only
  (msg,) = advise(history({"update_ratio/Dense_0/kernel": ratio}))
  assert word in msg and f"Dense_0/kernel {value:.2g}" in msg and f"last epoch's {N} steps" in msg
  ratio[N:] = 1e-3
  ratio[:N] = value  # only the first epoch: fine now
  assert advise(history({"update_ratio/Dense_0/kernel": ratio})) == []


def test_update_ratio_ignores_non_finite_values_and_falls_back_to_epochs():
  ratio = np.full(2 * N, 1e-7)
  ratio[N] = np.inf  # step 0 of an epoch from zero weights
  assert "1e-07" in advise(history({"update_ratio/Dense_0/kernel": ratio}))[0]
  h = TrainingHistory()
  h.record_epoch(0, {"update_ratio/Dense_1/kernel": 0.5})
  (msg,) = advise(h)
  assert "Dense_1/kernel 0.5" in msg and "at the last epoch" in msg


def test_zero_and_all_nan_ratios_get_their_own_advice():
  zero, nan = np.full(2 * N, 1e-3), np.full(2 * N, 1e-3)
  zero[N:], nan[N:] = 0.0, np.nan
  msgs = advise(history({"update_ratio/Dense_0/kernel": zero, "update_ratio/Dense_1/kernel": nan}))
  assert len(msgs) == 2
  assert "NaN or inf over the whole last epoch for Dense_1/kernel" in msgs[0] and "far too high" in msgs[0]
  assert "received no update" in msgs[1] and "Dense_0/kernel" in msgs[1]


def test_underfitting_is_left_out_when_the_learning_rate_looks_wrong():
  low = {"train_accuracy": [0.2, 0.3], "valid_accuracy": [0.2, 0.29]}
  assert advise(history(epochs=low))[0].startswith("Underfitting")
  (msg,) = advise(history({"loss": np.full(2 * N, 2.3)}, epochs=low))
  assert msg.startswith("The loss is not decreasing")


def test_overfitting():
  (msg,) = advise(history(epochs={"train_accuracy": [0.9, 0.99], "valid_accuracy": [0.85, 0.80]}))
  assert msg.startswith("Overfitting") and "0.990" in msg and "0.800" in msg and "gap 0.190" in msg


def test_underfitting_and_percentages():
  (msg,) = advise(history(epochs={"train_accuracy": [40.0, 55.0], "valid_accuracy": [39.0, 54.0]}))
  assert msg.startswith("Underfitting") and "0.550" in msg and "too small" in msg


def test_dead_and_saturated_units():
  msgs = advise(history(epochs={"dead_fraction/Dense_0": [0.3, 0.6], "saturated_fraction/Dense_1": [0.1, 0.5]}))
  assert len(msgs) == 2
  assert "dead" in msgs[0] and "Dense_0 60%" in msgs[0] and "40%" in msgs[0]
  assert "saturated" in msgs[1] and "Dense_1 50%" in msgs[1]


def test_thresholds_are_module_constants():
  assert _advice.RATIO_BAND == (1e-4, 1e-2) and _advice.RATIO_TARGET == 1e-3
  assert _advice.DEAD_FRACTION_MAX == 0.4


def test_bad_inputs_raise_value_error_naming_the_argument():
  with pytest.raises(ValueError, match=r"`advise\(history=\.\.\.\)`"):
    advise({"loss": [1.0]})
  for bad in (1, True, 2.5):
    with pytest.raises(ValueError, match=r"`advise\(num_classes=\.\.\.\)`"):
      advise(TrainingHistory(), num_classes=bad)


def test_an_annealed_tail_is_not_read_as_a_learning_rate_too_low():
  # One-cycle style: ratio ~1e-3 while the rate is high, ~1e-6 in the annealed tail (intended, not advice);
  # the same tiny ratio at a constant rate is advice.
  lr = np.concatenate([np.full(60, 0.1), np.geomspace(0.1, 1e-4, 40)])
  ratio = np.where(lr >= 0.05, 1e-3, 1e-6)
  for rates, quiet in ((lr, True), (np.full(100, 0.1), False)):
    h = TrainingHistory()
    for epoch in range(4):
      sl = slice(25 * epoch, 25 * (epoch + 1))
      h.record_steps(25 * epoch, {"loss": np.linspace(2.0, 1.0, 100)[sl], "learning_rate": rates[sl],
                                  "update_ratio/Dense_0/kernel": ratio[sl]})
      h.record_epoch(epoch, {})
    low = [a for a in advise(h) if "far below" in a]
    assert (not low) if quiet else low, advise(h)
