"""Plots (matplotlib is imported only here, and only when a plot is drawn). Functions take and return an Axes."""

from lrtools.plotting._range_test import plot_range_test as plot_range_test
from lrtools.plotting._schedules import plot_schedule as plot_schedule
from lrtools.plotting._dashboard import plot_dashboard as plot_dashboard
from lrtools.plotting._landscape import plot_landscape as plot_landscape
from lrtools.plotting._search import plot_search as plot_search

__all__ = ["plot_range_test", "plot_schedule", "plot_dashboard", "plot_landscape", "plot_search"]
