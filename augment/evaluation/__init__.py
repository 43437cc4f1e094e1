"""Judging a generator: the evaluator CNN and its training (``classifier``), classifier files,
the shipped evaluator and its quality filter (``classifier_files``), pure metrics over
features and labels (``metrics``), scoring a generator against real data (``scoring``:
``augment evaluate``) and its report directory (``report``).

May import: the root modules, ``augment.data`` and ``augment.synthetic``. ``metrics`` is pure:
arrays in, numbers out; it imports nothing of the library but ``augment.checks``.
"""
