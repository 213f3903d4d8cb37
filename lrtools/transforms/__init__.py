"""Transforms around an optimizer: per-layer learning rates, reduce on plateau, parameter averaging."""

from lrtools.transforms._averaging import EmaParamsState as EmaParamsState
from lrtools.transforms._averaging import PolyakParamsState as PolyakParamsState
from lrtools.transforms._averaging import averaged_params as averaged_params
from lrtools.transforms._averaging import ema_params as ema_params
from lrtools.transforms._averaging import polyak_params as polyak_params
from lrtools.transforms._layerwise import ScaleByLayerState as ScaleByLayerState
from lrtools.transforms._layerwise import assign_groups as assign_groups
from lrtools.transforms._layerwise import discriminative_multipliers as discriminative_multipliers
from lrtools.transforms._layerwise import layer_multipliers as layer_multipliers
from lrtools.transforms._layerwise import layerwise as layerwise
from lrtools.transforms._layerwise import leaf_paths as leaf_paths
from lrtools.transforms._layerwise import scale_by_layer as scale_by_layer
from lrtools.transforms._plateau import ReduceOnPlateauState as ReduceOnPlateauState
from lrtools.transforms._plateau import plateau_scale as plateau_scale
from lrtools.transforms._plateau import reduce_on_plateau as reduce_on_plateau

__all__ = [
    "EmaParamsState", "PolyakParamsState", "ReduceOnPlateauState", "ScaleByLayerState",
    "assign_groups", "averaged_params", "discriminative_multipliers", "ema_params", "layer_multipliers",
    "layerwise", "leaf_paths", "plateau_scale", "polyak_params", "reduce_on_plateau", "scale_by_layer",
]
