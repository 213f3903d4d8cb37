"""The comparison figure: learning rate, train loss and test accuracy per schedule, with seed bands."""

from __future__ import annotations

import numpy as np


def _band(ax, x, runs, style, label, scale=1.0, log=False):
  """Mean over seeds (rows of ``runs``) as a line, ± one standard deviation as a band. With ``log`` the
  statistics are of log10 of the values (a geometric mean and a factor band), so a loss band spanning decades
  stays positive on a log axis instead of plunging to the axis where mean − std < 0."""
  values = scale * np.asarray(runs, np.float64)
  values = np.log10(values) if log else values
  mean, std = values.mean(0), values.std(0, ddof=1)
  low, mid, high = (10.0 ** v if log else v for v in (mean - std, mean, mean + std))
  ax.plot(x, mid, lw=1.4, label=label, **style)
  ax.fill_between(x, low, high, color=style["color"], alpha=0.12, lw=0)


def _styles(names: list[str]) -> list[dict]:
  """A color per schedule; the two WSD cooldowns share black (solid linear, dashed 1-sqrt) to pair them."""
  colors = iter([f"C{i}" for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)] + ["darkgoldenrod", "C7", "navy"])
  styles = []
  for name in names:
    if name.startswith("wsd_"):
      styles.append({"color": "black", "ls": "--" if name == "wsd_1_sqrt" else "-"})
    else:
      styles.append({"color": next(colors), "ls": "-"})
  return styles


def curves_figure(out: dict):
  """A 2×2 ``matplotlib.figure.Figure``: LR per step, train loss and test accuracy per epoch (mean ± std
  over seeds), and the final test accuracy of each schedule with its seed spread."""
  from matplotlib.figure import Figure

  names = [row["schedule"] for row in out["rows"]]
  styles = _styles(names)
  fig = Figure(figsize=(13, 8.5), layout="constrained")
  (ax_lr, ax_loss), (ax_acc, ax_final) = fig.subplots(2, 2)
  steps_per_epoch = out["budget"]["steps_per_epoch"]
  for name, style in zip(names, styles):
    curves = out["curves"][name]
    lr = np.asarray(curves["learning_rate"])
    ax_lr.plot(np.arange(1, len(lr) + 1) / steps_per_epoch, lr, lw=1.2, label=name, **style)
    epochs = np.arange(1, len(curves["epoch_loss"][0]) + 1)
    _band(ax_loss, epochs, curves["epoch_loss"], style, name, log=True)
    _band(ax_acc, epochs, curves["valid_acc"], style, name, scale=100.0)
  ax_lr.set(xlabel="epoch", ylabel="learning rate", title="Learning rate (per step)")
  ax_loss.set(xlabel="epoch", ylabel="train loss", yscale="log",
              title="Train loss per epoch (geometric mean ×÷ std over seeds)")
  ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy (mean ± std over seeds)")
  final = np.array([100 * np.asarray(out["curves"][n]["valid_acc"])[:, -1] for n in names])
  if np.isfinite(final).any():  # zoom on the end of training: the first epochs would squash it
    ax_acc.set_ylim(max(0.0, np.nanpercentile(final, 5) - 2), min(100.0, np.nanmax(final) + 0.5))
  y = np.arange(len(names))[::-1]
  for i, name in enumerate(names):
    color = styles[i]["color"] if styles[i]["ls"] == "-" else "dimgray"
    ax_final.scatter(final[i], np.full(final.shape[1], y[i]), color=color, s=12, alpha=0.6)
    ax_final.errorbar(np.mean(final[i]), y[i], xerr=np.std(final[i], ddof=1), color=color, fmt="D", ms=6,
                      capsize=4)
  ax_final.set_yticks(y, names)
  ax_final.set(xlabel="final test accuracy (%)", title="Final test accuracy: seeds (dots), mean ± std")
  ax_final.grid(axis="x", alpha=0.3)
  for ax in (ax_lr, ax_loss, ax_acc):
    ax.grid(alpha=0.3)
  fig.legend(*ax_lr.get_legend_handles_labels(), loc="outside lower center",
             ncol=max(1, (len(names) + 1) // 2), fontsize=9)
  cfg = out["config"]
  free = f" · schedule_free: AdamW at {cfg['schedule_free_lr']:g}" if "schedule_free" in names else ""
  fig.suptitle(f"{cfg['dataset']} · {cfg['model']} · {cfg['optimizer']} (peak {cfg['peak_lr']:g}) · "
               f"{cfg['num_epochs']} epochs · batch {cfg['batch_size']} · {cfg['num_seeds']} seeds{free}")
  return fig
