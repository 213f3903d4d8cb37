"""plot_dashboard on a full TrainingHistory, an empty one and one with NaN; the panels it draws."""

from types import SimpleNamespace

import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from lrtools.diagnostics import TrainingHistory, plot_dashboard  # noqa: E402

STEPS_PER_EPOCH, EPOCHS = 10, 4


def full_history() -> TrainingHistory:
  """A history filled as a training loop fills it: device step records, epoch metrics, histograms, images."""
  rng = np.random.default_rng(0)
  h = TrainingHistory(num_classes=10)
  for epoch in range(EPOCHS):
    step = np.arange(epoch * STEPS_PER_EPOCH, (epoch + 1) * STEPS_PER_EPOCH)
    loss = 2.3 * np.exp(-step / 15) + 0.05 * rng.random(STEPS_PER_EPOCH)
    if epoch == 1:
      loss[3] = np.nan  # a diverged step: a gap, not a crash
    h.record_steps(int(step[0]), {
        "loss": jnp.asarray(loss, jnp.float32), "learning_rate": jnp.full(STEPS_PER_EPOCH, 0.1, jnp.float32),
        "update_ratio": jnp.asarray(1e-3 * np.exp(-step / 30), jnp.float32),
        "update_ratio/Dense_0/kernel": jnp.asarray(2e-3 * np.exp(-step / 30), jnp.float32),
        "update_ratio/Dense_0/bias": jnp.asarray(np.where(step == 0, np.inf, 5e-3), jnp.float32)})
    h.record_epoch(epoch + 1, {"train_loss": 2.0 / (epoch + 1), "valid_loss": 2.2 / (epoch + 1),
                               "train_accuracy": 0.5 + 0.1 * epoch, "valid_accuracy": 0.45 + 0.08 * epoch,
                               "dead_fraction/Dense_0": 0.05},
                   {"activation/Dense_0": np.maximum(rng.normal(size=(32, 16)), 0.0),
                    "grad/Dense_0/kernel": rng.normal(0, 1e-3, size=(64, 16)),
                    "grad/Dense_0/bias": np.append(rng.normal(0, 1e-2, size=16), np.nan)},
                   {"first_layer_weights": rng.normal(size=(16, 8, 8))})
  return h


def titles(fig: Figure) -> list[str]:
  return [ax.get_title() for ax in fig.axes if ax.get_title()]


def not_recorded(fig: Figure) -> list[str]:
  return [ax.get_title() for ax in fig.axes if any(t.get_text() == "not recorded" for t in ax.texts)]


def test_full_history_draws_every_panel(tmp_path):
  h = full_history()
  fig = plot_dashboard(h)
  assert isinstance(fig, Figure)
  assert not_recorded(fig) == []
  loss_ax, acc_ax, lr_ax, ratio_ax = fig.axes[:4]
  assert loss_ax.get_yscale() == "log" and ratio_ax.get_yscale() == "log"
  assert acc_ax.get_title() == "accuracy (last gap +0.110)"  # epoch 4: train 0.8, validation 0.69
  # Epoch losses sit at the step ending each epoch (10, 20, 30, 40), on the per-step axis.
  train_line = next(line for line in loss_ax.lines if line.get_label() == "train loss")
  np.testing.assert_allclose(train_line.get_xdata(), [10, 20, 30, 40])
  ratio_labels = [line.get_label() for line in ratio_ax.lines]
  assert {"Dense_0/kernel", "Dense_0/bias", "global"} <= set(ratio_labels)
  assert "first-layer weights (16 filters)" in titles(fig)
  assert "activations (epoch 4)" in titles(fig) and "gradients (epoch 4)" in titles(fig)
  fig.savefig(tmp_path / "dashboard.png", dpi=60)
  assert (tmp_path / "dashboard.png").stat().st_size > 10_000


def test_empty_history_says_not_recorded_everywhere(tmp_path):
  fig = plot_dashboard(TrainingHistory())
  assert len(not_recorded(fig)) == 8
  fig.savefig(tmp_path / "empty.png", dpi=40)


def test_partial_and_all_nan_histories_do_not_crash(tmp_path):
  nan = np.full(5, np.nan)
  history = SimpleNamespace(steps={"step": np.arange(5), "loss": nan, "update_ratio": nan},
                            epochs={"epoch": np.array([1]), "valid_accuracy": np.array([np.nan])},
                            histograms={"activation/h": [(1, np.array([np.nan, np.inf]))]},
                            images={"first_layer_weights": np.full((3, 4, 4, 3), np.nan)})
  fig = plot_dashboard(history, log_loss=True)
  assert fig.axes[0].get_yscale() == "linear"  # nothing positive to draw on a log axis
  assert set(not_recorded(fig)) == {"learning rate", "gradients"}
  activations = fig.axes[4]
  assert [t.get_text() for t in activations.texts] == ["no finite values"]
  fig.savefig(tmp_path / "partial.png", dpi=40)


def test_cnn_filters_with_channels_and_no_steps():
  rng = np.random.default_rng(1)
  history = SimpleNamespace(steps={}, epochs={"epoch": np.array([1, 2]), "train_loss": np.array([1.0, 0.5])},
                            histograms={}, images={"first_layer_weights": rng.normal(size=(5, 3, 3, 1))})
  fig = plot_dashboard(history, log_loss=False)
  assert fig.axes[0].get_yscale() == "linear" and fig.axes[0].get_xlabel() == "epoch"
  assert fig.axes[6].get_title() == "first-layer weights (5 filters)"
  image = fig.axes[6].images[0].get_array()
  assert image.shape == (2 * 4 + 1, 3 * 4 + 1)  # 5 filters of 3×3 in 2 rows of 3, 1-pixel gaps


@pytest.mark.parametrize("history,kwargs,name", [
    (object(), {}, "history"),
    (SimpleNamespace(steps={}, epochs={}, histograms={}), {}, "history"),
    (TrainingHistory(), {"log_loss": "yes"}, "log_loss"),
])
def test_bad_arguments_name_themselves(history, kwargs, name):
  with pytest.raises(ValueError, match=rf"`plot_dashboard\({name}="):
    plot_dashboard(history, **kwargs)
