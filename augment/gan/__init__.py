"""The conditional WGAN-GP itself: ``Generator`` and ``Critic`` (``models``), the WGAN-GP losses
and the gradient penalty, written once (``losses``), the reference critic's input gradient written
out for a penalty without double backward (``critic_gradient``), DiffAugment of the critic's inputs
(``diffaugment``) and the generator's weight average (``ema``).

May import: ``augment.config`` and ``augment.errors`` only. Knows nothing of files, logging,
data or the CLI: modules and tensors in, tensors out.
"""
