"""The textbook first-order update rules as optax ``GradientTransformation``s.

Each optimizer is a ``scale_by_*`` transform chained with :func:`scale_by_learning_rate`; every
hyperparameter may be a number, an array, a tracer or a ``step -> value`` schedule, and the values used
at the last step are read back with :func:`current_hyperparams`.

Complex parameters follow optax's convention (the update direction is the conjugate gradient): the
second-moment statistics accumulate ``|g|²``, real, in the parameters' real dtype. ``sgd``, ``momentum``,
``nesterov`` and ``adam`` take a decoupled ``weight_decay`` (Loshchilov & Hutter 2019; AdamW, SGDW).

Non-finite gradients propagate, as in optax: a NaN or infinite gradient makes the update and the
moment estimates non-finite. Wrap an optimizer in ``optax.apply_if_finite(opt, max_consecutive_errors)``
to skip such steps (the parameters and the inner state are then left unchanged).
"""

from lrtools._hyperparams import current_hyperparams as current_hyperparams
from lrtools.optimizers._adam import AdamState as AdamState
from lrtools.optimizers._adam import adam as adam
from lrtools.optimizers._adam import scale_by_adam as scale_by_adam
from lrtools.optimizers._adam import scale_by_yogi as scale_by_yogi
from lrtools.optimizers._adam import yogi as yogi
from lrtools.optimizers._adaptive import AdadeltaState as AdadeltaState
from lrtools.optimizers._adaptive import AdagradState as AdagradState
from lrtools.optimizers._adaptive import RMSPropState as RMSPropState
from lrtools.optimizers._adaptive import adadelta as adadelta
from lrtools.optimizers._adaptive import adagrad as adagrad
from lrtools.optimizers._adaptive import rmsprop as rmsprop
from lrtools.optimizers._adaptive import scale_by_adadelta as scale_by_adadelta
from lrtools.optimizers._adaptive import scale_by_adagrad as scale_by_adagrad
from lrtools.optimizers._adaptive import scale_by_rmsprop as scale_by_rmsprop
from lrtools.optimizers._learning_rate import ScaleByLearningRateState as ScaleByLearningRateState
from lrtools.optimizers._learning_rate import scale_by_learning_rate as scale_by_learning_rate
from lrtools.optimizers._sgd import MomentumState as MomentumState
from lrtools.optimizers._sgd import momentum as momentum
from lrtools.optimizers._sgd import nesterov as nesterov
from lrtools.optimizers._sgd import scale_by_momentum as scale_by_momentum
from lrtools.optimizers._sgd import sgd as sgd
from lrtools.optimizers._weight_decay import DecoupledWeightDecayState as DecoupledWeightDecayState

__all__ = [
    "AdadeltaState", "AdagradState", "AdamState", "DecoupledWeightDecayState", "MomentumState", "RMSPropState",
    "ScaleByLearningRateState", "adadelta", "adagrad", "adam", "current_hyperparams", "momentum",
    "nesterov", "rmsprop", "scale_by_adadelta", "scale_by_adagrad", "scale_by_adam",
    "scale_by_learning_rate", "scale_by_momentum", "scale_by_rmsprop", "scale_by_yogi", "sgd", "yogi",
]
