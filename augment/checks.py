"""Boundary checks shared by the public constructors and the CLI: one helper per kind of value.

``is_integer``/``is_real`` are the one test of "an integer (or number), not a bool" (``True`` is
an ``int`` in Python, so ``isinstance(x, int)`` alone accepts it); ``item_index`` checks a
dataset's ``__getitem__`` index; ``class_ids``/``check_class_ids`` check a list of class ids;
``class_names_problem`` says what is wrong with a list of class names (each reader raises it as
its own error: a data source's ``DataError``, a model file's ``CheckpointError``).
Each other helper raises the library's one-line error (``ConfigError``; ``TypeError`` for an index). Deep
inside the library nothing is re-checked: values are checked once, where they come in.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Iterable
from typing import Optional, Sequence

from augment.errors import ConfigError

MAX_CLASS_NAME_CHARS = 100  # a class name becomes a folder name, file metadata and a grid caption


def is_integer(value) -> bool:
    """An int or a numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
    """A real number (int, float, numpy number; inf and nan included), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def class_ids(classes: Iterable) -> list[int]:
    """``classes`` as a list of ints: ints, numpy ints and integer 0-d tensors; a float, a
    string, a bool or a non-sequence raises ``ConfigError``."""
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Iterable):
        raise ConfigError(f"classes must be a sequence of class ids, got {classes!r}")
    ids = []
    for c in classes:
        try:
            if isinstance(c, bool):
                raise TypeError
            ids.append(operator.index(c))
        except TypeError:
            raise ConfigError(f"class ids must be integers, got {c!r}") from None
    return ids


def check_class_ids(classes: Optional[Sequence[int]], num_classes: int) -> list[int]:
    """The class ids to draw from: ``classes`` as ints (``class_ids``; None: all
    ``num_classes``); an empty list, an id outside [0, num_classes) or a repeated id raises
    ``ConfigError``."""
    ids = list(range(num_classes)) if classes is None else class_ids(classes)
    if not ids:
        raise ConfigError("classes is empty")
    bad = [c for c in ids if not 0 <= c < num_classes]
    if bad:
        raise ConfigError(f"unknown class {bad[0]}: the generator has classes 0..{num_classes - 1}")
    if len(set(ids)) != len(ids):
        raise ConfigError(f"classes has duplicates: {ids}")
    return ids


def item_index(index, owner: str) -> int:
    """``index`` of a dataset's ``__getitem__`` as an int: an int, numpy integer or 0-d integer
    tensor, not a list (a batch goes through ``__getitems__``); TypeError naming ``owner``."""
    try:
        return operator.index(index)
    except TypeError:
        raise TypeError(f"{owner} indices must be integers (a batch goes through __getitems__), "
                        f"got {type(index).__name__}") from None


def class_names_problem(names, num_classes: Optional[int] = None) -> Optional[str]:
    """What is wrong with ``names`` as the class names of ``num_classes`` classes (any number when
    None), or None when nothing is: a list of distinct, non-empty, printable strings (no newline
    or other control character) of at most ``MAX_CLASS_NAME_CHARS`` characters."""
    if not isinstance(names, (list, tuple)):
        return f"class names must be a list of strings, got {type(names).__name__}"
    if num_classes is not None and len(names) != num_classes:
        return f"{len(names)} class names for {num_classes} classes"
    for name in names:
        if not isinstance(name, str) or not name or not name.isprintable() or len(name) > MAX_CLASS_NAME_CHARS:
            shown = repr(name[:40]) + ("..." if len(name) > 40 else "") if isinstance(name, str) else repr(name)[:40]
            return f"class name {shown} refused; a class name is 1 to {MAX_CLASS_NAME_CHARS} printable characters"
    if len(set(names)) != len(names):
        return "class names must be distinct"
    return None
