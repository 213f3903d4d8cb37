"""Default configuration: SGDR with M cycles vs one cosine run of the same budget, MLP on digits, 8 seeds."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
  model: str = "mlp"  # "mlp" (64-128-128-10) or "cnn"
  num_seeds: int = 8  # independent initialisations and batch orders, trained at once with jax.vmap
  seed: int = 0
  batch_size: int = 64
  # Budget: num_cycles × epochs_per_cycle epochs for both runs.
  num_cycles: int = 5  # M: SGDR cycles, snapshots kept, and checkpoints of the single run
  epochs_per_cycle: int = 4
  peak_lr: float = 0.1  # SGD with momentum, the LR at every restart and at the start of the cosine
  momentum: float = 0.9
  weight_decay: float = 0.0  # decoupled (SGDW), scaled by the schedule


def get_config(**overrides) -> Config:
  return dataclasses.replace(Config(), **overrides)
