"""torch.hub entry points: ``torch.hub.load(repo, "synthetic_mnist", ...)`` and
``torch.hub.load(repo, "generator", ...)``, e.g. from a clone::

    import torch
    data = torch.hub.load("path/to/augment", "synthetic_mnist", source="local", num_samples=60000, output="pil")
    G = torch.hub.load("path/to/augment", "generator", source="local")
"""

# checked by torch.hub after it imports this file: so augment (which needs them) is imported inside
# the entry points, where a missing one is torch.hub's "Missing dependencies" message, not an ImportError
dependencies = ["torch", "torchvision", "safetensors", "numpy", "PIL"]


def synthetic_mnist(generator=None, **kwargs):
    """A ``augment.SyntheticMNIST`` (the shipped generator unless ``generator`` is a file); the
    keyword arguments are SyntheticMNIST's (``num_samples``, ``seed``, ``output="pil"``, ...)."""
    from augment import SyntheticMNIST

    return SyntheticMNIST(generator, **kwargs)


def generator(path=None, device="cpu"):
    """The conditional generator in eval mode: the shipped one (SHA-256 checked), or a file's:
    ``G(z (B, 100), labels (B,)) -> (B, 1, 32, 32) in [-1, 1]``."""
    from augment import load_generator
    from augment.synthetic.shipped import verified_default_generator_path

    return load_generator(path if path is not None else verified_default_generator_path(), device)
