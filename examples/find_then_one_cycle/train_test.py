"""The example end to end on a short run: the suggestion trains the MLP to a useful accuracy."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from configs.default import get_config  # noqa: E402
from train import train_and_evaluate  # noqa: E402


def test_find_then_one_cycle_trains_digits():
  metrics = train_and_evaluate(get_config(num_epochs=3, finder_steps=60))
  assert 1e-4 < metrics["suggested_lr"] < 10
  assert metrics["finder_stop_reason"] == "diverged", metrics  # 1e-7 → 10 overshoots on digits
  assert metrics["valid_accuracy"] > 0.85, metrics
  # The recorded rate peaks at the suggestion: the one-cycle peak falls between two steps (pct_start · total
  # − 1 is not an integer here), so the highest rate a step used is within 1% of it, never above it.
  peak, suggested = metrics["peak_recorded_lr"], metrics["suggested_lr"]
  assert 0.99 * suggested < peak <= suggested * (1 + 4 * np.finfo(np.float32).eps), metrics
  # The one-cycle schedule ended at its minimum, max / (25 · 1e4), to float32 rounding (a few operations; the
  # cosine is flat at its end). Relative: an absolute 1e-3 would accept any rate below 1e-3.
  np.testing.assert_allclose(metrics["last_hyperparams"]["learning_rate"], suggested / 2.5e5, rtol=1e-5)
