"""python examples/snapshot_ensemble/main.py [--workdir /tmp/snap] [--num-cycles 5] [--epochs-per-cycle 8]"""

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from configs.default import Config, get_config  # noqa: E402
from train import format_table, train_and_evaluate  # noqa: E402

if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--workdir", default=None, help="writes results.json and table.md there")
  for field in dataclasses.fields(Config):
    parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
  args = vars(parser.parse_args())
  workdir = args.pop("workdir")
  results = train_and_evaluate(get_config(**args), workdir)
  print(format_table(results))
  print(f"pairwise disagreement of the SGDR snapshots: {100 * results['sgdr_snapshot_disagreement']['mean']:.2f}% "
        f"(cosine checkpoints {100 * results['cosine_snapshot_disagreement']['mean']:.2f}%, independent seeds "
        f"{100 * results['cosine_seed_disagreement']:.2f}%); ensemble of the {results['config']['num_seeds']} "
        f"independently initialised cosine models: {100 * results['cosine_seed_ensemble_accuracy']:.2f}%")
  print(f"time: {results['total_seconds']:.1f} s")
