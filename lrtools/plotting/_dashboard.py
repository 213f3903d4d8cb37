"""The training dashboard: one figure with the CS231n "babysitting" plots of a ``TrainingHistory``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_BAND = (1e-4, 1e-2)  # update:weight ratios around the ~1e-3 heuristic
_MAX_LINES = 10  # layers drawn per panel (the first ones, in the history's order); more would be unreadable


def _fail(name: str, value: Any, requirement: str) -> None:
  from lrtools._typing import fail
  fail("plot_dashboard", name, value, requirement)


def _not_recorded(ax, title: str, what: str = "not recorded") -> None:
  ax.set_title(title)
  ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="0.5")
  ax.set_xticks([])
  ax.set_yticks([])


def _series(mapping: dict, name: str) -> np.ndarray | None:
  value = mapping.get(name)
  if value is None:
    return None
  value = np.asarray(value, dtype=np.float64).reshape(-1)
  return value if value.size else None


def _log_y_if_positive(ax, *arrays) -> None:
  """Log scale only when some value can be drawn on it (matplotlib warns on an empty log axis)."""
  if any(a is not None and np.any(np.isfinite(a) & (a > 0)) for a in arrays):
    ax.set_yscale("log")


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
  """Trailing mean over ``window`` finite values (NaN where the window holds none)."""
  ok = np.isfinite(y)
  c = np.concatenate([[0.0], np.cumsum(np.where(ok, y, 0.0))])
  n = np.concatenate([[0], np.cumsum(ok)])
  lo = np.maximum(np.arange(1, len(y) + 1) - window, 0)
  count = n[1:] - n[lo]
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(count > 0, (c[1:] - c[lo]) / np.maximum(count, 1), np.nan)


def _epoch_x(history, steps: np.ndarray | None, epochs: np.ndarray) -> np.ndarray:
  """Where epoch metrics go on the step axis of the loss panel: the step after each epoch's last recorded
  step (``TrainingHistory.epoch_steps``; epochs assumed of equal length for other histories), else (no
  per-step records) the epoch numbers."""
  if steps is None or not len(steps):
    return epochs
  if callable(getattr(history, "epoch_steps", None)):
    ends = []
    for i in range(len(epochs)):
      rows = history.epoch_steps(i).get("step")
      ends.append(float(rows[-1]) + 1 if rows is not None and len(rows) else np.nan)
    return np.asarray(ends)
  return steps[0] + len(steps) / len(epochs) * np.arange(1, len(epochs) + 1)


def _loss_panel(ax, history, log_loss: bool) -> None:
  loss = _series(history.steps, "loss")
  epochs = _series(history.epochs, "epoch")
  curves = {k: _series(history.epochs, k) for k in ("train_loss", "valid_loss")}
  curves = {k: v for k, v in curves.items() if v is not None}
  if loss is None and not curves:
    return _not_recorded(ax, "loss")
  step = _series(history.steps, "step")
  if loss is not None:
    step = step if step is not None and len(step) == len(loss) else np.arange(len(loss), dtype=np.float64)
    ax.plot(step, loss, color="tab:blue", alpha=0.25, lw=0.8, label="loss per step")
    ax.plot(step, _smooth(loss, max(1, len(loss) // 20)), color="tab:blue", lw=1.5, label="smoothed")
  for k, v in curves.items():
    n = len(v)
    e = epochs[:n] if epochs is not None and len(epochs) >= n else np.arange(1, n + 1, dtype=np.float64)
    x = _epoch_x(history, step if loss is not None else None, e)
    ax.plot(x, v, "o-", ms=3, color="tab:orange" if k == "train_loss" else "tab:green", label=k.replace("_", " "))
  ax.set_xlabel("step" if loss is not None else "epoch")
  ax.set_title("loss" + (" (log)" if log_loss else ""))
  if log_loss:
    _log_y_if_positive(ax, loss, *curves.values())
  ax.legend(fontsize=7)


def _accuracy_panel(ax, history) -> None:
  train, valid = _series(history.epochs, "train_accuracy"), _series(history.epochs, "valid_accuracy")
  if train is None and valid is None:
    return _not_recorded(ax, "accuracy")
  n = max(len(v) for v in (train, valid) if v is not None)
  epochs = _series(history.epochs, "epoch")
  x = epochs[:n] if epochs is not None and len(epochs) >= n else np.arange(1, n + 1, dtype=np.float64)
  for v, label, color in ((train, "train", "tab:orange"), (valid, "validation", "tab:green")):
    if v is not None:
      ax.plot(x[:len(v)], v, "o-", ms=3, color=color, label=label)
  if train is not None and valid is not None:
    m = min(len(train), len(valid))
    ok = np.isfinite(train[:m]) & np.isfinite(valid[:m])
    ax.fill_between(x[:m], train[:m], valid[:m], where=ok, color="tab:red", alpha=0.15, label="gap")
    if ok.any():
      last = np.flatnonzero(ok)[-1]
      ax.set_title(f"accuracy (last gap {train[last] - valid[last]:+.3f})")
  if not ax.get_title():
    ax.set_title("accuracy")
  ax.set_xlabel("epoch")
  ax.legend(fontsize=7)


def _lr_panel(ax, history) -> None:
  lr = _series(history.steps, "learning_rate")
  if lr is None:
    return _not_recorded(ax, "learning rate")
  step = _series(history.steps, "step")
  step = step if step is not None and len(step) == len(lr) else np.arange(len(lr), dtype=np.float64)
  ax.plot(step, lr, color="tab:purple")
  if np.nanmin(lr, initial=np.inf) >= 0:
    ax.set_ylim(bottom=0)  # a constant or slowly varying rate is not magnified into noise
  ax.set_title("learning rate")
  ax.set_xlabel("step")


def _ratio_panel(ax, history) -> None:
  names = sorted(k for k in history.steps if k.startswith("update_ratio/"))
  total = _series(history.steps, "update_ratio")
  if not names and total is None:
    return _not_recorded(ax, "update:weight ratio")
  step = _series(history.steps, "step")
  drawn = []
  for name in names[:_MAX_LINES]:
    y = _series(history.steps, name)
    x = step if step is not None and len(step) == len(y) else np.arange(len(y), dtype=np.float64)
    ax.plot(x, y, lw=0.9, label=name[len("update_ratio/"):])
    drawn.append(y)
  if total is not None:
    x = step if step is not None and len(step) == len(total) else np.arange(len(total), dtype=np.float64)
    ax.plot(x, total, color="black", lw=1.6, label="global")
    drawn.append(total)
  ax.axhspan(*_BAND, color="tab:green", alpha=0.1, label="1e-4 .. 1e-2")
  ax.axhline(1e-3, color="tab:green", ls="--", lw=1)
  _log_y_if_positive(ax, *drawn)
  ax.set_title("update:weight ratio ||Δw|| / ||w||")
  ax.set_xlabel("step")
  ax.legend(fontsize=6, ncol=2)


def _histogram_panel(ax, history, prefix: str, title: str, log_abs: bool) -> None:
  names = sorted(k for k in history.histograms if k.startswith(prefix) and history.histograms[k])
  if not names:
    return _not_recorded(ax, title)
  drawn = []
  for name in names[:_MAX_LINES]:
    epoch, values = history.histograms[name][-1]
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if log_abs:
      v = np.log10(np.abs(v[v != 0]))
    if v.size:
      drawn.append((name, v))
  if not drawn:
    return _not_recorded(ax, title, "no finite values")
  # The x range spans every layer's central 99 %: one outlier would squash the other layers.
  lo = min(np.percentile(v, 0.5) for _, v in drawn)
  hi = max(np.percentile(v, 99.5) for _, v in drawn)
  hi = hi if hi > lo else lo + 1.0
  for name, v in drawn:
    ax.hist(v, bins=40, range=(lo, hi), histtype="step", density=True, label=name[len(prefix):] or name)
  ax.set_title(f"{title} (epoch {epoch})")
  ax.set_xlabel("log10 |value|" if log_abs else "value")
  ax.legend(fontsize=6)


def _mosaic(filters: np.ndarray) -> np.ndarray:
  """(N, H, W[, C]) filters tiled in a square grid, each min-max scaled to [0, 1], 1-pixel white gaps."""
  f = np.asarray(filters, dtype=np.float64)
  if f.ndim == 4 and f.shape[-1] not in (1, 3):
    f = f.mean(axis=-1)
  if f.ndim == 4 and f.shape[-1] == 1:
    f = f[..., 0]
  finite = np.isfinite(f)
  n, h, w = f.shape[:3]
  axes = tuple(range(1, f.ndim))
  lo = np.min(np.where(finite, f, np.inf), axis=axes, keepdims=True)
  hi = np.max(np.where(finite, f, -np.inf), axis=axes, keepdims=True)
  ok = hi > lo  # a filter with fewer than two distinct finite values is drawn black
  f = np.where(finite & ok, (np.where(finite, f, 0.0) - np.where(ok, lo, 0.0)) / np.where(ok, hi - lo, 1.0), 0.0)
  cols = math.ceil(math.sqrt(n))
  rows = math.ceil(n / cols)
  grid = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1) + f.shape[3:])
  for i in range(n):
    r, c = divmod(i, cols)
    grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = f[i]
  return grid


def _weights_panel(ax, history) -> None:
  image = history.images.get("first_layer_weights")
  shape = np.shape(image) if image is not None else ()
  if image is None or len(shape) not in (3, 4) or 0 in shape:
    return _not_recorded(ax, "first-layer weights")
  grid = _mosaic(image)
  ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, interpolation="nearest")
  ax.set_title(f"first-layer weights ({shape[0]} filters)")
  ax.set_xticks([])
  ax.set_yticks([])


def _summary_panel(ax, history) -> None:
  """The last recorded epoch's metrics as text (activation statistics included when recorded)."""
  epochs = history.epochs
  lines = []
  first = ("train_loss", "valid_loss", "train_accuracy", "valid_accuracy")
  for name in sorted(epochs, key=lambda k: (k not in first, first.index(k) if k in first else 0, k)):
    values = epochs[name]
    v = np.asarray(values).reshape(-1)
    if v.size and name != "epoch":
      lines.append(f"{name[:38]:<38} {float(v[-1]):.4g}")
  ax.axis("off")
  if not lines:
    return _not_recorded(ax, "last epoch")
  epoch = np.asarray(epochs.get("epoch", [np.nan])).reshape(-1)
  ax.set_title(f"last epoch ({epoch[-1]:g})" if epoch.size else "last epoch")
  shown = lines[:22] + ([f"... {len(lines) - 22} more"] if len(lines) > 22 else [])
  ax.text(0.0, 1.0, "\n".join(shown), va="top", ha="left", family="monospace", fontsize=7, transform=ax.transAxes)


def plot_dashboard(history, *, log_loss: bool = True):
  r"""One figure of a training run: loss, accuracy gap, learning rate, update ratios, histograms, filters.

  .. math:: \rho_l = \lVert \Delta w_l \rVert / \lVert w_l \rVert \approx 10^{-3}

  Panels: the per-step loss (raw and smoothed) with the epochs' train/validation losses (log-y with
  ``log_loss``); train vs validation accuracy per epoch with the gap shaded (overfitting shows as a wide
  gap); the learning rate per step; the update:weight ratio per layer (``"update_ratio/<leaf>"``, the
  global ``"update_ratio"`` in black) over the 1e-4 … 1e-2 band around CS231n's ~1e-3; the latest epoch's
  activation histograms (``"activation/<layer>"``) and gradient histograms (``"grad/<leaf>"``, as
  :math:`\log_{10}|g|` since layers differ by decades; both over every layer's central 99 %);
  ``images["first_layer_weights"]`` (N, H, W[, C]) as a grid of filters, each scaled to its own range; and
  the last epoch's metrics as text. A series that was not recorded leaves its panel saying so; NaN and inf
  values are gaps in the curves and left out of the histograms. At most 10 layers per panel.

  Args:
    history: a :class:`lrtools.diagnostics.TrainingHistory` (anything with its ``steps``, ``epochs``,
      ``histograms`` and ``images`` dicts).
    log_loss: log-scaled loss axis.

  Returns:
    A ``matplotlib.figure.Figure`` (not attached to pyplot: save it with ``fig.savefig(path)``).

  Example:
    >>> from types import SimpleNamespace
    >>> from lrtools.diagnostics import plot_dashboard
    >>> history = SimpleNamespace(steps={"step": [0, 1, 2], "loss": [2.3, 1.9, 1.2]},
    ...                           epochs={"epoch": [1], "train_accuracy": [0.6], "valid_accuracy": [0.5]},
    ...                           histograms={}, images={})
    >>> fig = plot_dashboard(history)
    >>> [ax.get_title() for ax in fig.axes[:2]]
    ['loss (log)', 'accuracy (last gap +0.100)']

  References:
    CS231n "Neural Networks Part 3: babysitting the learning process" (loss curve, train/val accuracy,
    update:weight ratio ~1e-3, activation/gradient distributions per layer, first-layer visualisations).
  """
  for name in ("steps", "epochs", "histograms", "images"):
    if not isinstance(getattr(history, name, None), dict):
      _fail("history", type(history).__name__, f"must be a TrainingHistory (with a dict `{name}`)")
  if not isinstance(log_loss, (bool, np.bool_)):
    _fail("log_loss", log_loss, "must be True or False")
  try:
    from matplotlib.figure import Figure
  except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError('plotting needs matplotlib: pip install "lrtools[plot]"') from e
  fig = Figure(figsize=(18, 9), layout="constrained")
  axes = fig.subplots(2, 4).reshape(-1)
  _loss_panel(axes[0], history, bool(log_loss))
  _accuracy_panel(axes[1], history)
  _lr_panel(axes[2], history)
  _ratio_panel(axes[3], history)
  _histogram_panel(axes[4], history, "activation/", "activations", log_abs=False)
  _histogram_panel(axes[5], history, "grad/", "gradients", log_abs=True)
  _weights_panel(axes[6], history)
  _summary_panel(axes[7], history)
  return fig
