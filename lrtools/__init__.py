"""lrtools: the learning-rate toolbox for JAX/Optax — find, schedule, apply, watch and search learning rates."""

from lrtools import data as data
from lrtools import finder as finder
from lrtools import plotting as plotting
from lrtools import schedules as schedules
from lrtools.finder import RangeTestResult as RangeTestResult
from lrtools.finder import lr_range_test as lr_range_test
from lrtools.schedules import constant_schedule as constant_schedule
from lrtools.schedules import cosine_decay_schedule as cosine_decay_schedule
from lrtools.schedules import cyclical_momentum_schedule as cyclical_momentum_schedule
from lrtools.schedules import cyclical_schedule as cyclical_schedule
from lrtools.schedules import exponential_decay_schedule as exponential_decay_schedule
from lrtools.schedules import inverse_time_decay_schedule as inverse_time_decay_schedule
from lrtools.schedules import join_schedules as join_schedules
from lrtools.schedules import multistep_schedule as multistep_schedule
from lrtools.schedules import one_cycle_momentum_schedule as one_cycle_momentum_schedule
from lrtools.schedules import one_cycle_schedule as one_cycle_schedule
from lrtools.schedules import polynomial_decay_schedule as polynomial_decay_schedule
from lrtools.schedules import sgdr_schedule as sgdr_schedule
from lrtools.schedules import step_decay_schedule as step_decay_schedule
from lrtools.schedules import warmup_schedule as warmup_schedule

__version__ = "0.1.0"

__all__ = ["data", "finder", "plotting", "schedules", "lr_range_test", "RangeTestResult", *schedules.__all__]
