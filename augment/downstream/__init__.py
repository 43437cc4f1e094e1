"""Downstream experiments: classifiers trained on real, classically augmented, synthetic and
mixed data. Classical augmentation (``affine``), the grid of cells and its results file
(``grid``), running cells and fair generators (``runner``), what a run records and the
checks that keep its rows comparable (``records``), and the summary tables and plots
(``summary``).

May import: everything in the library (it is the top of the stack); nothing imports it but
the CLI and the experiment scripts.
"""
