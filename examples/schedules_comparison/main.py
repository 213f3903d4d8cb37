"""python examples/schedules_comparison/main.py [--workdir DIR] [--dataset digits|fashion_mnist|mnist1d] ...

Every field of ``configs/default.py`` is a flag (``--peak-lr 0.05``, ``--schedules cosine,one_cycle``).
"""

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from configs.default import Config, get_config  # noqa: E402
from train import train_and_evaluate  # noqa: E402

if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--workdir", default="", help="where the .json, .md and .png results go (none if empty)")
  for field in dataclasses.fields(Config):
    parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
  args = vars(parser.parse_args())
  workdir = args.pop("workdir")
  out = train_and_evaluate(get_config(**args), workdir)
  print(out["table"])
  print("compile seconds:", {k: round(v, 1) for k, v in out["compile_seconds"].items()})
