"""Independent NumPy (float64) implementations of every formula, written from the papers and seed texts.

They are deliberately naive (explicit loops, one step or one cycle at a time) so that they share no code
or trick with the JAX implementations they check.
"""

from __future__ import annotations

import math

import numpy as np
