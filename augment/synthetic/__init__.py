"""Synthetic data from a trained generator, one module per concern:

- ``latents``: per-index latents and labels, pure functions of (seed, i);
- ``fast_generator``: ``FastGenerator``, the inference-only rewrite of ``Generator``;
- ``dataset``: ``SyntheticMNIST``, its ``SamplingOptions``, ``SampleBatch`` and ``collate_batch``;
- ``filtering``: ``QualityFilter``, quality-filtered sampling (a judge classifier redraws items);
- ``mixing``: real + synthetic training sets (``mix_real_synthetic``, ``top_up_real_synthetic``,
  ``synthetic_only``, ``BatchedConcatDataset``);
- ``dump``: ``dump_synthetic``, items to IDX/PNG/npz files with a manifest; ``dump_formats``
  holds its writers;
- ``shipped``: the shipped generator file and its checks.

May import: the root modules and ``augment.gan``. Knows no optimiser, no training loop and no
metric.
"""
