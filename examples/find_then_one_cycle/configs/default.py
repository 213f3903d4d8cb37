"""Default configuration: the range test's suggestion as the peak of a one-cycle schedule, on digits."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
  model: str = "mlp"  # "mlp" (64-128-128-10) or "cnn"
  batch_size: int = 64
  seed: int = 0
  # Range test.
  finder_steps: int = 100
  start_lr: float = 1e-7
  end_lr: float = 10.0
  suggestion: str = "steepest"  # which rule sets the one-cycle peak
  # Training.
  num_epochs: int = 10
  momentum: float = 0.9
  pct_start: float = 0.3


def get_config(**overrides) -> Config:
  return dataclasses.replace(Config(), **overrides)
