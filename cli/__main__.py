"""``python -m cli`` is the ``augment`` command (torchrun launches it this way)."""

from . import main

if __name__ == "__main__":
    main(prog_name="augment")
