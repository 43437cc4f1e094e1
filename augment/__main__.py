"""``python -m augment`` is the ``augment`` command (torchrun launches it this way:
``torchrun --nproc-per-node 2 -m augment train ...``)."""

from augment.cli import main

if __name__ == "__main__":
    main(prog_name="augment")
