"""Default configuration: a LeNet-style CNN on the embedded digits, 20 epochs of momentum SGD, 8 seeds.

Every schedule shares the peak rate 0.05, so the table compares shapes, not tuned rates. It is about twice the
LR range test's "steepest" suggestion for this model and optimizer (0.016–0.026 over four initialisations;
README, "Choosing the peak"): high enough that a constant rate stays noisy, which is where schedules matter.
"""

from __future__ import annotations

import dataclasses

# The schedules of the D2L experiment plus the recent ones; "schedule_free" is optax's schedule-free AdamW.
SCHEDULES = ("constant", "step", "multistep", "inv_sqrt", "cosine", "warmup_cosine", "cyclical", "one_cycle",
             "sgdr", "wsd_linear", "wsd_1_sqrt", "schedule_free")


@dataclasses.dataclass(frozen=True)
class Config:
  dataset: str = "digits"  # "digits" (embedded), "fashion_mnist" (needs data_dir) or "mnist1d" (generated)
  data_dir: str = ""  # Fashion-MNIST: a folder of the four IDX files, or an .npz
  model: str = "lenet"  # images: "lenet"; MNIST-1D: "logistic", "mlp" or "cnn" (greydanus/mnist1d's models)
  schedules: str = "all"  # "all" or a comma-separated subset of SCHEDULES
  optimizer: str = "momentum"  # of the scheduled runs: "momentum" (CS231n, momentum 0.9) or "adam"
  peak_lr: float = 0.05  # the peak (or constant) rate of every schedule
  momentum: float = 0.9
  schedule_free_lr: float = 0.0025  # schedule-free AdamW's rate (its warmup is the shared warmup)
  warmup_fraction: float = 0.1  # warmup of warmup_cosine, WSD and schedule-free, a fraction of the run
  num_epochs: int = 20
  batch_size: int = 64
  num_seeds: int = 8  # trained at once with jax.vmap
  seed: int = 0
  eval_examples: int = 10_000  # train accuracy and loss are measured on at most this many train examples


def get_config(**overrides) -> Config:
  return dataclasses.replace(Config(), **overrides)
