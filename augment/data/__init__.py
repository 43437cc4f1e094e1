"""Real images. Each kind of data source is one reader behind one interface (``reader``:
``SourceReader``, the label and class-name checks and the hold-out all kinds share): IDX
directories, MNIST's checksummed or any (``mnist``, on the IDX format of ``idx``), image folders
(``image_folder``) and npz files (``npz``); ``sources`` is the entry point (``load_labelled``,
``describe_source``; ``detect_source_kind``, the kind told from the path when none is given).
``limits``: the one budget of pixels and bytes every reader holds to (``$AUGMENT_MAX_PIXELS``),
and regular files only. Also fetching MNIST (``fetch``), seeded per-class subsets, balanced or
long-tailed (``subsets``), and the ``RealMNIST`` dataset (``real``).

May import: the root modules (config, errors, checks, fileio, device, images). Knows no
model, no training and no metric.
"""
