"""Watch the learning rate: gradient check, sanity checks, monitors, activation statistics, training history,
dashboard, advice and loss landscapes (the CS231n "babysitting the learning process" notes made into tools)."""

# --- gradcheck + sanity (exports) ---
from lrtools.diagnostics._gradcheck import GradCheckReport as GradCheckReport
from lrtools.diagnostics._gradcheck import GradCheckRow as GradCheckRow
from lrtools.diagnostics._gradcheck import grad_check as grad_check
from lrtools.diagnostics._sanity import InitialLossResult as InitialLossResult
from lrtools.diagnostics._sanity import OverfitResult as OverfitResult
from lrtools.diagnostics._sanity import RegularizationResult as RegularizationResult
from lrtools.diagnostics._sanity import SanityReport as SanityReport
from lrtools.diagnostics._sanity import initial_loss_check as initial_loss_check
from lrtools.diagnostics._sanity import overfit_check as overfit_check
from lrtools.diagnostics._sanity import regularization_check as regularization_check
from lrtools.diagnostics._sanity import sanity_check as sanity_check
# --- monitor + history + advice (exports) ---
from lrtools.diagnostics._monitor import MonitorState as MonitorState
from lrtools.diagnostics._monitor import monitor as monitor
from lrtools.diagnostics._monitor import monitored as monitored
from lrtools.diagnostics._monitor import read_monitor as read_monitor
from lrtools.diagnostics._history import TrainingHistory as TrainingHistory
from lrtools.diagnostics._history import tensorboard_writer as tensorboard_writer
from lrtools.diagnostics._advice import advise as advise
# --- activations + landscape + dashboard (exports) ---
from lrtools.diagnostics._activations import ActivationStats as ActivationStats
from lrtools.diagnostics._activations import activation_stats as activation_stats
from lrtools.diagnostics._activations import capture_activations as capture_activations
from lrtools.diagnostics._landscape import LandscapeResult as LandscapeResult
from lrtools.diagnostics._landscape import loss_landscape as loss_landscape
from lrtools.plotting._dashboard import plot_dashboard as plot_dashboard

__all__ = [
    # --- gradcheck + sanity (names) ---
    "GradCheckReport", "GradCheckRow", "grad_check", "InitialLossResult", "OverfitResult", "RegularizationResult",
    "SanityReport", "initial_loss_check", "overfit_check", "regularization_check", "sanity_check",
    # --- monitor + history + advice (names) ---
    "MonitorState", "monitor", "monitored", "read_monitor",
    "TrainingHistory", "tensorboard_writer", "advise",
    # --- activations + landscape + dashboard (names) ---
    "ActivationStats", "LandscapeResult", "activation_stats", "capture_activations", "loss_landscape",
    "plot_dashboard",
]
