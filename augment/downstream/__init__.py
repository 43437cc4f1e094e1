"""Downstream experiments: classifiers trained on real, classically augmented, synthetic and
mixed data. Classical augmentation (``affine``), the grid of cells and its results file
(``grid``), running cells and fair generators (``runner``), what a run records and the
checks that keep its rows comparable (``records``), the summary tables and plots
(``summary``), and the long-tailed grid with its baselines (``longtail``, its fair generators
``longtail_fair``, ``longtail_summary``).

May import: everything in the library (it is the top of the stack); nothing imports it but
the CLI and the experiment scripts.
"""
