"""lrtools: the learning-rate toolbox for JAX/Optax — find, schedule, apply, watch and search learning rates."""

from lrtools import data as data
from lrtools._loop import LoopResult as LoopResult
from lrtools._loop import StepRecord as StepRecord
from lrtools._loop import first_non_finite as first_non_finite
from lrtools._loop import train_loop as train_loop
from lrtools._loop import train_step as train_step
from lrtools import finder as finder
from lrtools import optimizers as optimizers
from lrtools import plotting as plotting
from lrtools import schedules as schedules
from lrtools import transforms as transforms
from lrtools.finder import RangeTestResult as RangeTestResult
from lrtools.finder import lr_range_test as lr_range_test
from lrtools.optimizers import AdadeltaState as AdadeltaState
from lrtools.optimizers import AdagradState as AdagradState
from lrtools.optimizers import AdamState as AdamState
from lrtools.optimizers import DecoupledWeightDecayState as DecoupledWeightDecayState
from lrtools.optimizers import MomentumState as MomentumState
from lrtools.optimizers import RMSPropState as RMSPropState
from lrtools.optimizers import ScaleByLearningRateState as ScaleByLearningRateState
from lrtools.optimizers import adadelta as adadelta
from lrtools.optimizers import adagrad as adagrad
from lrtools.optimizers import adam as adam
from lrtools.optimizers import current_hyperparams as current_hyperparams
from lrtools.optimizers import momentum as momentum
from lrtools.optimizers import nesterov as nesterov
from lrtools.optimizers import rmsprop as rmsprop
from lrtools.optimizers import scale_by_adadelta as scale_by_adadelta
from lrtools.optimizers import scale_by_adagrad as scale_by_adagrad
from lrtools.optimizers import scale_by_adam as scale_by_adam
from lrtools.optimizers import scale_by_learning_rate as scale_by_learning_rate
from lrtools.optimizers import scale_by_momentum as scale_by_momentum
from lrtools.optimizers import scale_by_rmsprop as scale_by_rmsprop
from lrtools.optimizers import scale_by_yogi as scale_by_yogi
from lrtools.optimizers import sgd as sgd
from lrtools.optimizers import yogi as yogi
from lrtools.transforms import EmaParamsState as EmaParamsState
from lrtools.transforms import PolyakParamsState as PolyakParamsState
from lrtools.transforms import ReduceOnPlateauState as ReduceOnPlateauState
from lrtools.transforms import ScaleByLayerState as ScaleByLayerState
from lrtools.transforms import assign_groups as assign_groups
from lrtools.transforms import averaged_params as averaged_params
from lrtools.transforms import discriminative_multipliers as discriminative_multipliers
from lrtools.transforms import ema_params as ema_params
from lrtools.transforms import layer_multipliers as layer_multipliers
from lrtools.transforms import layerwise as layerwise
from lrtools.transforms import leaf_paths as leaf_paths
from lrtools.transforms import plateau_scale as plateau_scale
from lrtools.transforms import polyak_params as polyak_params
from lrtools.transforms import reduce_on_plateau as reduce_on_plateau
from lrtools.transforms import scale_by_layer as scale_by_layer
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
from lrtools.schedules import wsd_schedule as wsd_schedule

__version__ = "0.1.0"

__all__ = [
    "data", "finder", "optimizers", "plotting", "schedules", "transforms", "lr_range_test", "RangeTestResult",
    "LoopResult", "StepRecord", "first_non_finite", "train_loop", "train_step",
    *schedules.__all__, *optimizers.__all__, *transforms.__all__,
]
