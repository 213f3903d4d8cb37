"""`TrainingHistory`: per-step and per-epoch records of a training run, cheap to fill from jitted code, with
export to TensorBoard event files (tensorboardX, an extra) and to any writer with CLU's method names.

Cost. :meth:`TrainingHistory.record_steps` keeps the device arrays it is given (e.g. the loss and
``read_monitor`` series stacked by a ``lax.scan``) without reading them: no host sync per step. They are
fetched in one ``jax.device_get`` with the epoch's metrics at :meth:`TrainingHistory.record_epoch`.

Non-finite values. Every non-finite number (NaN, ±inf: a diverged loss, the ``inf`` update ratio of a
zero-initialised bias) is stored as NaN, so that series stay plottable and writers never see an inf; a
missing key in some records is NaN-filled so that every series keeps the length of ``"step"``/``"epoch"``.
Histograms hand only their finite values to a writer (an all-NaN histogram is not written).

Writers. ``writer`` is anything with ``write_scalars(step, mapping)`` (CLU's ``metric_writers``, a W&B or
MLflow adapter, :func:`tensorboard_writer`); ``write_histograms(step, arrays)``, ``write_images(step,
images)`` and ``flush()`` are used when present. The x axis is the training step: per-step records are
written at their step, an epoch's metrics, histograms and images at the step after its last recorded step
(the global step at the end of the epoch), or at the epoch number when no steps were recorded.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from lrtools._typing import check_integer, concrete, fail

_FORMAT = "lrtools.TrainingHistory/1"


def _nan_clean(x: Any) -> np.ndarray:
  """A float64 copy with every non-finite value as NaN."""
  x = np.array(x, dtype=np.float64)
  x[~np.isfinite(x)] = np.nan
  return x


def _check_mapping(call: str, name: str, value: Any, ndims: tuple[int, ...], what: str,
                   reserved: str | None = None) -> None:
  """``value`` is a mapping of string names to real arrays of rank in ``ndims`` (shapes read, not values)."""
  if not isinstance(value, Mapping):
    fail(call, name, value, f"must be a mapping of names to {what}")
  for key, v in value.items():
    if not isinstance(key, str) or not key or key == reserved:
      fail(call, name, key, f"must have non-empty string names{f' other than {reserved!r}' if reserved else ''}")
    dtype = getattr(v, "dtype", None)
    if dtype is None:
      try:
        dtype = np.asarray(v).dtype
      except (TypeError, ValueError):
        dtype = np.dtype(object)
    if not (jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_)) \
        or jnp.issubdtype(dtype, jnp.complexfloating) or np.ndim(v) not in ndims:
      fail(call, name, {key: v}, f"must map names to {what}")


def _host_int(call: str, name: str, value: Any, minimum: int) -> int:
  check_integer(call, name, value, minimum)
  if concrete(value) is None:
    fail(call, name, value, "must be concrete, not traced (histories are filled on the host)")
  return int(value)


def _append(series: dict[str, np.ndarray], length: int, rows: Mapping[str, np.ndarray], n: int) -> None:
  """Appends ``n`` rows to same-length ``series`` (currently ``length`` long), NaN-filling missing keys."""
  for key in set(series) | set(rows):
    old = series.get(key, np.full(length, np.nan))
    new = rows.get(key, np.full(n, np.nan))
    series[key] = np.concatenate([old, np.broadcast_to(new, (n,))])


def _as_nhwc(image: np.ndarray) -> np.ndarray:
  """An (N, H, W[, C]) stack scaled per image to [0, 1] (NaN as 0), as (N, H, W, C) for image writers."""
  x = np.nan_to_num(np.asarray(image, np.float64))
  x = x[..., None] if x.ndim == 3 else x
  low = x.min(axis=(1, 2, 3), keepdims=True)
  span = x.max(axis=(1, 2, 3), keepdims=True) - low
  return ((x - low) / np.where(span > 0, span, 1.0)).astype(np.float32)


class TrainingHistory:
  """Per-step and per-epoch records of a run: losses, accuracies, learning rate, monitors, histograms.

  .. math:: \\text{steps}[k] = (\\text{step}_k, \\ell_k, \\eta_k, \\lVert\\Delta w\\rVert/\\lVert w\\rVert, …),
            \\qquad \\text{epochs}[e] = (e, \\text{train/valid loss and accuracy}, …)

  Args:
    num_classes: number of classes (for ``advise``'s initial-loss check, ln C), or ``None``.
    writer: ``None`` (memory only) or an object with ``write_scalars(step, mapping)`` (CLU's names; also
      ``write_histograms``, ``write_images``, ``flush`` when present) that receives every record at
      :meth:`record_epoch`.

  Attributes:
    steps: ``{name: np.ndarray}`` per-step series, ``"step"`` included (fetched at :meth:`record_epoch`).
    epochs: ``{name: np.ndarray}`` per-epoch series, ``"epoch"`` included.
    histograms: ``{name: [(epoch, values), ...]}`` raw values as float64 NumPy arrays.
    images: ``{name: np.ndarray}`` the latest image stack per name, (N, H, W) or (N, H, W, C).
    num_classes: as given.

  Example:
    >>> import jax.numpy as jnp
    >>> from lrtools.diagnostics import TrainingHistory
    >>> h = TrainingHistory(num_classes=10)
    >>> h.record_steps(0, {"loss": jnp.array([2.3, 2.1, jnp.nan])})   # kept on device
    >>> h.record_epoch(0, {"train_accuracy": 0.5, "valid_accuracy": 0.45})
    >>> h.steps["step"].tolist(), h.steps["loss"].round(2).tolist(), h.epochs["valid_accuracy"].tolist()
    ([0, 1, 2], [2.3, 2.1, nan], [0.45])
    >>> h2 = TrainingHistory.from_state_dict(h.state_dict())
    >>> h2.epochs["epoch"].tolist(), h2.num_classes
    ([0], 10)

  References:
    CS231n "Neural Networks Part 3" (babysitting the learning process); TensorBoard; CLU metric_writers.
  """

  def __init__(self, *, num_classes: int | None = None, writer: Any = None):
    call = "TrainingHistory"
    self.num_classes = None if num_classes is None else _host_int(call, "num_classes", num_classes, 2)
    if writer is not None and not callable(getattr(writer, "write_scalars", None)):
      fail(call, "writer", writer, "must be None or have a write_scalars(step, mapping) method (a CLU writer)")
    self.writer = writer
    self.steps: dict[str, np.ndarray] = {}
    self.epochs: dict[str, np.ndarray] = {}
    self.histograms: dict[str, list[tuple[int, np.ndarray]]] = {}
    self.images: dict[str, np.ndarray] = {}
    self._pending: list[tuple[int, int, Mapping[str, Any]]] = []  # (first_step, n, device arrays)
    self._unwritten: list[dict[str, np.ndarray]] = []  # fetched step rows not yet given to the writer
    self._next_step = 0
    self._epoch_end_steps: list[int] = []   # the writer's step of each epoch
    self._epoch_rows: list[int] = []        # len(steps["step"]) after each epoch

  # --- recording -------------------------------------------------------------------------------------------
  def record_steps(self, first_step: int, records: Mapping[str, Any]) -> None:
    """Queues per-step series of shape ``(n,)`` for steps ``first_step … first_step + n − 1``, on device.

    No host transfer: the arrays are fetched at the next :meth:`record_epoch` (or :meth:`state_dict`).
    Steps must not go back (``first_step`` at least the step after the last one recorded).
    """
    call = "TrainingHistory.record_steps"
    first = _host_int(call, "first_step", first_step, 0)
    _check_mapping(call, "records", records, (1,), "1-D arrays of one length (n,)", reserved="step")
    lengths = {int(np.shape(v)[0]) for v in records.values()}
    if len(lengths) > 1 or 0 in lengths:
      fail(call, "records", {k: np.shape(v) for k, v in records.items()}, "must be 1-D arrays of one length n >= 1")
    if first < self._next_step:
      fail(call, "first_step", first_step, f"must be at least {self._next_step} (the step after the last recorded)")
    if records:
      n = lengths.pop()
      self._pending.append((first, n, dict(records)))
      self._next_step = first + n

  def record_epoch(self, epoch: int, metrics: Mapping[str, Any], histograms: Mapping[str, Any] | None = None,
                   images: Mapping[str, Any] | None = None) -> None:
    """Records one epoch's scalar ``metrics`` (and optional ``histograms``, ``images``), fetches the queued
    step records in the same single device transfer, and forwards everything to the writer."""
    call = "TrainingHistory.record_epoch"
    epoch = _host_int(call, "epoch", epoch, 0)
    if len(self.epochs.get("epoch", ())) and epoch <= self.epochs["epoch"][-1]:
      fail(call, "epoch", epoch, f"must be greater than the last recorded epoch {int(self.epochs['epoch'][-1])}")
    _check_mapping(call, "metrics", metrics, (0,), "scalars", reserved="epoch")
    histograms = {} if histograms is None else histograms
    images = {} if images is None else images
    _check_mapping(call, "histograms", histograms, tuple(range(1, 8)) + (0,), "arrays of values")
    _check_mapping(call, "images", images, (3, 4), "(N, H, W) or (N, H, W, C) image stacks")
    metrics, histograms, images = self._fetch((dict(metrics), dict(histograms), dict(images)))
    rows = len(self.epochs.get("epoch", ()))
    _append(self.epochs, rows, {"epoch": np.array([epoch], np.int64),
                                **{k: _nan_clean(v).reshape(1) for k, v in metrics.items()}}, 1)
    self.epochs["epoch"] = self.epochs["epoch"].astype(np.int64)
    for name, values in histograms.items():
      self.histograms.setdefault(name, []).append((epoch, _nan_clean(values)))
    for name, image in images.items():
      self.images[name] = _nan_clean(image)
    step = self._next_step if self._next_step > 0 else epoch
    self._epoch_end_steps.append(step)
    self._epoch_rows.append(len(self.steps.get("step", ())))
    if self.writer is not None:
      _write_rows(self.writer, self._unwritten)
      _write_epoch(self.writer, step, {k: self.epochs[k][-1] for k in self.epochs if k != "epoch"},
                   {k: self.histograms[k][-1][1] for k in histograms}, {k: self.images[k] for k in images})
    self._unwritten = []

  def _fetch(self, extra: Any = None) -> Any:
    """Moves the queued device step records to ``steps``, and returns ``extra`` on the host: one
    ``jax.device_get`` (one synchronisation) for everything."""
    fetched, extra = jax.device_get(([records for _, _, records in self._pending], extra))
    for (first, n, _), records in zip(self._pending, fetched):
      rows = {"step": np.arange(first, first + n, dtype=np.int64), **{k: _nan_clean(v) for k, v in records.items()}}
      _append(self.steps, len(self.steps.get("step", ())), rows, n)
      self.steps["step"] = self.steps["step"].astype(np.int64)
      self._unwritten.append(rows)
    self._pending = []
    return extra

  def epoch_steps(self, index: int = -1) -> dict[str, np.ndarray]:
    """The step records of one recorded epoch (default the last): the rows fetched at its
    :meth:`record_epoch`, ``{}`` when none."""
    if not self._epoch_rows:
      check_integer("TrainingHistory.epoch_steps", "index", index, -1, 0)
      return {}
    check_integer("TrainingHistory.epoch_steps", "index", index, -len(self._epoch_rows), len(self._epoch_rows) - 1)
    i = int(index) % len(self._epoch_rows)
    start = self._epoch_rows[i - 1] if i else 0
    return {k: v[start:self._epoch_rows[i]] for k, v in self.steps.items()} if self._epoch_rows[i] > start else {}

  # --- export and persistence ------------------------------------------------------------------------------
  def to_tensorboard(self, logdir: str | os.PathLike) -> str:
    """Writes the whole history as TensorBoard event files under ``logdir`` (tensorboardX, an extra:
    ``pip install 'lrtools[tensorboard]'``) and returns the directory. Queued step records are included."""
    self._fetch()
    writer = tensorboard_writer(logdir, _call="TrainingHistory.to_tensorboard")
    try:
      _write_rows(writer, [self.steps] if self.steps else [])
      for i, step in enumerate(self._epoch_end_steps):
        epoch = int(self.epochs["epoch"][i])
        hists = {k: v for k, entries in self.histograms.items() for e, v in entries if e == epoch}
        last = i == len(self._epoch_end_steps) - 1
        _write_epoch(writer, step, {k: self.epochs[k][i] for k in self.epochs if k != "epoch"}, hists,
                     self.images if last else {})
    finally:
      writer.close()
    return str(logdir)

  def state_dict(self) -> dict[str, Any]:
    """Everything recorded, as plain Python/NumPy values (picklable; queued step records fetched first).
    Restore with :meth:`from_state_dict`."""
    self._fetch()
    return {"format": _FORMAT, "num_classes": self.num_classes,
            "steps": {k: v.copy() for k, v in self.steps.items()},
            "epochs": {k: v.copy() for k, v in self.epochs.items()},
            "histograms": {k: [(int(e), v.copy()) for e, v in entries] for k, entries in self.histograms.items()},
            "images": {k: v.copy() for k, v in self.images.items()},
            "next_step": self._next_step, "epoch_end_steps": list(self._epoch_end_steps),
            "epoch_rows": list(self._epoch_rows)}

  @classmethod
  def from_state_dict(cls, state: Mapping[str, Any], *, writer: Any = None) -> TrainingHistory:
    """The history saved by :meth:`state_dict` (``writer`` receives only what is recorded afterwards)."""
    if not isinstance(state, Mapping) or state.get("format") != _FORMAT:
      fail("TrainingHistory.from_state_dict", "state", type(state).__name__,
           f"must be a TrainingHistory.state_dict() (format {_FORMAT!r})")
    history = cls(num_classes=state["num_classes"], writer=writer)
    history.steps = {k: np.asarray(v).copy() for k, v in state["steps"].items()}
    history.epochs = {k: np.asarray(v).copy() for k, v in state["epochs"].items()}
    history.histograms = {k: [(int(e), np.asarray(v).copy()) for e, v in entries]
                          for k, entries in state["histograms"].items()}
    history.images = {k: np.asarray(v).copy() for k, v in state["images"].items()}
    history._next_step = int(state["next_step"])
    history._epoch_end_steps = [int(s) for s in state["epoch_end_steps"]]
    history._epoch_rows = [int(s) for s in state["epoch_rows"]]
    return history

  def __repr__(self) -> str:
    return (f"TrainingHistory({len(self.steps.get('step', ()))} steps, {len(self.epochs.get('epoch', ()))} epochs, "
            f"step keys {sorted(k for k in self.steps if k != 'step')}, "
            f"epoch keys {sorted(k for k in self.epochs if k != 'epoch')})")


def _write_rows(writer: Any, chunks: list[Mapping[str, np.ndarray]]) -> None:
  """One ``write_scalars`` per step, NaN entries left out (a missing value, not a measurement)."""
  for rows in chunks:
    names = [k for k in rows if k != "step"]
    for i, step in enumerate(rows["step"]):
      values = {k: float(rows[k][i]) for k in names if np.isfinite(rows[k][i])}
      if values:
        writer.write_scalars(int(step), values)


def _write_epoch(writer: Any, step: int, metrics: Mapping[str, float], histograms: Mapping[str, np.ndarray],
                 images: Mapping[str, np.ndarray]) -> None:
  """An epoch's scalars (NaN kept: a diverged metric is a measurement), finite histogram values, images."""
  if metrics:
    writer.write_scalars(int(step), {k: float(v) for k, v in metrics.items()})
  finite = {k: v[np.isfinite(v)] for k, v in histograms.items()}
  finite = {k: v for k, v in finite.items() if v.size}
  if finite and callable(getattr(writer, "write_histograms", None)):
    writer.write_histograms(int(step), finite)
  if images and callable(getattr(writer, "write_images", None)):
    writer.write_images(int(step), {k: _as_nhwc(v) for k, v in images.items()})
  if callable(getattr(writer, "flush", None)):
    writer.flush()


class _TensorBoardWriter:
  """CLU's writer methods over a ``tensorboardX.SummaryWriter``."""

  def __init__(self, summary_writer: Any):
    self._w = summary_writer

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    for name, value in scalars.items():
      self._w.add_scalar(name, float(value), int(step))

  def write_histograms(self, step: int, arrays: Mapping[str, Any], num_buckets: Any = None) -> None:
    for name, values in arrays.items():
      values = np.asarray(values, np.float64).ravel()
      values = values[np.isfinite(values)]
      if values.size:
        self._w.add_histogram(name, values, int(step), bins="auto" if num_buckets is None else int(num_buckets))

  def write_images(self, step: int, images: Mapping[str, Any]) -> None:
    for name, image in images.items():
      self._w.add_images(name, _as_nhwc(np.asarray(image)), int(step), dataformats="NHWC")

  def flush(self) -> None:
    self._w.flush()

  def close(self) -> None:
    self._w.close()


def tensorboard_writer(logdir: str | os.PathLike, *, _call: str = "tensorboard_writer") -> _TensorBoardWriter:
  """A writer with CLU's method names (``write_scalars``, ``write_histograms``, ``write_images``, ``flush``,
  ``close``) writing TensorBoard event files under ``logdir`` through tensorboardX (never TensorFlow).

  .. math:: \\text{write\\_scalars}(t, \\{k: v\\}) \\mapsto \\text{add\\_scalar}(k, v, t)

  Args:
    logdir: the directory of the event files (created if missing).

  Returns:
    The writer; pass it as ``TrainingHistory(writer=...)`` to stream records as epochs end.

  Example:
    >>> import tempfile, os
    >>> from lrtools.diagnostics import tensorboard_writer
    >>> d = tempfile.mkdtemp()
    >>> w = tensorboard_writer(d); w.write_scalars(0, {"loss": 2.3}); w.close()
    >>> any(f.startswith("events.out.tfevents") for f in os.listdir(d))
    True

  References:
    TensorBoard; CLU ``metric_writers``; tensorboardX.
  """
  if not isinstance(logdir, (str, os.PathLike)) or not str(logdir):
    fail(_call, "logdir", logdir, "must be a directory path")
  try:
    from tensorboardX import SummaryWriter
  except ImportError:
    fail(_call, "logdir", str(logdir),
         "needs tensorboardX for TensorBoard event files (pip install 'lrtools[tensorboard]')")
  return _TensorBoardWriter(SummaryWriter(logdir=str(logdir)))
