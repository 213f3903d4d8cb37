"""The learning-rate range test: one compiled sweep, its suggestions, and the result's plot."""

from lrtools.finder._range_test import lr_range_test as lr_range_test
from lrtools.finder._range_test import sweep_lrs as sweep_lrs
from lrtools.finder._result import RangeTestResult as RangeTestResult
from lrtools.finder._suggest import suggest_minimum as suggest_minimum
from lrtools.finder._suggest import suggest_steepest as suggest_steepest
from lrtools.finder._suggest import suggest_valley as suggest_valley

__all__ = ["lr_range_test", "sweep_lrs", "RangeTestResult", "suggest_steepest", "suggest_minimum",
           "suggest_valley"]
