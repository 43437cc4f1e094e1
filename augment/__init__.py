"""augment: a conditional WGAN-GP on MNIST as a data-augmentation source for classifiers.

Public names are imported lazily so that ``import augment`` (and the CLI's ``--help``) stays
fast; torch loads on first use of a model, dataset or trainer.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "ModelConfig": "config", "TrainConfig": "config",
    "AugmentError": "errors", "CheckpointError": "errors", "ConfigError": "errors",
    "DataError": "errors",
    "Generator": "models", "Critic": "models",
    "RealMNIST": "data",
    "load_generator": "checkpoint", "save_generator": "checkpoint",
    "train": "training", "Trainer": "trainer", "TrainingError": "errors",
    "SyntheticMNIST": "synthetic", "collate_batch": "synthetic",
    "mix_real_synthetic": "mixing", "synthetic_only": "mixing", "BatchedConcatDataset": "mixing",
    "FastGenerator": "sampling", "dump_synthetic": "dump",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'augment' has no attribute {name!r}")
