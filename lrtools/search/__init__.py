"""Search the learning rate: log-scale random search, coarse-to-fine, successive halving, refining a range
test's suggestion, trials vectorized with ``jax.vmap`` and sharded over devices, and Optuna as the engine for
many processes and machines (Bergstra & Bengio 2012; CS231n "Neural Networks Part 3")."""

# --- core search (exports) ---
from lrtools.search._coarse_to_fine import coarse_to_fine as coarse_to_fine
from lrtools.search._halving import successive_halving as successive_halving
from lrtools.search._random import evaluate_configs as evaluate_configs
from lrtools.search._random import random_search as random_search
from lrtools.search._refine import LrRefinement as LrRefinement
from lrtools.search._refine import refine_lr as refine_lr
from lrtools.search._result import SearchResult as SearchResult
from lrtools.search._space import choice as choice
from lrtools.search._space import int_uniform as int_uniform
from lrtools.search._space import log_uniform as log_uniform
from lrtools.search._space import sample_space as sample_space
from lrtools.search._space import uniform as uniform
# --- optuna (exports) ---
from lrtools.search._optuna import optuna_result as optuna_result
from lrtools.search._optuna import optuna_search as optuna_search

__all__ = [
    # --- core search (names) ---
    "LrRefinement", "SearchResult", "choice", "coarse_to_fine", "evaluate_configs", "int_uniform", "log_uniform",
    "random_search", "refine_lr", "sample_space", "successive_halving", "uniform",
    # --- optuna (names) ---
    "optuna_result", "optuna_search",
]
