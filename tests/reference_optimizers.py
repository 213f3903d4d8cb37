"""Independent NumPy (float64) references for the optimizers and transforms, written from the seed
formulas (CS231n "Neural Networks 3", D2L ch. 11, the papers), one step at a time.

Every optimizer runs ``num_steps`` steps of ``x ← update(x, grad(x, t))`` and returns the trajectory,
shape ``(num_steps + 1, dim)``. A hyperparameter is a number or a per-step sequence (a schedule sampled
at t = 0, 1, ...). Only numpy and math are imported, so this file shares nothing with lrtools.
"""

from __future__ import annotations

import math

import numpy as np


def at(value, t):
  """A hyperparameter at step ``t``: a number, or entry ``t`` of a per-step sequence."""
  return float(value[t]) if np.ndim(value) else float(value)


def _run(step, grad, x0, num_steps):
  x = np.array(x0, dtype=np.float64)
  path = [x.copy()]
  for t in range(num_steps):
    x = step(x, grad(x, t), t)
    path.append(x.copy())
  return np.stack(path)


def sgd(grad, x0, num_steps, lr):
  return _run(lambda x, g, t: x - at(lr, t) * g, grad, x0, num_steps)


def momentum(grad, x0, num_steps, lr, mu, lr_in_velocity=True):
  """CS231n: v = μv − η·dx; x += v.  D2L: v = μv + dx; x −= η·v."""
  v = np.zeros_like(np.asarray(x0, np.float64))

  def step(x, g, t):
    nonlocal v
    if lr_in_velocity:
      v = at(mu, t) * v - at(lr, t) * g
      return x + v
    v = at(mu, t) * v + g
    return x - at(lr, t) * v

  return _run(step, grad, x0, num_steps)


def nesterov(grad, x0, num_steps, lr, mu, lr_in_velocity=True):
  """CS231n: v_prev = v; v = μv − η·dx; x += −μ·v_prev + (1 + μ)·v.
  Rate outside (optax/PyTorch): v = μv + dx; x −= η·(dx + μ·v)."""
  v = np.zeros_like(np.asarray(x0, np.float64))

  def step(x, g, t):
    nonlocal v
    m = at(mu, t)
    if lr_in_velocity:
      v_prev = v
      v = m * v - at(lr, t) * g
      return x - m * v_prev + (1 + m) * v
    v = m * v + g
    return x - at(lr, t) * (g + m * v)

  return _run(step, grad, x0, num_steps)


def adagrad(grad, x0, num_steps, lr, eps=1e-8, initial_accumulator_value=0.0):
  """cache += dx**2; x += −η·dx / (sqrt(cache) + eps)."""
  cache = np.full(np.shape(x0), float(initial_accumulator_value))

  def step(x, g, t):
    nonlocal cache
    cache = cache + g ** 2
    return x - at(lr, t) * g / (np.sqrt(cache) + at(eps, t))

  return _run(step, grad, x0, num_steps)


def rmsprop(grad, x0, num_steps, lr, decay=0.9, eps=1e-8):
  """cache = decay·cache + (1 − decay)·dx**2; x += −η·dx / (sqrt(cache) + eps)."""
  cache = np.zeros(np.shape(x0))

  def step(x, g, t):
    nonlocal cache
    d = at(decay, t)
    cache = d * cache + (1 - d) * g ** 2
    return x - at(lr, t) * g / (np.sqrt(cache) + at(eps, t))

  return _run(step, grad, x0, num_steps)


def adadelta(grad, x0, num_steps, lr=1.0, rho=0.9, eps=1e-6):
  """D2L 11.9: s = ρs + (1−ρ)g²; g' = sqrt((Δx + ε)/(s + ε))·g; Δx = ρΔx + (1−ρ)g'²; x −= η·g'."""
  s = np.zeros(np.shape(x0))
  delta = np.zeros(np.shape(x0))

  def step(x, g, t):
    nonlocal s, delta
    r, e = at(rho, t), at(eps, t)
    s = r * s + (1 - r) * g * g
    g_rescaled = np.sqrt(delta + e) / np.sqrt(s + e) * g
    delta = r * delta + (1 - r) * g_rescaled * g_rescaled
    return x - at(lr, t) * g_rescaled

  return _run(step, grad, x0, num_steps)


def adam(grad, x0, num_steps, lr, b1=0.9, b2=0.999, eps=1e-8, bias_correction=True):
  """CS231n full form: m = β1·m + (1−β1)·dx; mt = m/(1−β1**t); v likewise; x += −η·mt/(sqrt(vt)+eps).
  A scheduled β divides by 1 − ∏ of the values used (1 − β**t for a constant β)."""
  m = np.zeros(np.shape(x0))
  v = np.zeros(np.shape(x0))
  prod1 = prod2 = 1.0

  def step(x, g, t):
    nonlocal m, v, prod1, prod2
    beta1, beta2 = at(b1, t), at(b2, t)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g ** 2
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
    s = s + (1 - beta2) * g ** 2 * np.sign(g ** 2 - s)
    prod1 = prod1 * beta1 if np.ndim(b1) else beta1 ** (t + 1)
    prod2 = prod2 * beta2 if np.ndim(b2) else beta2 ** (t + 1)
    return x - at(lr, t) * (m / (1 - prod1)) / (np.sqrt(s / (1 - prod2)) + at(eps, t))

  return _run(step, grad, x0, num_steps)


def reduce_on_plateau(metrics, factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                      mode="min", cooldown=0, min_scale=0.0):
  """The multiplier after each evaluation of the widely used ReduceLROnPlateau rule, transcribed as a
  class would run it, with the relative threshold taken on |best| (correct for negative metrics):
  min/rel improves iff a < best − threshold·|best|; max/rel iff a > best + threshold·|best|."""
  best = math.inf if mode == "min" else -math.inf
  num_bad = 0
  cooldown_counter = 0
  scale = 1.0
  scales = []
  for a in metrics:
    a = float(a)
    if math.isinf(best):
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


def ema_average(iterates, decay, debias=True, start_step=0):
  """Exponential average of ``iterates[k]`` (the parameters after step k; iterates[0] the initial ones)
  over k > start_step, reported after each step k ≥ 1. Debiased: the zero-started average divided by
  1 − d**n. Not debiased: started from the parameters at step ``start_step``. Before any step is
  averaged, the average is the current parameters. A per-step ``decay`` sequence is indexed by k − 1."""
  out = []
  biased = np.zeros_like(np.asarray(iterates[0], np.float64))
  plain = np.asarray(iterates[0], np.float64)
  prod = 1.0
  for k in range(1, len(iterates)):
    x = np.asarray(iterates[k], np.float64)
    d = at(decay, k - 1)
    if k <= start_step:
      plain = x
      out.append(x)
      continue
    if debias:
      biased = d * biased + (1 - d) * x
      prod = prod * d if np.ndim(decay) else d ** (k - start_step)
      out.append(biased / (1 - prod))
    else:
      plain = d * plain + (1 - d) * x
      out.append(plain)
  return np.stack(out)


def polyak_average(iterates, start_step=0, every=1):
  """Equal-weight mean of the iterates k > start_step with (k − start_step) divisible by ``every``,
  reported after each step k ≥ 1; before the first such iterate, the current parameters."""
  out = []
  chosen = []
  for k in range(1, len(iterates)):
    x = np.asarray(iterates[k], np.float64)
    if k > start_step and (k - start_step) % every == 0:
      chosen.append(x)
    out.append(np.mean(chosen, axis=0) if chosen else x)
  return np.stack(out)
