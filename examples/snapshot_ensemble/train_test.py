"""The example end to end on a tiny budget: 2 seeds × (2 cycles of 1 epoch), the real loop and collector."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from configs.default import get_config  # noqa: E402
from train import format_table, train_and_evaluate  # noqa: E402


def test_snapshot_ensemble_trains_digits(tmp_path):
  config = get_config(num_seeds=2, num_cycles=2, epochs_per_cycle=1)
  results = train_and_evaluate(config, str(tmp_path))
  per_epoch = results["steps_per_epoch"]
  assert results["total_steps"] == 2 * per_epoch
  # The snapshots are the parameters after the last step of each SGDR cycle, and the single run's
  # checkpoints fall on the same steps (its period is one cycle).
  assert results["sgdr_snapshot_steps"] == [per_epoch - 1, 2 * per_epoch - 1]
  assert results["cosine_snapshot_steps"] == [per_epoch - 1, 2 * per_epoch - 1]
  rows = {row["model"]: row for row in results["rows"]}
  # The last snapshot is the final SGDR model.
  final, last = rows["SGDR: final"], rows[f"SGDR: snapshot 2 (step {2 * per_epoch})"]
  np.testing.assert_allclose(final["accuracy"]["mean"], last["accuracy"]["mean"])
  for row in results["rows"]:
    assert row["accuracy"]["n"] == 2
    assert 0.8 < row["accuracy"]["mean"] <= 1.0, row  # two epochs of digits already train the MLP
    assert np.isfinite(row["nll"]["mean"]), row
  table = format_table(results)
  assert table.count("\n") == len(results["rows"]) + 1 and "±" in table
  assert (tmp_path / "table.md").read_text() == table and (tmp_path / "results.json").exists()
