"""The conditional WGAN-GP itself: ``Generator`` and ``Critic`` (``models``), the WGAN-GP losses
and gradient penalty (``losses``), DiffAugment of the critic's inputs (``diffaugment``) and the
generator's weight average (``ema``).

May import: ``augment.config`` and ``augment.errors`` only. Knows nothing of files, logging,
data or the CLI: modules and tensors in, tensors out.
"""
