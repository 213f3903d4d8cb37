"""`advise`: CS231n's "babysitting the learning process" heuristics, read off a `TrainingHistory`.

Every rule reads documented keys and fires on a documented threshold (the module constants below); every
message names the numbers it is based on. Keys read:

- ``steps["loss"]`` (else ``epochs["train_loss"]``): NaN/inf, divergence, no decrease; ``steps["loss"]`` at
  step 0: the initial loss against ln C (``num_classes``).
- ``"update_ratio/<leaf>"`` (else the global ``"update_ratio"``) in ``steps`` (median of the finite values
  over the last epoch's steps; when ``steps["learning_rate"]`` was annealed below ``PEAK_FRACTION`` of its
  peak, over the last epoch's worth of steps at or above it instead, since a small ratio in a cosine or
  one-cycle tail is intended) or ``epochs`` (last value): ``read_monitor``'s keys. Leaves named ``bias`` are
  skipped: biases start at zero, so their ratio is huge early on and says nothing about the learning rate. A
  ratio of exactly 0 (no update reached the leaf) and one with no finite value in the whole last epoch
  (overflowed norms: a diverged run) get their own advice.
- ``epochs["train_accuracy"]``, ``epochs["valid_accuracy"]`` (fractions; values above 1 are read as
  percentages): overfitting and underfitting, at the last epoch.
- ``"dead_fraction/<layer>"``, ``"saturated_fraction/<layer>"`` (``activation_stats(...).as_dict()``'s keys)
  in ``epochs`` (last value) or ``steps`` (median over the last epoch).

Non-finite values (stored as NaN by the history) are skipped by every rule but the NaN ones. Underfitting
advice is left out when the learning rate already looks wrong (a wrong rate explains low accuracy too).
"""

from __future__ import annotations

import math

import numpy as np

from lrtools._typing import check_integer, concrete, fail
from lrtools.diagnostics._history import TrainingHistory

RATIO_TARGET = 1e-3            # CS231n: updates about 1e-3 of the weights
RATIO_BAND = (1e-4, 1e-2)      # a median ratio outside this band (10x either side) gets advice
OVERFIT_GAP = 0.10             # train − validation accuracy above this: overfitting
UNDERFIT_GAP = 0.05            # ... at most this, with
LOW_ACCURACY = 0.70            # ... training accuracy below this: underfitting
LOSS_DECREASE_MIN = 0.01       # last-quarter median loss must be 1 % below the first quarter's
DIVERGE_FACTOR = 3.0           # last-quarter median loss above 3x the first quarter's: diverged
MIN_LOSS_POINTS = 4            # finite loss values needed to judge a trend
INITIAL_LOSS_RTOL = 0.2        # |initial loss − ln C| above 20 % of ln C: check the initialisation
DEAD_FRACTION_MAX = 0.4        # CS231n: "as much as 40 % of your network can be dead"
SATURATED_FRACTION_MAX = 0.3   # tanh/sigmoid units in their flat tails
PEAK_FRACTION = 0.5            # the ratio is judged where the learning rate is at least half its peak


def _finite(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x[np.isfinite(x)]


def _recent(history: TrainingHistory, key: str) -> tuple[float, str] | None:
  """A key's recent value: the median of its finite values over the last epoch's steps (NaN when that epoch
  recorded it but none is finite), else over all steps, else its last per-epoch value."""
  last = history.epoch_steps(-1)
  if key in last and len(last[key]):
    values = _finite(last[key])
    return (float(np.median(values)) if values.size else float("nan"),
            f"median over the last epoch's {values.size} steps")
  values = _finite(history.steps.get(key, []))
  if values.size:
    return float(np.median(values)), f"median over all {values.size} steps"
  values = np.asarray(history.epochs.get(key, []), np.float64)
  if values.size:
    return float(values[-1]), "at the last epoch"
  return None


def _loss_series(history: TrainingHistory) -> tuple[np.ndarray, np.ndarray, str] | None:
  for series, key, axis in ((history.steps, "loss", "step"), (history.epochs, "train_loss", "epoch")):
    if key in series and len(series[key]):
      return np.asarray(series[key], np.float64), np.asarray(series[axis]), axis
  return None


def _loss_advice(history: TrainingHistory) -> list[str]:
  found = _loss_series(history)
  if found is None:
    return []
  loss, at, axis = found
  bad = ~np.isfinite(loss)
  if bad.any():
    first = int(np.argmax(bad))
    return [f"The loss became NaN or inf at {axis} {int(at[first])} ({int(bad.sum())} of {loss.size} values "
            f"non-finite; last finite loss {loss[:first][-1] if first else float('nan'):.4g}): the learning rate "
            "is likely too high. Lower it 3-10x, look for log(0) or a division by zero, or wrap the optimizer in "
            "optax.apply_if_finite."]
  if loss.size < MIN_LOSS_POINTS:
    return []
  quarter = max(loss.size // 4, 1)
  start, end = float(np.median(loss[:quarter])), float(np.median(loss[-quarter:]))
  if end > DIVERGE_FACTOR * start:
    return [f"The loss diverged: its median rose from {start:.4g} (first {quarter} {axis}s) to {end:.4g} (last "
            f"{quarter}), more than {DIVERGE_FACTOR:g}x: the learning rate is likely too high."]
  if end > (1 - LOSS_DECREASE_MIN) * start:
    return [f"The loss is not decreasing: median {start:.4g} over the first {quarter} {axis}s, {end:.4g} over the "
            f"last {quarter} (less than {LOSS_DECREASE_MIN:.0%} lower): the learning rate is likely too low (or so "
            "high that the loss bounces); check the gradients (grad_check) and try a range test."]
  return []


def _initial_loss_advice(history: TrainingHistory, num_classes: int | None) -> list[str]:
  steps = history.steps
  if num_classes is None or "loss" not in steps or not len(steps["loss"]) or steps["step"][0] != 0:
    return []
  measured, expected = float(steps["loss"][0]), math.log(num_classes)
  if not np.isfinite(measured) or abs(measured - expected) <= INITIAL_LOSS_RTOL * expected:
    return []
  return [f"The initial loss {measured:.4g} is far from ln({num_classes}) = {expected:.4g}, the softmax loss of "
          f"a fresh network (off by more than {INITIAL_LOSS_RTOL:.0%}): check the initialisation (small random "
          "weights, zero biases), the loss and the labels; regularization adds to it."]


def _ratio_recent(history: TrainingHistory, key: str) -> tuple[float, str] | None:
  """Like :func:`_recent`, but where the learning rate was annealed (a cosine or one-cycle tail, a step
  decay), over the last epoch's worth of steps whose rate was at least ``PEAK_FRACTION`` of the peak: a low
  ratio at the end of an annealed schedule is intended, not a sign of a rate chosen too low."""
  lr = np.asarray(history.steps.get("learning_rate", []), np.float64)
  values = np.asarray(history.steps.get(key, []), np.float64)
  finite_lr = lr[np.isfinite(lr)]
  if values.size != lr.size or not finite_lr.size or finite_lr[-1] >= PEAK_FRACTION * finite_lr.max():
    return _recent(history, key)
  working = np.flatnonzero(np.isfinite(lr) & (lr >= PEAK_FRACTION * finite_lr.max()))
  window = max(len(next(iter(history.epoch_steps(-1).values()), [])), 1)
  picked = _finite(values[working[-window:]])
  if not picked.size:
    return _recent(history, key)
  return (float(np.median(picked)),
          f"median over the last {picked.size} steps at >= {PEAK_FRACTION:g}x the peak learning rate")


def _ratio_advice(history: TrainingHistory) -> list[str]:
  keys = sorted({k for k in (*history.steps, *history.epochs)
                 if k.startswith("update_ratio/") and k.rsplit("/", 1)[-1] != "bias"})
  keys = keys or ["update_ratio"]
  found = {key.partition("/")[2] or "all parameters": _ratio_recent(history, key) for key in keys}
  found = {name: value for name, value in found.items() if value is not None}
  groups = {"nan": [], "zero": [], "low": [], "high": []}
  for name, (value, how) in found.items():
    kind = ("nan" if not np.isfinite(value) else "zero" if value == 0 else "low" if value < RATIO_BAND[0]
            else "high" if value > RATIO_BAND[1] else None)
    if kind:
      groups[kind].append(f"{name} {value:.2g}" if kind in ("low", "high") else name)
  how = next(iter(found.values()))[1] if found else ""
  text = {
      "nan": f"The update:weight ratio is NaN or inf over the whole last epoch for {{}}: the weights or updates "
             "overflowed (or the weights are zero). The learning rate is likely far too high.",
      "zero": f"These parameters received no update ({how}: ratio 0): {{}}. Frozen, or no gradient reaches "
              "them (dead units downstream?).",
      "low": f"The update:weight ratio ({how}) is far below ~{RATIO_TARGET:g} (under {RATIO_BAND[0]:g}): {{}}. "
             "The learning rate is likely too low.",
      "high": f"The update:weight ratio ({how}) is far above ~{RATIO_TARGET:g} (over {RATIO_BAND[1]:g}): {{}}. "
              "The learning rate is likely too high."}
  return [text[kind].format(", ".join(names)) for kind, names in groups.items() if names]


def _accuracy(history: TrainingHistory, key: str) -> float | None:
  values = np.asarray(history.epochs.get(key, []), np.float64)
  if not values.size or not np.isfinite(values[-1]):
    return None
  return float(values[-1]) / (100.0 if values[-1] > 1 else 1.0)


def _gap_advice(history: TrainingHistory) -> list[str]:
  train, valid = _accuracy(history, "train_accuracy"), _accuracy(history, "valid_accuracy")
  if train is None or valid is None:
    return []
  gap = train - valid
  if gap > OVERFIT_GAP:
    return [f"Overfitting: training accuracy {train:.3f} vs validation {valid:.3f} (gap {gap:.3f} > {OVERFIT_GAP:g}). "
            "Increase regularization (L2 weight decay, dropout), get more data or augment it, or stop earlier."]
  if gap <= UNDERFIT_GAP and train < LOW_ACCURACY:
    return [f"Underfitting: training accuracy {train:.3f} and validation {valid:.3f} are close (gap {gap:.3f}) and "
            f"low (< {LOW_ACCURACY:g}). The model is likely too small: add capacity (wider or deeper layers), "
            "train longer, or reduce regularization."]
  return []


def _unit_advice(history: TrainingHistory) -> list[str]:
  out = []
  for prefix, limit, text in (
      ("dead_fraction/", DEAD_FRACTION_MAX, "dead (never active)", ),
      ("saturated_fraction/", SATURATED_FRACTION_MAX, "saturated (in the flat tails of tanh/sigmoid)")):
    bad = []
    for key in sorted({k for k in (*history.steps, *history.epochs) if k.startswith(prefix)}):
      found = _recent(history, key)
      if found is not None and found[0] > limit:
        bad.append(f"{key[len(prefix):]} {found[0]:.0%} ({found[1]})")
    if bad:
      cure = ("a lower learning rate, a better initialisation (He) or leaky ReLUs" if prefix.startswith("dead")
              else "smaller initial weights, normalized inputs or a lower learning rate")
      out.append(f"Many units are {text}, above {limit:.0%}: {', '.join(bad)}. Try {cure}.")
  return out


def advise(history: TrainingHistory, *, num_classes: int | None = None) -> list[str]:
  r"""Plain-words advice from a :class:`TrainingHistory`, CS231n's heuristics, each naming its numbers.

  .. math:: \text{e.g. } \operatorname{median}_{t \in \text{last epoch}}
            \frac{\lVert\Delta w_{\ell,t}\rVert}{\lVert w_{\ell,t}\rVert} \notin [10^{-4}, 10^{-2}]
            \;\Rightarrow\; \text{learning rate too low / too high}

  Rules (thresholds are this module's constants): the loss became NaN/inf, diverged (``DIVERGE_FACTOR``)
  or is not decreasing (``LOSS_DECREASE_MIN``); the initial loss is far from :math:`\ln C`
  (``INITIAL_LOSS_RTOL``); the update:weight ratio is outside ``RATIO_BAND`` per leaf; overfitting (train −
  validation accuracy above ``OVERFIT_GAP``); underfitting (gap at most ``UNDERFIT_GAP``, training accuracy
  below ``LOW_ACCURACY``); dead or saturated units (``DEAD_FRACTION_MAX``, ``SATURATED_FRACTION_MAX``).
  Rules whose keys are missing stay quiet; see the module docstring for the keys read.

  Args:
    history: the run's records (step records still queued on device are fetched first).
    num_classes: for the initial-loss check; default ``history.num_classes``.

  Returns:
    A list of messages, empty for a healthy run.

  Example:
    >>> import numpy as np
    >>> from lrtools.diagnostics import TrainingHistory, advise
    >>> h = TrainingHistory(num_classes=10)
    >>> h.record_steps(0, {"loss": np.linspace(2.3, 0.3, 20), "update_ratio/Dense_0/kernel": np.full(20, 2e-6)})
    >>> h.record_epoch(0, {"train_accuracy": 0.99, "valid_accuracy": 0.80})
    >>> for line in advise(h): print(line.split(". ")[0])  # first sentences; each goes on with the advice
    The update:weight ratio (median over the last epoch's 20 steps) is far below ~0.001 (under 0.0001):
    Dense_0/kernel 2e-06
    Overfitting: training accuracy 0.990 vs validation 0.800 (gap 0.190 > 0.1)

  References:
    CS231n "Neural Networks Part 3: Learning and Evaluation" (babysitting the learning process).
  """
  if not isinstance(history, TrainingHistory):
    fail("advise", "history", history, "must be a lrtools.diagnostics.TrainingHistory")
  if num_classes is not None:
    check_integer("advise", "num_classes", num_classes, 2)
    if concrete(num_classes) is None:
      fail("advise", "num_classes", num_classes, "must be concrete, not traced")
    num_classes = int(num_classes)
  history._fetch()  # what record_epoch has not fetched yet (one transfer)
  num_classes = history.num_classes if num_classes is None else num_classes
  loss, ratio, gap = _loss_advice(history), _ratio_advice(history), _gap_advice(history)
  if loss or ratio:  # a wrong learning rate explains low accuracy too: no "model too small" on top of it
    gap = [line for line in gap if not line.startswith("Underfitting")]
  return loss + _initial_loss_advice(history, num_classes) + ratio + gap + _unit_advice(history)
