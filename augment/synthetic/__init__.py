"""Synthetic data from a trained generator: per-index latents and labels (``latents``), the fast
inference generator (``fast_generator``), the ``SyntheticMNIST`` dataset (``dataset``), quality-filtered
sampling (``quality_filter``), real + synthetic training sets (``mixing``), dumps to
IDX/PNG/npz (``dump``, its writers ``dump_formats``) and the shipped generator (``shipped``).

May import: the root modules and ``augment.gan``. Knows no optimiser, no training loop and no
metric.
"""
