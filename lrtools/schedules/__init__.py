"""Learning-rate (and momentum) schedules: pure ``step -> value`` functions whose every argument may be traced."""

from lrtools.schedules._compose import join_schedules as join_schedules
from lrtools.schedules._compose import warmup_schedule as warmup_schedule
from lrtools.schedules._cyclical import cyclical_momentum_schedule as cyclical_momentum_schedule
from lrtools.schedules._cyclical import cyclical_schedule as cyclical_schedule
from lrtools.schedules._cyclical import one_cycle_momentum_schedule as one_cycle_momentum_schedule
from lrtools.schedules._cyclical import one_cycle_schedule as one_cycle_schedule
from lrtools.schedules._decay import constant_schedule as constant_schedule
from lrtools.schedules._decay import cosine_decay_schedule as cosine_decay_schedule
from lrtools.schedules._decay import exponential_decay_schedule as exponential_decay_schedule
from lrtools.schedules._decay import inverse_time_decay_schedule as inverse_time_decay_schedule
from lrtools.schedules._decay import multistep_schedule as multistep_schedule
from lrtools.schedules._decay import polynomial_decay_schedule as polynomial_decay_schedule
from lrtools.schedules._decay import step_decay_schedule as step_decay_schedule
from lrtools.schedules._restarts import sgdr_schedule as sgdr_schedule
from lrtools.schedules._wsd import wsd_schedule as wsd_schedule

__all__ = [
    "constant_schedule", "step_decay_schedule", "multistep_schedule", "exponential_decay_schedule",
    "inverse_time_decay_schedule", "polynomial_decay_schedule", "cosine_decay_schedule", "cyclical_schedule",
    "cyclical_momentum_schedule", "one_cycle_schedule", "one_cycle_momentum_schedule", "sgdr_schedule",
    "warmup_schedule", "join_schedules", "wsd_schedule",
]
