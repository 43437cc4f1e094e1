"""Real images: IDX files (``idx``), MNIST's files, checksums and where they are (``mnist``),
fetching them (``fetch``), image folders (``image_folder``) and npz files (``npz``), one
resolver for every kind of source (``sources``), seeded per-class subsets, balanced or
long-tailed (``subsets``), and the ``RealMNIST`` dataset (``real``).

May import: the root modules (config, errors, checks, fileio, device, images). Knows no
model, no training and no metric.
"""
