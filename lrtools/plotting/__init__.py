"""Plots (matplotlib is imported only here, and only when a plot is drawn). Functions take and return an Axes."""

from lrtools.plotting._range_test import plot_range_test as plot_range_test
from lrtools.plotting._schedules import plot_schedule as plot_schedule

__all__ = ["plot_range_test", "plot_schedule"]
