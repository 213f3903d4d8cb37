"""TrainingHistory: records kept on device until record_epoch (no host transfer per step), series and NaN
handling, a fake CLU writer, TensorBoard event files read back, save/restore, argument errors."""

import os
import pickle
import struct
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrtools as lrt
from lrtools.diagnostics import TrainingHistory, monitored, read_monitor, tensorboard_writer


class FakeWriter:
  """CLU's metric_writers method names, recording every call."""

  def __init__(self):
    self.scalars, self.histograms, self.images, self.flushes = [], [], [], 0

  def write_scalars(self, step, scalars):
    self.scalars.append((step, dict(scalars)))

  def write_histograms(self, step, arrays, num_buckets=None):
    self.histograms.append((step, {k: np.asarray(v) for k, v in arrays.items()}))

  def write_images(self, step, images):
    self.images.append((step, {k: np.asarray(v) for k, v in images.items()}))

  def flush(self):
    self.flushes += 1


def filled(writer=None):
  h = TrainingHistory(num_classes=10, writer=writer)
  h.record_steps(0, {"loss": jnp.array([2.3, 2.0, 1.8]), "learning_rate": jnp.full(3, 0.1)})
  h.record_epoch(0, {"train_loss": 1.9, "valid_accuracy": jnp.asarray(0.5)},
                 histograms={"activation/Dense_0": jnp.array([0.0, 1.0, jnp.nan, 2.0])},
                 images={"first_layer_weights": np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)})
  h.record_steps(3, {"loss": jnp.array([1.5, jnp.inf]), "update_ratio": jnp.array([1e-3, 2e-3])})
  h.record_epoch(1, {"train_loss": float("nan"), "valid_accuracy": 0.6, "train_accuracy": 0.7})
  return h


def test_record_steps_keeps_device_arrays_without_any_host_transfer():
  h = TrainingHistory()
  loss = jnp.arange(4.0)
  ratio = loss * 1e-3
  with jax.transfer_guard_device_to_host("disallow"):  # any device -> host copy here would raise
    h.record_steps(0, {"loss": loss, "update_ratio/Dense_0/kernel": ratio})
    h.record_steps(4, {"loss": loss})
  assert h.steps == {}  # nothing fetched until the epoch ends
  h.record_epoch(0, {"train_loss": 1.0})
  assert h.steps["step"].tolist() == list(range(8))
  assert h.steps["loss"].tolist() == [0.0, 1.0, 2.0, 3.0] * 2
  np.testing.assert_array_equal(h.steps["update_ratio/Dense_0/kernel"][4:], np.nan)  # missing: NaN-filled


def test_series_align_and_non_finite_values_are_nan():
  h = filled()
  assert h.steps["step"].tolist() == [0, 1, 2, 3, 4]
  np.testing.assert_allclose(h.steps["loss"], [2.3, 2.0, 1.8, 1.5, np.nan], rtol=1e-6)  # inf stored as NaN
  np.testing.assert_array_equal(h.steps["update_ratio"][:3], np.nan)
  assert h.epochs["epoch"].tolist() == [0, 1] and h.epochs["epoch"].dtype == np.int64
  np.testing.assert_array_equal(h.epochs["train_loss"], [1.9, np.nan])
  np.testing.assert_array_equal(h.epochs["train_accuracy"], [np.nan, 0.7])
  (epoch, values), = h.histograms["activation/Dense_0"]
  assert epoch == 0 and values.shape == (4,) and np.isnan(values[2])
  assert h.images["first_layer_weights"].shape == (2, 3, 4)
  assert h.epoch_steps(0)["step"].tolist() == [0, 1, 2] and h.epoch_steps()["step"].tolist() == [3, 4]
  assert "5 steps, 2 epochs" in repr(h)


def test_a_clu_style_writer_receives_every_record_at_the_epoch_end():
  w = FakeWriter()
  h = TrainingHistory(writer=w)
  h.record_steps(0, {"loss": jnp.array([2.3, 2.0])})
  assert w.scalars == []  # streamed at record_epoch, not per step
  h.record_epoch(0, {"valid_accuracy": 0.5}, histograms={"grad/w": jnp.array([1.0, jnp.nan, 3.0])},
                 images={"filters": jnp.ones((2, 3, 3))})
  assert w.scalars == [(0, {"loss": pytest.approx(2.3)}), (1, {"loss": 2.0}), (2, {"valid_accuracy": 0.5})]
  (step, hists), = w.histograms
  assert step == 2 and hists["grad/w"].tolist() == [1.0, 3.0]  # finite values only
  (step, images), = w.images
  assert images["filters"].shape == (2, 3, 3, 1) and images["filters"].min() >= 0 and images["filters"].max() <= 1
  assert w.flushes == 1
  h.record_epoch(1, {"valid_accuracy": float("nan")})  # no steps this epoch: written at the same global step
  assert w.scalars[-1][0] == 2 and np.isnan(w.scalars[-1][1]["valid_accuracy"])


def test_epoch_metrics_go_at_the_epoch_number_without_steps_and_a_minimal_writer_works():
  class ScalarsOnly:
    def __init__(self):
      self.calls = []

    def write_scalars(self, step, scalars):
      self.calls.append((step, scalars))

  w = ScalarsOnly()
  h = TrainingHistory(writer=w)
  h.record_epoch(3, {"loss": 1.0}, histograms={"h": np.ones(3)})
  assert w.calls == [(3, {"loss": 1.0})]


def test_state_dict_round_trip_survives_pickle():
  h = filled()
  h.record_steps(5, {"loss": jnp.array([1.0])})  # still queued: included
  restored = TrainingHistory.from_state_dict(pickle.loads(pickle.dumps(h.state_dict())))
  assert restored.num_classes == 10
  for a, b in ((h.steps, restored.steps), (h.epochs, restored.epochs), (h.images, restored.images)):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  assert restored.steps["step"].tolist() == [0, 1, 2, 3, 4, 5]
  assert [e for e, _ in restored.histograms["activation/Dense_0"]] == [0]
  restored.record_steps(6, {"loss": jnp.array([0.5])})  # goes on where it stopped
  restored.record_epoch(2, {"train_loss": 0.4})
  assert restored.epoch_steps()["step"].tolist() == [5, 6]
  with pytest.raises(ValueError, match=r"`TrainingHistory.record_steps\(first_step=\.\.\.\)` must be at least 7"):
    restored.record_steps(2, {"loss": jnp.array([0.5])})


def test_filled_from_the_training_loop_and_read_monitor_series():
  opt = monitored(lrt.sgd(0.1))
  loss = lambda w, x: jnp.mean((w * x - 3 * x) ** 2)  # noqa: E731
  xs = jnp.linspace(-1.0, 1.0, 40).reshape(5, 8)

  def body(carry, x):
    w, s = carry
    value, g = jax.value_and_grad(loss)(w, x)
    u, s = opt.update(g, s, w)
    return (w + u, s), {"loss": value, **read_monitor(s)}

  w0 = jnp.ones(())
  _, series = jax.jit(lambda w: jax.lax.scan(body, (w, opt.init(w)), xs))(w0)
  h = TrainingHistory()
  h.record_steps(0, series)
  h.record_epoch(0, {"train_loss": series["loss"][-1]})
  assert set(h.steps) == {"step", "loss", "learning_rate", "grad_norm", "update_norm", "weight_norm", "update_ratio"}
  assert h.steps["update_ratio"].shape == (5,) and np.all(np.isfinite(h.steps["update_ratio"]))
  np.testing.assert_allclose(h.steps["learning_rate"], 0.1, rtol=1e-6)


# --- TensorBoard event files, read back with a TFRecord reader (tensorboard itself is not needed) -------------
def read_events(logdir):
  """Every Event in the tfevents files under ``logdir``: TFRecord framing (length, masked CRC, data, CRC)."""
  event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
  events = []
  for name in sorted(os.listdir(logdir)):
    if "tfevents" not in name:
      continue
    with open(os.path.join(logdir, name), "rb") as f:
      data = f.read()
    i = 0
    while i < len(data):
      (length,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event()
      event.ParseFromString(data[i + 12:i + 12 + length])
      events.append(event)
      i += 12 + length + 4
  return events


def by_tag(events):
  out = {}
  for e in events:
    for v in e.summary.value:
      out.setdefault(v.tag, []).append((e.step, v))
  return out


def test_to_tensorboard_writes_scalars_histograms_and_images(tmp_path):
  pytest.importorskip("tensorboardX")
  h = filled()
  assert h.to_tensorboard(tmp_path / "tb") == str(tmp_path / "tb")
  tags = by_tag(read_events(tmp_path / "tb"))
  assert [(s, round(v.simple_value, 4)) for s, v in tags["loss"]] == [(0, 2.3), (1, 2.0), (2, 1.8), (3, 1.5)]
  assert [s for s, _ in tags["update_ratio"]] == [3, 4]
  assert [s for s, _ in tags["valid_accuracy"]] == [3, 5]  # epochs at the global step after their last step
  assert np.isnan(tags["train_loss"][1][1].simple_value)
  (step, hist), = tags["activation/Dense_0"]
  assert step == 3 and hist.histo.num == 3 and hist.histo.max == 2.0  # the NaN left out
  (step, image), = tags["first_layer_weights"]
  assert step == 5 and image.image.height > 0


def test_a_tensorboard_writer_streams_as_epochs_end(tmp_path):
  pytest.importorskip("tensorboardX")
  writer = tensorboard_writer(tmp_path)
  h = TrainingHistory(writer=writer)
  h.record_steps(0, {"loss": jnp.array([1.0, 0.5])})
  h.record_epoch(0, {"valid_loss": 0.7})
  writer.close()  # tensorboardX writes from a worker thread: closing drains its queue
  tags = by_tag(read_events(tmp_path))
  assert [s for s, _ in tags["loss"]] == [0, 1] and [s for s, _ in tags["valid_loss"]] == [2]


def test_missing_tensorboardx_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorboardX", None)
  with pytest.raises(ValueError, match=r"`TrainingHistory.to_tensorboard\(logdir=\.\.\.\)` needs tensorboardX"):
    filled().to_tensorboard(tmp_path)
  with pytest.raises(ValueError, match=r"`tensorboard_writer\(logdir=\.\.\.\)` needs tensorboardX"):
    tensorboard_writer(tmp_path)


def test_bad_inputs_raise_value_error_naming_the_argument():
  call = r"`TrainingHistory\({}=\.\.\.\)`"
  for kwargs, name in (({"num_classes": 1}, "num_classes"), ({"num_classes": True}, "num_classes"),
                       ({"num_classes": 2.5}, "num_classes"), ({"writer": object()}, "writer")):
    with pytest.raises(ValueError, match=call.format(name)):
      TrainingHistory(**kwargs)
  h = TrainingHistory()
  record = r"`TrainingHistory.record_steps\({}=\.\.\.\)`"
  for args, name in (((-1, {"loss": jnp.ones(2)}), "first_step"), ((True, {"loss": jnp.ones(2)}), "first_step"),
                     ((0, [1.0]), "records"), ((0, {"loss": jnp.ones((2, 2))}), "records"),
                     ((0, {"loss": jnp.ones(2), "acc": jnp.ones(3)}), "records"),
                     ((0, {"step": jnp.ones(2)}), "records"), ((0, {"loss": jnp.ones(0)}), "records"),
                     ((0, {"loss": ["a", "b"]}), "records"), ((0, {1: jnp.ones(2)}), "records")):
    with pytest.raises(ValueError, match=record.format(name)):
      h.record_steps(*args)
  epoch = r"`TrainingHistory.record_epoch\({}=\.\.\.\)`"
  for args, kwargs, name in (((-1, {}), {}, "epoch"), ((0, {"a": jnp.ones(2)}), {}, "metrics"),
                             ((0, {"epoch": 1.0}), {}, "metrics"), ((0, {}), {"histograms": [1.0]}, "histograms"),
                             ((0, {}), {"images": {"f": jnp.ones((3, 3))}}, "images")):
    with pytest.raises(ValueError, match=epoch.format(name)):
      h.record_epoch(*args, **kwargs)
  h.record_epoch(1, {})
  with pytest.raises(ValueError, match=epoch.format("epoch") + " must be greater than the last recorded epoch 1"):
    h.record_epoch(1, {})
  with pytest.raises(ValueError, match=r"`TrainingHistory.epoch_steps\(index=\.\.\.\)`"):
    h.epoch_steps(1)
  with pytest.raises(ValueError, match=r"`TrainingHistory.from_state_dict\(state=\.\.\.\)`"):
    TrainingHistory.from_state_dict({"steps": {}})
  with pytest.raises(ValueError, match=r"`tensorboard_writer\(logdir=\.\.\.\)` must be a directory path"):
    tensorboard_writer(3)
