"""Training a generator: the critic and generator updates, each written once (``updates``); the
generator step built from them and its eager, batched and explicit-penalty implementations
(``steps``), the same step as a CUDA graph (``cuda_graph``); one run's state (``trainer``), its real
data and batch order (``real_data``); the loop, read top to bottom, with exact resume (``loop``), and
what a run writes: config, log rows, grids, checkpoints, the exported and best generators
(``run_directory``); and data-parallel training over torchrun's processes (``data_parallel``).

May import: the root modules, ``augment.data`` and ``augment.gan``.
"""

from augment.training.loop import (
    RESUME_OVERRIDABLE,
    TrainingInterrupted,
    preflight,
    resume,
    resumed_config,
    train,
    with_overrides,
)
from augment.training.trainer import Trainer

__all__ = ["RESUME_OVERRIDABLE", "Trainer", "TrainingInterrupted", "preflight", "resume", "resumed_config", "train",
           "with_overrides"]
