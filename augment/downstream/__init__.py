"""Downstream experiments: one fixed classifier trained on real, classically augmented,
synthetic and mixed data, in grids of cells. The method table (``methods``: how a cell's
classifier trains), what every grid shares and its results file (``grid``), the balanced and
longtail grids (``balanced_grid``, ``longtail_grid``) and the named ones (``presets``), the one
runner (``runner``) with its fair generators (``fair``) and images made on demand
(``on_demand``), classical augmentation (``affine``), what a run records and the checks that
keep its rows comparable (``records``), the diversity table (``diversity``), and each kind's
tables and plots (``balanced_summary``, ``longtail_summary``).

May import: everything in the library (it is the top of the stack); nothing imports it but
the CLI and the experiment scripts.
"""
