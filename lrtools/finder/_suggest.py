"""Learning-rate suggestions from a range-test curve: pure ``jnp``, NaN-safe, jit- and vmap-able.

Each rule looks only at the *valid* points: those recorded before the sweep stopped (``num_steps_run``),
with a finite loss, and inside the rule's skip window. Each returns ``(lr, index)``; when no point is valid
the lr is NaN and the index −1.

The curve the rules are given matters as much as the rule: the exponential moving average that
torch-lr-finder and fastai smooth with (and that the sweep records to detect divergence) *lags* the raw
loss by about :math:`(1-w)/w` steps (19 steps for :math:`w = 0.05`, 1.5 decades of a 100-step sweep over
8 decades), so every rule applied to it lands to the right of what the raw curve shows. lrtools suggests
from :func:`centred_smoothing` instead: a centred window of the same span, no delay
(:func:`lag_free_suggestions`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lrtools._typing import Numeric, check_one_of

METHODS = ("steepest", "minimum", "valley")


def _int32(value: Numeric) -> jax.Array:
  """Index arithmetic in int32 whatever the inputs (a Python int is int64 under x64, and strict promotion
  refuses int32 with int64)."""
  return jnp.asarray(value).astype(jnp.int32)


def _valid(losses: jax.Array, num_steps_run: Numeric, skip_start: Numeric, skip_end: Numeric) -> jax.Array:
  index = jnp.arange(losses.shape[-1], dtype=jnp.int32)
  return (index >= _int32(skip_start)) & (index < _int32(num_steps_run) - _int32(skip_end)) & jnp.isfinite(losses)


def _pick(lrs, index, any_valid):
  return jnp.where(any_valid, lrs[index], jnp.nan), jnp.where(any_valid, index, -1)


def suggest_steepest(lrs: jax.Array, losses: jax.Array, num_steps_run: Numeric, skip_start: Numeric = 10,
                     skip_end: Numeric = 5):
  r"""The learning rate where the smoothed loss falls fastest against :math:`\log \eta`.

  .. math:: i^* = \arg\min_{i \in V} \frac{\partial L}{\partial \log \eta}\Big|_i,
            \qquad V = \{\text{skip\_start} \le i < n_{run} - \text{skip\_end},\ L_i \text{ finite}\}

  The slope is ``jnp.gradient`` (central differences, one-sided at the ends of the window) taken over the
  valid window only, as torch-lr-finder does after dropping its first 10 and last 5 points. One difference:
  torch-lr-finder takes the slope against the step index (``np.gradient(losses)``), this rule against
  :math:`\log\eta`. For an exponential (log-spaced) sweep, :math:`\log\eta` is an affine function of the
  step index and both pick the same point; for a linear sweep they differ (the slope against the step index
  is then the slope against :math:`\eta` itself).

  Args:
    lrs: the swept learning rates, shape ``(n,)``.
    losses: the (smoothed) losses, shape ``(n,)``; NaN past the end of the sweep is fine.
    num_steps_run: number of recorded steps.
    skip_start: points dropped at the start (noisy, nothing learned yet).
    skip_end: points dropped before the end (the divergence itself).

  Returns:
    ``(lr, index)``: NaN and −1 when fewer than two points are valid.

  Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> from lrtools.finder import suggest_steepest
    >>> lrs = jnp.logspace(-4, 0, 50); losses = 2 - jnp.tanh(3 * (jnp.log10(lrs) + 2.2))
    >>> lr, i = suggest_steepest(lrs, losses, 50)
    >>> round(float(np.log10(lr)), 2), int(i)
    (-2.2, 22)

  References:
    Smith 2017, §3.3 ("the learning rate where the loss starts to decrease fastest"); torch-lr-finder.
  """
  valid = _valid(losses, num_steps_run, skip_start, skip_end)
  log_lrs = jnp.log(lrs)
  # Central differences over the window: neighbours outside it are replaced by the point itself.
  prev_ok = jnp.concatenate([jnp.zeros((1,), bool), valid[:-1]])
  next_ok = jnp.concatenate([valid[1:], jnp.zeros((1,), bool)])
  idx = jnp.arange(lrs.shape[0], dtype=jnp.int32)
  lo = jnp.where(prev_ok, idx - 1, idx)
  hi = jnp.where(next_ok, idx + 1, idx)
  safe = jnp.where(valid, losses, 0.0)
  slope = (safe[hi] - safe[lo]) / jnp.where(hi > lo, log_lrs[hi] - log_lrs[lo], 1.0)
  slope = jnp.where(valid & (hi > lo), slope, jnp.inf)
  index = _int32(jnp.argmin(slope))
  return _pick(lrs, index, jnp.isfinite(slope[index]))


def suggest_minimum(lrs: jax.Array, losses: jax.Array, num_steps_run: Numeric, skip_start: Numeric = 0,
                    skip_end: Numeric = 0):
  r"""One tenth of the learning rate at the minimum of the smoothed loss (fastai's ``minimum``).

  .. math:: \eta^* = \eta_{i^*} / 10, \qquad i^* = \arg\min_{i \in V} L_i

  Args:
    lrs: the swept learning rates, shape ``(n,)``.
    losses: the (smoothed) losses, shape ``(n,)``.
    num_steps_run: number of recorded steps.
    skip_start: points dropped at the start.
    skip_end: points dropped before the end.

  Returns:
    ``(lr / 10, index of the minimum)``; NaN and −1 when no point is valid.

  Example:
    >>> import jax.numpy as jnp
    >>> from lrtools.finder import suggest_minimum
    >>> lr, i = suggest_minimum(jnp.array([1e-3, 1e-2, 1e-1, 1.0]), jnp.array([2.0, 1.0, 0.5, jnp.nan]), 4)
    >>> round(float(lr), 6), int(i)
    (0.01, 2)

  References:
    Smith 2017, §3.3; fastai ``lr_find`` (``SuggestionMethod.Minimum``).
  """
  valid = _valid(losses, num_steps_run, skip_start, skip_end)
  index = _int32(jnp.argmin(jnp.where(valid, losses, jnp.inf)))
  lr, index = _pick(lrs, index, jnp.any(valid))
  return lr / 10, index


def suggest_valley(lrs: jax.Array, losses: jax.Array, num_steps_run: Numeric, skip_start: Numeric = 0,
                   skip_end: Numeric = 0, halfway: str = "index"):
  r"""fastai's ``valley``: a point in the longest stretch over which the loss keeps decreasing.

  With :math:`\ell_i` the length of the longest strictly decreasing subsequence ending at :math:`i`
  (:math:`\ell_i = 1 + \max\{\ell_j : j < i,\ L_j > L_i\}`), :math:`e` the first index of the largest
  :math:`\ell`, :math:`s = e - \ell_e` and :math:`d = (e - s)/3`:

  .. math:: i^* = s + \lfloor d \rfloor + \lfloor d / 2 \rfloor

  i.e. about halfway down the valley, counted in steps (``halfway="index"``, fastai's rule).
  ``halfway="loss"`` instead picks the first point of the stretch where the loss is halfway down it,
  :math:`L_{i^*} \le (\max_{s \le j \le e} L_j + L_e)/2`: what lrtools uses on its lag-free curve, whose
  decreasing stretch starts where the loss first bends (fastai's count of steps is calibrated on a lagged
  moving average, whose stretch starts later). One deviation from fastai: when :math:`i^*` falls before the first
  valid point (a stretch of length 2 at the very start), fastai's index wraps to :math:`-1`, its last
  point; here it is clamped to the first valid point.

  Args:
    lrs: the swept learning rates, shape ``(n,)``.
    losses: the (smoothed) losses, shape ``(n,)``.
    num_steps_run: number of recorded steps.
    skip_start: points dropped at the start (fastai drops ``n // 10``).
    skip_end: points dropped before the end (fastai drops 5).
    halfway: ``"index"`` (fastai) or ``"loss"``, a static string.

  Returns:
    ``(lr, index)``; NaN and −1 when no point is valid.

  Example:
    >>> import jax.numpy as jnp
    >>> from lrtools.finder import suggest_valley
    >>> losses = jnp.array([3.0, 3.1, 2.9, 2.5, 2.0, 1.6, 1.5, 1.7, 3.0, 9.0])
    >>> lr, i = suggest_valley(jnp.logspace(-5, 0, 10), losses, 10)
    >>> int(i)
    3

  References:
    fastai ``lr_find`` (``SuggestionMethod.Valley``, by Zachary Mueller); Smith 2017, §3.3.
  """
  check_one_of("suggest_valley", "halfway", halfway, ("index", "loss"))
  n = losses.shape[-1]
  valid = _valid(losses, num_steps_run, skip_start, skip_end)
  vals = jnp.where(valid, losses, jnp.nan)  # NaN compares false: invalid points join no subsequence
  index = jnp.arange(n, dtype=jnp.int32)

  def longest_ending_at(i, lengths):
    longer = (index < i) & (vals > vals[i])
    return lengths.at[i].set(jnp.where(valid[i], 1 + jnp.max(jnp.where(longer, lengths, 0)), 0))

  lengths = jax.lax.fori_loop(jnp.int32(0), jnp.int32(n), longest_ending_at, jnp.zeros((n,), jnp.int32))
  end = _int32(jnp.argmax(lengths))  # the first index of the maximum, as fastai's running update
  start = end - lengths[end]
  sections = (end - start) // 3  # (e − s)/3 floored, as int((e − s)/3)
  pick = start + sections + ((end - start) / 3 / 2).astype(jnp.int32)
  first_valid = _int32(jnp.argmax(valid))
  pick = jnp.where(pick < first_valid, first_valid, pick)
  if halfway == "loss":
    stretch = valid & (index >= jnp.maximum(start, first_valid)) & (index <= end)
    top = jnp.max(jnp.where(stretch, losses, -jnp.inf))
    below = stretch & (losses <= (top + losses[end]) / 2)
    pick = _int32(jnp.argmax(below))
  return _pick(lrs, pick, jnp.any(valid))


def conventional_suggestions(lrs: jax.Array, losses: jax.Array, num_steps_run: Numeric,
                             valley_halfway: str = "index") -> dict:
  """All three rules with their conventional windows, ``{method: (lr, index)}``: torch-lr-finder's for
  ``steepest`` (skip the first 10 and last 5 points), fastai's for ``minimum`` and ``valley`` (skip the
  first ``n // 10`` and last 5)."""
  n = losses.shape[-1]
  return {"steepest": suggest_steepest(lrs, losses, num_steps_run, 10, 5),
          "minimum": suggest_minimum(lrs, losses, num_steps_run, n // 10, 5),
          "valley": suggest_valley(lrs, losses, num_steps_run, n // 10, 5, valley_halfway)}


def centred_smoothing(losses: jax.Array, num_steps_run: Numeric, smoothing: Numeric = 0.05) -> jax.Array:
  r"""The raw range-test losses smoothed by a centred moving average: no delay, where the exponential
  average of weight ``smoothing`` lags by :math:`(1-w)/w` steps.

  With :math:`V` the finite points recorded before the stop, :math:`f \le i \le l` their first and last,
  :math:`h = \lfloor (1-w)/(2w) + 1/2 \rfloor` (0 when :math:`w = 0`; 10 for
  :math:`w = 0.05`) and a half-width that shrinks
  symmetrically near the ends, :math:`h_i = \min(h, i - f, l - i)`:

  .. math:: \tilde L_i = \operatorname{mean}\{\min(L_j, c) : |j - i| \le h_i,\ j \in V\},
            \qquad c = \max\{L_j : j \in V,\ j \le \arg\min_V L\}

  The window: the exponential average :math:`\bar L_i = w L_i + (1-w)\bar L_{i-1}` averages a stretch
  whose mean age is :math:`(1-w)/w` steps (19 for :math:`w = 0.05`) and reports it at the stretch's end,
  hence its delay; the centred window averages a stretch of the same length, :math:`2h + 1 \approx
  (1-w)/w + 1` points, and reports it at its middle. A window cut asymmetrically at an end would bring a
  delay back, hence the shrinking :math:`h_i` (the last recorded point is the raw loss). The cap :math:`c`
  (the highest loss before the lowest) keeps the diverging tail (losses of 10³ and more) from dragging up
  every window that reaches it. What no centred window avoids: near a sharp valley followed by divergence,
  the windows that reach the capped tail fill the valley, so the smoothed minimum sits left of the raw one
  (on the README's MLP, 0.14 against about 0.5). Ending the windows at the divergence instead was tried:
  it brought the raw noise back just before it, and ``steepest`` over 5 CNN seeds spread over 1.2 decades.

  Args:
    losses: the *raw* losses, shape ``(n,)``; NaN past the end of the sweep is fine.
    num_steps_run: number of recorded steps.
    smoothing: the moving average's weight :math:`w \in [0, 1)` whose span to match.

  Returns:
    The smoothed losses, shape ``(n,)``, NaN where the loss is not valid.

  Example:
    >>> import jax.numpy as jnp
    >>> from lrtools.finder._suggest import centred_smoothing
    >>> losses = jnp.array([5.0, 3.0, 4.0, 1.0, 2.0, 90.0, jnp.nan])  # diverged at step 5
    >>> smooth = centred_smoothing(losses, 6, smoothing=1/3)  # h = 1; 90 capped at 5, the highest before 1
    >>> [round(float(v), 3) for v in smooth]
    [5.0, 4.0, 2.667, 2.333, 2.667, 5.0, nan]

  References:
    Smith 2017, §3.3; torch-lr-finder and fastai ``lr_find`` (the exponential average this replaces for
    the suggestions).
  """
  n = losses.shape[-1]
  index = jnp.arange(n, dtype=jnp.int32)
  valid = (index < _int32(num_steps_run)) & jnp.isfinite(losses)
  first = _int32(jnp.argmax(valid))
  last = _int32(n - 1 - jnp.argmax(valid[::-1]))
  lowest = _int32(jnp.argmin(jnp.where(valid, losses, jnp.inf)))
  cap = jnp.max(jnp.where(valid & (index <= lowest), losses, -jnp.inf))
  w = jnp.asarray(smoothing, losses.dtype)
  width = jnp.where(w > 0, jnp.minimum((1 - w) / (2 * jnp.where(w > 0, w, 1)), n), 0)
  # Rounded half up, with a margin for the rounding of w itself: 9.5 (w = 0.05) is 9.4999… in float32.
  half = jnp.minimum(_int32(jnp.floor(width + 0.501)), jnp.minimum(index - first, last - index))
  half = jnp.maximum(half, 0)
  # Sums over windows from cumulative sums, taken relative to the first valid loss (precision).
  base = losses[first]
  values = jnp.where(valid, jnp.minimum(losses, cap) - base, 0)
  zero = jnp.zeros((1,), losses.dtype)
  sums = jnp.concatenate([zero, jnp.cumsum(values)])
  counts = jnp.concatenate([jnp.zeros((1,), jnp.int32), jnp.cumsum(valid.astype(jnp.int32))])
  lo, hi = jnp.clip(index - half, 0, n), jnp.clip(index + half + 1, 0, n)
  count = counts[hi] - counts[lo]
  mean = (sums[hi] - sums[lo]) / jnp.maximum(count, 1).astype(losses.dtype) + base
  return jnp.where(valid & (count > 0), mean, jnp.nan)


def lag_free_suggestions(lrs: jax.Array, losses: jax.Array, num_steps_run: Numeric,
                         smoothing: Numeric = 0.05) -> dict:
  """:func:`conventional_suggestions` of the :func:`centred_smoothing` of the raw ``losses`` (``valley``
  halfway down in loss): the suggestions lrtools gives, ``{method: (lr, index)}``."""
  curve = centred_smoothing(losses, num_steps_run, smoothing)
  return conventional_suggestions(lrs, curve, num_steps_run, "loss")


def _smooth_and_suggest(lrs, losses, num_steps_run, smoothing):
  curve = centred_smoothing(losses, num_steps_run, smoothing)
  return curve, conventional_suggestions(lrs, curve, num_steps_run, "loss")


def sweep_suggestions(lrs: jax.Array, losses: jax.Array, smoothed_losses: jax.Array, num_steps_run: Numeric,
                      smoothing: Numeric) -> dict:
  """What a sweep's own compiled program computes for its result (no second compilation afterwards):
  ``{"centred": (lag-free curve, lag-free suggestions), "recorded": the rules on the recorded average,
  "smoothing": the weight the lag-free window was made from}``."""
  return {"centred": _smooth_and_suggest(lrs, losses, num_steps_run, smoothing),
          "recorded": conventional_suggestions(lrs, smoothed_losses, num_steps_run),
          "smoothing": jnp.asarray(smoothing)}


# One compiled program for the three rules (three would triple the compile time of a one-shot run).
suggest_all = jax.jit(conventional_suggestions)
suggest_all_batched = jax.jit(jax.vmap(conventional_suggestions, in_axes=(None, 0, 0)))
# The lag-free curves of every repeat and their suggestions, in one program (rows: repeats).
smooth_and_suggest_batched = jax.jit(jax.vmap(_smooth_and_suggest, in_axes=(None, 0, 0, None)))
