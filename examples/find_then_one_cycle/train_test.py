"""The example end to end on a short run: the suggestion trains the MLP to a useful accuracy."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from configs.default import get_config  # noqa: E402
from train import train_and_evaluate  # noqa: E402


def test_find_then_one_cycle_trains_digits():
  metrics = train_and_evaluate(get_config(num_epochs=3, finder_steps=60))
  assert 1e-4 < metrics["suggested_lr"] < 10
  assert metrics["valid_accuracy"] > 0.85, metrics
  # The one-cycle schedule ended at its minimum: max / (25 · 1e4).
  assert abs(metrics["last_hyperparams"]["learning_rate"] - metrics["suggested_lr"] / 2.5e5) < 1e-3
