"""Test configuration: float64 everywhere so references compare tightly; float32 is tested explicitly by
passing float32 inputs (lrtools follows the dtype of its inputs)."""

import os

import jax

jax.config.update("jax_enable_x64", True)

from hypothesis import settings  # noqa: E402

# Few, fast examples by default: the suite must stay under ~10 minutes on 2 cores.
settings.register_profile("lrtools", max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "30")), deadline=None)
settings.load_profile("lrtools")
