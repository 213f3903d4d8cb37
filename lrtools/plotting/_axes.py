"""The one place that imports matplotlib."""

from __future__ import annotations


def get_axes(ax=None):
  """``ax``, or the Axes of a new figure; raises an ImportError with the install hint without matplotlib."""
  if ax is not None:
    return ax
  try:
    import matplotlib.pyplot as plt
  except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError('plotting needs matplotlib: pip install "lrtools[plot]"') from e
  _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
  return ax
