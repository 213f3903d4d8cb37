"""python examples/find_then_one_cycle/main.py [--model cnn] [--num-epochs 10] [--suggestion valley]"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from configs.default import Config, get_config  # noqa: E402
from train import train_and_evaluate  # noqa: E402

if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__)
  for field in dataclasses.fields(Config):
    parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
  print(json.dumps(train_and_evaluate(get_config(**vars(parser.parse_args()))), indent=2))
