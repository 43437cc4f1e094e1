"""Real images: IDX files (``idx``), MNIST's files, checksums and where they are (``mnist``),
fetching them (``fetch``), seeded per-class subsets, balanced or long-tailed (``subsets``),
and the ``RealMNIST`` dataset (``real``).

May import: the root modules (config, errors, checks, fileio, device, images). Knows no
model, no training and no metric.
"""
