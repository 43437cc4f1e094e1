"""Exception types of the library. The CLI turns any ``AugmentError`` into one line and exit 1."""


class AugmentError(Exception):
    """Base class for errors caused by the user's input (files, arguments, configs)."""


class ConfigError(AugmentError, ValueError):
    """A configuration value is out of range or unknown."""


class DataError(AugmentError, ValueError):
    """A data file or directory is missing, malformed or fails its checksum."""


class CheckpointError(AugmentError, ValueError):
    """A checkpoint or generator file is missing, corrupt, unsafe or of the wrong kind."""


class TrainingError(AugmentError):
    """Training cannot go on (non-finite loss, unusable run directory, unusable data)."""


def one_line(e: BaseException) -> str:
    """An exception's message on one line (whitespace runs collapsed), or its type's name."""
    return " ".join(str(e).split()) or type(e).__name__
