"""Independent NumPy (float64) implementations of every formula, written from the papers and seed texts.

They are deliberately naive (explicit loops, one step or one cycle at a time) so that they share no code
or trick with the JAX implementations they check.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


# ---------------------------------------------------------------------------------------------------------
# Schedules. Each takes an iterable of integer steps and returns a float64 array, one value per step.
# ---------------------------------------------------------------------------------------------------------


def constant(ts, value):
  return np.array([float(value) for _ in ts])


def step_decay(ts, init_value, step_size, factor, min_value):
  """CS231n "reduce the learning rate by a factor every few epochs"; D2L FactorScheduler with a floor."""
  return np.array([max(init_value * factor ** (t // step_size), min_value) for t in ts])


def multistep(ts, init_value, milestones, factor):
  """D2L MultiFactorScheduler: multiply by ``factor`` at each milestone reached."""
  return np.array([init_value * factor ** sum(1 for m in milestones if t >= m) for t in ts])


def exponential_decay(ts, init_value, rate):
  """CS231n: a = a0 e^{-kt}."""
  return np.array([init_value * math.exp(-rate * t) for t in ts])


def inverse_time_decay(ts, init_value, rate):
  """CS231n: a = a0 / (1 + kt)."""
  return np.array([init_value / (1 + rate * t) for t in ts])


def polynomial_decay(ts, init_value, end_value, decay_steps, power):
  return np.array([(init_value - end_value) * (1 - min(t, decay_steps) / decay_steps) ** power + end_value
                   for t in ts])


def cosine_decay(ts, init_value, decay_steps, end_value):
  """D2L CosineScheduler (without warmup)."""
  return np.array([end_value + (init_value - end_value) / 2 * (1 + math.cos(math.pi * min(t, decay_steps) / decay_steps))
                   for t in ts])


def clr_smith(ts, base, max_value, step_size):
  """Smith 2017, section 3.1, the symmetric triangular policy exactly as printed in the paper."""
  out = []
  for t in ts:
    cycle = math.floor(1 + t / (2 * step_size))
    x = abs(t / step_size - 2 * cycle + 1)
    out.append(base + (max_value - base) * max(0.0, 1 - x))
  return np.array(out)


def cyclic_lr(ts, base, max_value, step_size_up, step_size_down, mode, gamma, momentum=False):
  """The widely used CyclicLR rule, transcribed: asymmetric cycles and the three scale functions."""
  total = step_size_up + step_size_down
  ratio = step_size_up / total
  out = []
  for t in ts:
    cycle = math.floor(1 + t / total)
    x = 1.0 + t / total - cycle
    scale = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
    if mode == "triangular2":
      amplitude = 0.5 ** (cycle - 1)
    elif mode == "exp_range":
      amplitude = gamma ** t
    else:
      amplitude = 1.0
    height = (max_value - base) * scale * amplitude
    out.append(max_value - height if momentum else base + height)
  return np.array(out)


def one_cycle(ts, total_steps, start_value, peak_value, final_value, pct_start, anneal, three_phase,
              second_start=None):
  """The widely used OneCycleLR rule, transcribed: phases end at real (unrounded) steps.

  Values go start → peak → (second_start →) final, as the LR does (initial → max → initial → min); for
  momentum pass start=max_m, peak=base_m, second_start=max_m, final=max_m.
  """
  if three_phase:
    phases = [(pct_start * total_steps - 1, start_value, peak_value),
              (2 * pct_start * total_steps - 2, peak_value, start_value if second_start is None else second_start),
              (total_steps - 1, start_value if second_start is None else second_start, final_value)]
  else:
    phases = [(pct_start * total_steps - 1, start_value, peak_value), (total_steps - 1, peak_value, final_value)]

  def anneal_fn(a, b, pct):
    if anneal == "cos":
      return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
    return (b - a) * pct + a

  out = []
  for t in ts:
    start_step = 0.0
    for i, (end_step, a, b) in enumerate(phases):
      if t <= end_step or i == len(phases) - 1:
        pct = min((t - start_step) / (end_step - start_step), 1.0)  # lrtools holds the end value after T-1
        out.append(anneal_fn(a, b, pct))
        break
      start_step = end_step
  return np.array(out)


def sgdr_restarts(cycle_steps, cycle_mult, last):
  """Restart steps S_0 = 0 < S_1 < … up to the first one past ``last``, stepping through the cycles in exact
  rational arithmetic: cycle i nominally lasts T_0·m^i (m read as the decimal the user wrote, so 1.3 is
  13/10) and restarts at the first integer step at or after the real boundary, S_i = ⌈T_0 Σ_{j<i} m^j⌉."""
  if cycle_mult == 1:
    return None  # restarts every T_0 steps: S_i = i·T_0, handled by integer division
  m = Fraction(repr(float(cycle_mult)))
  boundary, length, starts = Fraction(0), Fraction(int(cycle_steps)), [0]
  while starts[-1] <= last:
    boundary += length
    length *= m
    starts.append(math.ceil(boundary))
  return np.array(starts, dtype=object)


def sgdr(ts, max_value, cycle_steps, cycle_mult, min_value, max_decay, min_decay):
  """Loshchilov & Hutter 2017, eq. 5: cycle i runs from restart S_i for T_i = S_{i+1} − S_i steps (T_0 m^i for
  integer m), with t_cur = t − S_i and the cycle's bounds decayed i times. One cycle at a time."""
  ts = np.asarray(list(ts), np.int64)
  out = np.full(ts.shape, np.nan)
  last = int(ts.max()) if ts.size else 0
  starts = sgdr_restarts(cycle_steps, cycle_mult, last)
  if starts is None:  # m = 1: every cycle lasts T_0 steps
    i, first, length = ts // cycle_steps, (ts // cycle_steps) * cycle_steps, cycle_steps
  else:
    starts = np.array([int(s) for s in starts], np.int64)
    i = np.searchsorted(starts, ts, side="right") - 1
    first, length = starts[i], starts[i + 1] - starts[i]
  i = i.astype(np.float64)
  high, low = max_value * max_decay ** i, min_value * min_decay ** i
  out[:] = low + 0.5 * (high - low) * (1 + np.cos(np.pi * (ts - first) / length))
  return out


def warmup(ts, schedule_values, warmup_steps, init_value):
  """Linear warmup to s(0), then s(t - W); ``schedule_values(steps)`` is a reference schedule."""
  ts = list(ts)
  peak = schedule_values([0])[0]
  after = schedule_values([max(t - warmup_steps, 0) for t in ts])
  return np.array([init_value + (peak - init_value) * t / warmup_steps if t < warmup_steps else a
                   for t, a in zip(ts, after)])


def wsd(ts, peak_value, total_steps, warmup_steps, decay_steps, init_value, end_value, warmup_shape,
        decay_shape):
  """Warmup-stable-decay (Hägele et al. 2024; Hu et al. 2024): ramp init → peak over W steps, hold, then cool
  down over the last D steps to end_value with shape s(x), x = (t − (T − D))/D; end_value from step T on."""
  shapes = {"linear": lambda x: 1 - x, "1-sqrt": lambda x: 1 - math.sqrt(x),
            "cosine": lambda x: 0.5 * (1 + math.cos(math.pi * x)), "square": lambda x: 1 - x * x}
  if decay_steps is None:
    decay_steps = total_steps // 5
  out = []
  for t in ts:
    if t < warmup_steps:
      x = t / warmup_steps
      ramp = x if warmup_shape == "linear" else 0.5 * (1 - math.cos(math.pi * x))
      out.append(init_value + (peak_value - init_value) * ramp)
    elif t >= total_steps:
      out.append(end_value)
    elif t < total_steps - decay_steps:
      out.append(peak_value)
    else:
      x = (t - (total_steps - decay_steps)) / decay_steps
      out.append(end_value + (peak_value - end_value) * shapes[decay_shape](x))
  return np.array(out)


# ---------------------------------------------------------------------------------------------------------
# LR range test (Smith 2017 §3.3; torch-lr-finder and fastai conventions).
# ---------------------------------------------------------------------------------------------------------


def range_test_linear(w, b, xs, ys, lrs, momentum=0.0, smoothing=0.05, debias=False, diverge_threshold=5.0,
                      val=None, offset=0.0):
  """Range test of least squares ``mean((x·w + b − y)²)`` with heavy-ball SGD (``v = g + μv; θ −= η v``).

  ``xs, ys``: stacked batches, cycled. Returns (losses, smoothed, num_steps_run, diverged) with NaN after
  the stop, following torch-lr-finder's loop: record, smooth, track the best, stop on divergence.
  """
  w, b = np.array(w, np.float64), float(b)
  vw, vb = np.zeros_like(w), 0.0
  n = len(lrs)
  losses, smoothed = np.full(n, np.nan), np.full(n, np.nan)
  avg = best = 0.0
  for i, lr in enumerate(lrs):
    x, y = xs[i % len(xs)], ys[i % len(ys)]
    r = x @ w + b - y
    loss = float(np.mean(r ** 2)) + offset
    gw, gb = 2 * x.T @ r / len(y), 2 * float(np.mean(r))
    vw, vb = gw + momentum * vw, gb + momentum * vb
    w, b = w - lr * vw, b - lr * vb
    if val is not None:
      vx, vy = val
      loss = float(np.mean((vx @ w + b - vy) ** 2)) + offset
    weight = smoothing if smoothing > 0 else 1.0
    if debias:
      avg = (1 - weight) * avg + weight * loss
      smooth = avg / (1 - (1 - weight) ** (i + 1))
    else:
      avg = loss if i == 0 else weight * loss + (1 - weight) * avg
      smooth = avg
    best = smooth if i == 0 else min(best, smooth)
    losses[i], smoothed[i] = loss, smooth
    if not math.isfinite(loss) or smooth > best + (diverge_threshold - 1) * abs(best):
      return losses, smoothed, i + 1, True
  return losses, smoothed, n, False


def steepest_slopes(lrs, losses, num_run, skip_start=10, skip_end=5):
  """torch-lr-finder's slopes: drop the first ``skip_start`` and last ``skip_end`` points, then
  ``np.gradient`` of the window — here against log(lr), which for a log-spaced sweep is the step index up to
  an affine change. Returns ``(first index of the window, slopes)``, or None without two finite points."""
  lrs, losses = np.asarray(lrs, np.float64)[:num_run], np.asarray(losses, np.float64)[:num_run]
  lo, hi = skip_start, num_run - skip_end
  if hi - lo < 2:
    return None
  window = losses[lo:hi]
  if not np.all(np.isfinite(window)):
    return None
  return lo, np.gradient(window, np.log(lrs[lo:hi]))


def suggest_steepest(lrs, losses, num_run, skip_start=10, skip_end=5):
  """torch-lr-finder's ``steepest``: the index of the most negative slope (see :func:`steepest_slopes`)."""
  found = steepest_slopes(lrs, losses, num_run, skip_start, skip_end)
  return None if found is None else found[0] + int(np.argmin(found[1]))


def suggest_minimum(losses, num_run, skip_start=0, skip_end=0):
  """fastai ``minimum``: argmin of the loss over the window (the LR returned is a tenth of its LR)."""
  window = np.asarray(losses)[skip_start:max(num_run - skip_end, skip_start)]
  if not np.isfinite(window).any():
    return None
  return skip_start + int(np.nanargmin(window))


def suggest_valley(losses, num_run, skip_start=0, skip_end=0):
  """fastai ``valley``, transcribed loop for loop, on the window; a never-decreasing curve (fastai's −1)
  is clamped to the window's first point as lrtools documents."""
  losses = list(np.asarray(losses)[skip_start:max(num_run - skip_end, skip_start)])
  n = len(losses)
  if n == 0:
    return None
  max_start, max_end = _longest_decreasing_stretch(losses)
  sections = (max_end - max_start) / 3
  idx = max_start + int(sections) + int(sections / 2)
  return skip_start + max(idx, 0)


def _longest_decreasing_stretch(losses):
  """fastai's valley: the end of the longest decreasing subsequence and its start, as fastai computes them."""
  max_start, max_end = 0, 0
  lds = [1] * len(losses)
  for i in range(1, len(losses)):
    for j in range(0, i):
      if losses[i] < losses[j] and lds[i] < lds[j] + 1:
        lds[i] = lds[j] + 1
      if lds[max_end] < lds[i]:
        max_end = i
        max_start = max_end - lds[max_end]
  return max_start, max_end


def lag_free_suggestions(lrs, losses, num_run, smoothing=0.05):
  """lrtools' suggestions without lag, written from the documented rule, loop by loop in float64.

  The curve: cap the raw losses at the highest one recorded up to the lowest; then at each finite point i
  (of those before ``num_run``, first f, last l), the mean of the capped finite losses within
  ``min(⌊(1 − w)/(2w) + 1/2⌋, i − f, l − i)`` steps (half up) either side. The rules on that curve, with their
  conventional windows: torch-lr-finder's steepest (first 10 and last 5 dropped), fastai's minimum (first
  ``n // 10`` and last 5 dropped) and fastai's valley stretch (same window) with the point where the loss is
  halfway down it. Returns ``(curve, {method: index or None})``.
  """
  lrs, losses = np.asarray(lrs, np.float64), np.asarray(losses, np.float64)
  n = len(losses)
  ok = [i for i in range(n) if i < num_run and math.isfinite(losses[i])]
  curve = np.full(n, np.nan)
  if ok:
    lowest = min(ok, key=lambda i: losses[i])
    cap = max(losses[i] for i in ok if i <= lowest)
    first, last = ok[0], ok[-1]
    half = 0 if smoothing == 0 else math.floor(min((1 - smoothing) / (2 * smoothing), n) + 0.501)
    for i in ok:
      h = max(min(half, i - first, last - i), 0)
      window = [min(losses[j], cap) for j in range(i - h, i + h + 1) if j in ok]
      curve[i] = sum(window) / len(window)
  found = {"steepest": suggest_steepest(lrs, curve, num_run, 10, 5),
           "minimum": suggest_minimum(curve, num_run, n // 10, 5)}
  # valley: fastai's stretch (s, e) on the window, then the first point of it halfway down in loss.
  lo, hi = n // 10, max(num_run - 5, n // 10)
  window = [curve[i] for i in range(lo, hi)]
  valley = None
  if any(math.isfinite(v) for v in window):
    max_start, max_end = _longest_decreasing_stretch(window)
    stretch = range(max(max_start, 0), max_end + 1)
    top = max(window[k] for k in stretch if math.isfinite(window[k]))
    valley = lo + next(k for k in stretch if window[k] <= (top + window[max_end]) / 2)
  found["valley"] = valley
  return curve, found


# ---------------------------------------------------------------------------------------------------------
# Optimizers and transforms (CS231n "Neural Networks 3", D2L ch. 11, the papers), one step at a time.
# Every optimizer runs ``num_steps`` steps of ``x <- update(x, grad(x, t))`` and returns the trajectory,
# shape ``(num_steps + 1, dim)``. A hyperparameter is a number or a per-step sequence. Complex ``x0`` runs
# in complex128 with squared gradients ``|g|²`` (optax's convention for complex parameters; for a real g
# it is g²). Weight decay ``wd`` (with ``mask``, a boolean per coordinate, True where it applies) follows
# PyTorch: ``SGD(weight_decay)`` adds ``wd·x`` to the gradient; ``AdamW`` first shrinks ``x <- x − lr·wd·x``,
# then takes the Adam step; momentum/Nesterov decay decoupled (SGDW, Loshchilov & Hutter 2019, Alg. 1).
# ---------------------------------------------------------------------------------------------------------


def at(value, t):
  """A hyperparameter at step ``t``: a number, or entry ``t`` of a per-step sequence."""
  return float(value[t]) if np.ndim(value) else float(value)


def _run(step, grad, x0, num_steps):
  x = np.array(x0, dtype=np.result_type(np.asarray(x0), np.float64))
  path = [x.copy()]
  for t in range(num_steps):
    x = step(x, grad(x, t), t)
    path.append(x.copy())
  return np.stack(path)


def _decayed(x0, mask):
  """1.0 where weight decay applies, 0.0 elsewhere."""
  return np.ones(np.shape(x0)) if mask is None else np.asarray(mask, np.float64)


def sgd(grad, x0, num_steps, lr, weight_decay=0.0, mask=None):
  """torch.optim.SGD(lr, weight_decay=wd), momentum 0: dx += wd·x; x −= η·dx."""
  on = _decayed(x0, mask)

  def step(x, g, t):
    g = g + at(weight_decay, t) * on * x
    return x - at(lr, t) * g

  return _run(step, grad, x0, num_steps)


def momentum(grad, x0, num_steps, lr, mu, lr_in_velocity=True, weight_decay=0.0, mask=None):
  """CS231n: v = μv − η·dx; x += v.  D2L: v = μv + dx; x −= η·v.  SGDW: then x −= η·wd·x_old."""
  v = np.zeros(np.shape(x0))
  on = _decayed(x0, mask)

  def step(x, g, t):
    nonlocal v
    shrink = at(lr, t) * at(weight_decay, t) * on * x
    if lr_in_velocity:
      v = at(mu, t) * v - at(lr, t) * g
      return x + v - shrink
    v = at(mu, t) * v + g
    return x - at(lr, t) * v - shrink

  return _run(step, grad, x0, num_steps)


def nesterov(grad, x0, num_steps, lr, mu, lr_in_velocity=True, weight_decay=0.0, mask=None):
  """CS231n: v_prev = v; v = μv − η·dx; x += −μ·v_prev + (1 + μ)·v.
  Rate outside (optax/PyTorch): v = μv + dx; x −= η·(dx + μ·v).  SGDW: then x −= η·wd·x_old."""
  v = np.zeros(np.shape(x0))
  on = _decayed(x0, mask)

  def step(x, g, t):
    nonlocal v
    m = at(mu, t)
    shrink = at(lr, t) * at(weight_decay, t) * on * x
    if lr_in_velocity:
      v_prev = v
      v = m * v - at(lr, t) * g
      return x - m * v_prev + (1 + m) * v - shrink
    v = m * v + g
    return x - at(lr, t) * (g + m * v) - shrink

  return _run(step, grad, x0, num_steps)


def adagrad(grad, x0, num_steps, lr, eps=1e-8, initial_accumulator_value=0.0):
  """cache += dx**2; x += −η·dx / (sqrt(cache) + eps)."""
  cache = np.full(np.shape(x0), float(initial_accumulator_value))

  def step(x, g, t):
    nonlocal cache
    cache = cache + np.abs(g) ** 2
    return x - at(lr, t) * g / (np.sqrt(cache) + at(eps, t))

  return _run(step, grad, x0, num_steps)


def rmsprop(grad, x0, num_steps, lr, decay=0.9, eps=1e-8):
  """cache = decay·cache + (1 − decay)·dx**2; x += −η·dx / (sqrt(cache) + eps)."""
  cache = np.zeros(np.shape(x0))

  def step(x, g, t):
    nonlocal cache
    d = at(decay, t)
    cache = d * cache + (1 - d) * np.abs(g) ** 2
    return x - at(lr, t) * g / (np.sqrt(cache) + at(eps, t))

  return _run(step, grad, x0, num_steps)


def adadelta(grad, x0, num_steps, lr=1.0, rho=0.9, eps=1e-6):
  """D2L 11.9: s = ρs + (1−ρ)g²; g' = sqrt((Δx + ε)/(s + ε))·g; Δx = ρΔx + (1−ρ)g'²; x −= η·g'."""
  s = np.zeros(np.shape(x0))
  delta = np.zeros(np.shape(x0))

  def step(x, g, t):
    nonlocal s, delta
    r, e = at(rho, t), at(eps, t)
    s = r * s + (1 - r) * np.abs(g) ** 2
    g_rescaled = np.sqrt(delta + e) / np.sqrt(s + e) * g
    delta = r * delta + (1 - r) * np.abs(g_rescaled) ** 2
    return x - at(lr, t) * g_rescaled

  return _run(step, grad, x0, num_steps)


def adam(grad, x0, num_steps, lr, b1=0.9, b2=0.999, eps=1e-8, bias_correction=True, weight_decay=0.0,
         mask=None):
  """CS231n full form: m = β1·m + (1−β1)·dx; mt = m/(1−β1**t); v likewise; x += −η·mt/(sqrt(vt)+eps).
  A scheduled β divides by 1 − ∏ of the values used (1 − β**t for a constant β).
  torch.optim.AdamW: first x *= 1 − η·wd (where ``mask``), then the Adam step from the gradient at the
  old x."""
  m = np.zeros(np.shape(x0))
  v = np.zeros(np.shape(x0))
  prod1 = prod2 = 1.0
  on = _decayed(x0, mask)

  def step(x, g, t):
    nonlocal m, v, prod1, prod2
    x = x * (1 - at(lr, t) * at(weight_decay, t) * on)
    beta1, beta2 = at(b1, t), at(b2, t)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * np.abs(g) ** 2
    if bias_correction:
      prod1 = prod1 * beta1 if np.ndim(b1) else beta1 ** (t + 1)
      prod2 = prod2 * beta2 if np.ndim(b2) else beta2 ** (t + 1)
      mt, vt = m / (1 - prod1), v / (1 - prod2)
    else:
      mt, vt = m, v
    return x - at(lr, t) * mt / (np.sqrt(vt) + at(eps, t))

  return _run(step, grad, x0, num_steps)


def yogi(grad, x0, num_steps, lr, b1=0.9, b2=0.999, eps=1e-3):
  """D2L 11.10.3: s = s + (1 − β2)·g²·sign(g² − s), states at zero, both moments bias-corrected."""
  m = np.zeros(np.shape(x0))
  s = np.zeros(np.shape(x0))
  prod1 = prod2 = 1.0

  def step(x, g, t):
    nonlocal m, s, prod1, prod2
    beta1, beta2 = at(b1, t), at(b2, t)
    m = beta1 * m + (1 - beta1) * g
    g2 = np.abs(g) ** 2
    s = s + (1 - beta2) * g2 * np.sign(g2 - s)
    prod1 = prod1 * beta1 if np.ndim(b1) else beta1 ** (t + 1)
    prod2 = prod2 * beta2 if np.ndim(b2) else beta2 ** (t + 1)
    return x - at(lr, t) * (m / (1 - prod1)) / (np.sqrt(s / (1 - prod2)) + at(eps, t))

  return _run(step, grad, x0, num_steps)


def reduce_on_plateau(metrics, factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                      mode="min", cooldown=0, min_scale=0.0):
  """The multiplier after each evaluation of the widely used ReduceLROnPlateau rule, transcribed as a
  class would run it, with the relative threshold taken on |best| (correct for negative metrics):
  min/rel improves iff a < best − threshold·|best|; max/rel iff a > best + threshold·|best|. A
  non-finite metric (NaN, ±inf) is a bad evaluation (lrtools' choice: it never becomes best)."""
  best = math.inf if mode == "min" else -math.inf
  num_bad = 0
  cooldown_counter = 0
  scale = 1.0
  scales = []
  for a in metrics:
    a = float(a)
    if not math.isfinite(a):
      better = False
    elif math.isinf(best):
      better = a < best if mode == "min" else a > best
    elif mode == "min":
      better = a < (best - threshold * abs(best) if threshold_mode == "rel" else best - threshold)
    else:
      better = a > (best + threshold * abs(best) if threshold_mode == "rel" else best + threshold)
    if better:
      best = a
      num_bad = 0
    else:
      num_bad += 1
    if cooldown_counter > 0:
      cooldown_counter -= 1
      num_bad = 0
    if num_bad > patience:
      scale = max(scale * factor, min_scale)
      cooldown_counter = cooldown
      num_bad = 0
    scales.append(scale)
  return np.array(scales)


def ema_average(iterates, decay, debias=True, start_step=0, weights=False):
  """Exponential average of ``iterates[k]`` (the parameters after step k; iterates[0] the initial ones)
  over k > start_step, reported after each step k ≥ 1. Debiased: the zero-started average divided by
  1 − d**n. Not debiased: started from the parameters at step ``start_step``. Before any step is
  averaged, the average is the current parameters. A per-step ``decay`` sequence is indexed by k − 1.
  With ``weights``, also the weight w_k of each step written as x̄_k = x̄_{k−1} + w_k (x_k − x̄_{k−1})
  (1 where the average follows the parameters), from which tests bound rounding errors."""
  out, ws = [], []
  biased = np.zeros_like(np.asarray(iterates[0], np.float64))
  plain = np.asarray(iterates[0], np.float64)
  prod = 1.0
  for k in range(1, len(iterates)):
    x = np.asarray(iterates[k], np.float64)
    d = at(decay, k - 1)
    if k <= start_step:
      plain = x
      out.append(x)
      ws.append(1.0)
      continue
    if debias:
      biased = d * biased + (1 - d) * x
      prod = prod * d if np.ndim(decay) else d ** (k - start_step)
      out.append(biased / (1 - prod))
      ws.append((1 - d) / (1 - prod))
    else:
      plain = d * plain + (1 - d) * x
      out.append(plain)
      ws.append(1 - d)
  return (np.stack(out), np.array(ws)) if weights else np.stack(out)


def polyak_average(iterates, start_step=0, every=1, weights=False):
  """Equal-weight mean of the iterates k > start_step with (k − start_step) divisible by ``every``,
  reported after each step k ≥ 1; before the first such iterate, the current parameters. With
  ``weights``, also the weight of each step as in :func:`ema_average` (1/n, 0 when not averaged)."""
  out, ws = [], []
  chosen = []
  for k in range(1, len(iterates)):
    x = np.asarray(iterates[k], np.float64)
    if k > start_step and (k - start_step) % every == 0:
      chosen.append(x)
      ws.append(1 / len(chosen))
    else:
      ws.append(0.0 if chosen else 1.0)
    out.append(np.mean(chosen, axis=0) if chosen else x)
  return (np.stack(out), np.array(ws)) if weights else np.stack(out)


# ---------------------------------------------------------------------------------------------------------
# Ensembles (Huang et al. 2017 snapshot ensembles; CS231n "Neural Networks Part 3", model ensembles).
# ---------------------------------------------------------------------------------------------------------


def sgdr_cycle_ends(cycle_steps, cycle_mult, num_steps):
  """The last step S_{i+1} − 1 of every SGDR cycle whose restart S_{i+1} is at most ``num_steps`` (the
  restart must be seen to end the cycle), from :func:`sgdr_restarts`' exact rational restarts."""
  if cycle_mult == 1:
    return [s - 1 for s in range(cycle_steps, num_steps + 1, cycle_steps)]
  starts = [int(s) for s in sgdr_restarts(cycle_steps, cycle_mult, num_steps)]
  return [s - 1 for s in starts[1:] if s <= num_steps]


def snapshot_collect(iterates, ends, num_snapshots):
  """A naive snapshot collector: ``iterates[k]`` are the parameters after step k; after every step in
  ``ends`` append a copy, then keep the last ``num_snapshots``. Returns (steps, snapshots), oldest first."""
  kept = []
  for k, x in enumerate(iterates):
    if k in set(int(e) for e in ends):
      kept.append((k, np.array(x, dtype=np.float64)))
      while len(kept) > num_snapshots:
        kept.pop(0)
  return [k for k, _ in kept], [x for _, x in kept]


def ensemble_average(logits, method):
  """Average over members (axis 0) of the softmax probabilities (``mean_probs``) or of the logits
  (``mean_logits``), in float64, one member at a time."""
  logits = np.asarray(logits, np.float64)
  total = np.zeros(logits.shape[1:])
  for member in logits:
    if method == "mean_probs":
      e = np.exp(member - member.max(axis=-1, keepdims=True))
      total += e / e.sum(axis=-1, keepdims=True)
    else:
      total += member
  return total / len(logits)


# ---------------------------------------------------------------------------------------------------------
# Diagnostics: activation statistics and loss-landscape slices (issue 9, activations + landscape)
# ---------------------------------------------------------------------------------------------------------

def activation_stats_reference(a, kind="none", zero_tol=0.0, saturation=0.99, bins=30):
  """Textbook statistics of one layer's activations ``a`` (already through the nonlinearity), float64:
  over the finite values, mean and (population) std; zero fraction |a| <= tol over all values; dead units:
  the last axis' units with |a| <= tol for every example and position; saturation |a| >= s (tanh) or
  a <= 1 − s or a >= s (sigmoid); NaN/inf counted apart and never zero or saturated; histogram of the finite
  values in ``bins`` equal bins between their min and max (np.histogram)."""
  a = np.asarray(a, np.float64)
  units = a.reshape(-1, a.shape[-1]) if a.ndim >= 2 else a.reshape(-1, 1)
  finite = np.isfinite(units)
  v = units[finite]
  zero = finite & (np.abs(np.where(finite, units, 1.0)) <= zero_tol)
  if kind == "tanh":
    sat = finite & (np.abs(np.where(finite, units, 0.0)) >= saturation)
  elif kind == "sigmoid":
    u = np.where(finite, units, 0.5)
    sat = finite & ((u >= saturation) | (u <= 1 - saturation))
  else:
    sat = np.zeros(units.shape, bool)
  lo, hi = (v.min(), v.max()) if v.size else (0.0, 1.0)
  if hi <= lo:
    lo, hi = lo - 0.5, hi + 0.5
  counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
  return {"mean": v.mean() if v.size else 0.0, "std": v.std() if v.size else 0.0, "zero_fraction": zero.mean(),
          "dead_fraction": np.all(zero, axis=0).mean(), "saturated_fraction": sat.mean(),
          "nonfinite_fraction": (~finite).mean(), "histogram": counts, "bin_edges": edges}


def quadratic_slice_reference(hessian, gradient, center_loss, direction, alphas, direction2=None, betas=None):
  """The exact slice of a quadratic L(θ + v) = L(θ) + gᵀv + ½ vᵀHv along v = αd (+ βe), float64; flat
  vectors. Returns (P,) or (P, P) indexed [alpha, beta]."""
  H, g = np.asarray(hessian, np.float64), np.asarray(gradient, np.float64)
  d = np.asarray(direction, np.float64)
  e = np.zeros_like(d) if direction2 is None else np.asarray(direction2, np.float64)
  betas = np.zeros(1) if betas is None else np.asarray(betas, np.float64)
  out = np.empty((len(alphas), len(betas)))
  for i, a in enumerate(np.asarray(alphas, np.float64)):
    for j, b in enumerate(betas):
      v = a * d + b * e
      out[i, j] = center_loss + g @ v + 0.5 * v @ H @ v
  return out[:, 0] if direction2 is None else out


def filter_normalize_reference(direction, weights):
  """Li et al. 2018: each filter (slice along the last axis) of ``direction`` rescaled to the norm of the same
  filter of ``weights``; leaves of rank <= 1 zeroed."""
  d, w = np.asarray(direction, np.float64), np.asarray(weights, np.float64)
  if w.ndim <= 1:
    return np.zeros_like(w)
  return d / np.linalg.norm(d.reshape(-1, d.shape[-1]), axis=0) * np.linalg.norm(w.reshape(-1, w.shape[-1]), axis=0)


# ---------------------------------------------------------------------------------------------------------
# Diagnostics: gradient check + sanity checks (CS231n "Neural Networks Part 3": gradient checks, sanity
# checks). Plain NumPy float64, one coordinate and one example at a time.
# ---------------------------------------------------------------------------------------------------------


def centred_difference(f, x, index, h):
  """CS231n's numerical gradient of ``f`` (a NumPy function of a float64 array) at flat ``index``:
  ``(f(x + h e_i) − f(x − h e_i)) / 2h``."""
  xp = np.array(x, np.float64)
  xm = np.array(x, np.float64)
  xp.flat[index] += h
  xm.flat[index] -= h
  return (f(xp) - f(xm)) / (2 * h)


def relative_error(a, n):
  """CS231n's symmetric relative error ``|a − n| / max(|a|, |n|)``, 0 when both are 0."""
  a, n = float(a), float(n)
  if a == 0 and n == 0:
    return 0.0
  return abs(a - n) / max(abs(a), abs(n))


def softmax_cross_entropy(scores, labels):
  """Mean of ``−log(e^{s_y} / Σ_j e^{s_j})`` over examples, each with the max subtracted first."""
  total = 0.0
  for s, y in zip(np.asarray(scores, np.float64), labels):
    s = s - s.max()
    total += -(s[int(y)] - math.log(sum(math.exp(v) for v in s)))
  return total / len(labels)


def multiclass_svm(scores, labels, margin=1.0):
  """Mean over examples of ``Σ_{j≠y} max(0, s_j − s_y + margin)`` (Weston–Watkins, CS231n)."""
  total = 0.0
  for s, y in zip(np.asarray(scores, np.float64), labels):
    total += sum(max(0.0, s[j] - s[int(y)] + margin) for j in range(len(s)) if j != int(y))
  return total / len(labels)


def tanh_mlp_scores(w1, b1, w2, b2, x):
  """``tanh(x W1 + b1) W2 + b2`` in float64."""
  x = np.asarray(x, np.float64)
  return np.tanh(x @ np.asarray(w1, np.float64) + np.asarray(b1, np.float64)) @ np.asarray(w2, np.float64) \
      + np.asarray(b2, np.float64)


# --- diagnostics: monitor + history + advice (update:weight ratio and norms, CS231n) ---
def monitor_reference(params, updates, grads=None):
  """CS231n's babysitting numbers, per leaf and over all leaves, in float64, from ``{name: array}`` dicts:
  ``param_scale = ‖W‖``, ``update_scale = ‖ΔW‖``, ratio ``update_scale / param_scale`` (IEEE division: x/0
  is inf, 0/0 NaN), and ``‖g‖``. Keys as ``read_monitor``'s: ``"update_ratio/<name>"``, ``"update_ratio"``, …"""
  def norm(x):
    x = np.asarray(x, np.complex128 if np.iscomplexobj(x) else np.float64).ravel()
    return float(np.sqrt(np.sum(np.abs(x) ** 2)))

  out = {}
  with np.errstate(divide="ignore", invalid="ignore"):
    for name in params:
      w, u = norm(params[name]), norm(updates[name])
      out[f"weight_norm/{name}"], out[f"update_norm/{name}"] = w, u
      out[f"update_ratio/{name}"] = float(np.float64(u) / np.float64(w))
      if grads is not None:
        out[f"grad_norm/{name}"] = norm(grads[name])
    total_w = float(np.sqrt(sum(out[f"weight_norm/{n}"] ** 2 for n in params)))
    total_u = float(np.sqrt(sum(out[f"update_norm/{n}"] ** 2 for n in params)))
    out["weight_norm"], out["update_norm"] = total_w, total_u
    out["update_ratio"] = float(np.float64(total_u) / np.float64(total_w))
    if grads is not None:
      out["grad_norm"] = float(np.sqrt(sum(out[f"grad_norm/{n}"] ** 2 for n in params)))
  return out
