import pytest

from augment.errors import AugmentError, CheckpointError, ConfigError, DataError, TrainingError, one_line


def test_one_line_collapses_whitespace_and_names_silent_errors():
    assert one_line(ValueError("bad\n  header:\tline 2 ")) == "bad header: line 2"
    assert one_line(KeyError()) == "KeyError"


@pytest.mark.parametrize("kind", [ConfigError, DataError, CheckpointError, TrainingError])
def test_every_kind_is_an_augment_error_the_cli_prints_as_one_line(kind):
    assert issubclass(kind, AugmentError)
