"""Ensemble with the learning rate: snapshot ensembles from cyclic schedules (Huang et al. 2017), checkpoint
ensembles, and vectorized ensemble predictions."""

# --- ensembles (exports) ---
from lrtools.ensembles._predict import ensemble_predict as ensemble_predict
from lrtools.ensembles._seeds import TopK as TopK
from lrtools.ensembles._seeds import stack_members as stack_members
from lrtools.ensembles._seeds import top_k_members as top_k_members
from lrtools.ensembles._snapshots import SnapshotBuffer as SnapshotBuffer
from lrtools.ensembles._snapshots import SnapshotState as SnapshotState
from lrtools.ensembles._snapshots import cycle_ends as cycle_ends
from lrtools.ensembles._snapshots import snapshot_buffer as snapshot_buffer
from lrtools.ensembles._snapshots import snapshot_ensemble as snapshot_ensemble
from lrtools.ensembles._snapshots import snapshot_steps as snapshot_steps
from lrtools.ensembles._snapshots import snapshots as snapshots

__all__ = [
    # --- ensembles (names) ---
    "SnapshotBuffer", "SnapshotState", "TopK", "cycle_ends", "ensemble_predict", "snapshot_buffer",
    "snapshot_ensemble", "snapshot_steps", "snapshots", "stack_members", "top_k_members",
]
