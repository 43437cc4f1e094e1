"""Judging a generator or a set of labelled images: the evaluator CNN and its training
(``classifier``), classifier files, the shipped evaluator and its quality filter
(``classifier_files``), pure metrics over features and labels (``metrics``), the real side of an
evaluation (``reference``), sample sets read like real data (``sample_sets``), the pure maths of
the memorization audit (``memorization``) and the audit of one evaluation (``audit``), scoring
against real data (``scoring``: ``augment evaluate``) and its report directory (``report``), and
the in-training evaluation handed to the training loop (``monitor``).

May import: the root modules, ``augment.data`` and ``augment.synthetic``. ``metrics`` and
``memorization`` are pure: arrays in, numbers out; ``metrics`` imports nothing of the library but
``augment.checks``, ``memorization`` nothing of it.
"""
