"""augment.provenance: what a model was trained on, and the one rule of whether it fits data."""

import json

import pytest

from augment.errors import ConfigError
from augment.provenance import (
    LEGACY_SIZE,
    MNIST,
    DataSignature,
    check_fits,
    fit_problem,
    image_size,
    parse_trained_on,
    signature,
    trained_on_problem,
    unknown,
)

DIGITS = tuple(str(c) for c in range(10))
FASHION_IDX = DataSignature("idx", DIGITS, (28, 28), 1, "fashion")  # Fashion-MNIST as an IDX pair
FASHION_NPZ = DataSignature("npz", ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
                                    "bag", "ankle-boot"), (28, 28), 1, "fashion.npz")
DIGITS_8X8 = DataSignature("npz", DIGITS, (8, 8), 1, "digits.npz")
LETTERS = DataSignature("npz", tuple(chr(65 + c) for c in range(26)), (28, 28), 1, "letters.npz")


def test_a_model_of_mnist_fits_only_data_of_kind_mnist():
    assert fit_problem(MNIST, DataSignature("mnist", DIGITS, (28, 28), 1)) is None
    for data in (FASHION_IDX, FASHION_NPZ, DIGITS_8X8, LETTERS):  # ten classes "0".."9" at 28x28 are not enough
        assert "fits only MNIST" in fit_problem(MNIST, data)
    assert fit_problem(MNIST, unknown(10, 1)) is None  # the data of a module nobody recorded: not refused


def test_any_model_needs_as_many_classes_named_alike_and_as_many_channels():
    fashion_model = FASHION_NPZ
    assert fit_problem(fashion_model, FASHION_NPZ) is None
    assert fit_problem(fashion_model, FASHION_IDX) is None  # an IDX pair's numbers name nothing
    assert "has 10 classes" in fit_problem(fashion_model, LETTERS)
    assert "its class 0 is 't-shirt', not '0'" in fit_problem(fashion_model, DataSignature("mnist", DIGITS))
    assert "its class 1 is 'trouser', not 'pants'" in fit_problem(
        fashion_model, DataSignature("npz", ("t-shirt", "pants") + FASHION_NPZ.class_names[2:]))
    assert fit_problem(unknown(10, 1), LETTERS) == "it has 10 classes"
    assert "3-channel" in fit_problem(unknown(10, 3), FASHION_IDX)
    assert fit_problem(DataSignature("idx", DIGITS, (8, 8)), FASHION_IDX) is None  # the size is no part of the rule


def test_a_refusal_is_one_line_with_the_fix_for_the_role():
    with pytest.raises(ConfigError) as e:
        check_fits("evaluator", "the shipped evaluator", MNIST, FASHION_IDX, "--classifier FILE")
    message = str(e.value)
    assert message.startswith("the shipped evaluator does not fit idx data (10 classes 0..9, 28x28)")
    assert "augment train-classifier --data-dir fashion --dataset idx -o FILE" in message
    assert message.endswith("(--classifier FILE)") and "\n" not in message and len(message) < 400
    with pytest.raises(ConfigError, match=r"train a generator of it \(augment train --data-dir letters.npz "
                                          r"--dataset npz\).*\(--generator FILE\)$"):
        check_fits("generator", "the generator g.safetensors", unknown(10, 1), LETTERS, "--generator FILE")
    with pytest.raises(ConfigError, match="the generator's training data, npz data .*t-shirt, trouser, pullover, "
                                          r"\.\.\..*--filter-classifier FILE"):
        check_fits("judge", "the shipped evaluator", MNIST, FASHION_NPZ, "--filter-classifier FILE")
    check_fits("judge", "j", MNIST, MNIST, "x")  # fits: nothing raised
    long = DataSignature("folder", tuple(f"{c}" * 100 for c in "abcdefghij"), (28, 28), 1, "x" * 200)
    with pytest.raises(ConfigError) as e:  # names of 100 characters are cut: the line stays short
        check_fits("evaluator", "the evaluator", FASHION_NPZ, long, "--classifier FILE")
    assert "its class 0 is 't-shirt', not 'aaaaaaaaaaaaa...'" in str(e.value) and len(str(e.value)) < 400 + 200
    with pytest.raises(ConfigError, match="role must be one of"):
        check_fits("critic", "c", MNIST, MNIST, "x")


def test_trained_on_metadata_round_trips_and_bad_values_are_named():
    data = DataSignature("npz", ("a", "b"), (8, 12), 1)
    metadata = {k: json.dumps(v) for k, v in data.metadata().items()}  # as a safetensors header holds them
    assert signature(parse_trained_on(metadata), ("a", "b"), 1) == data
    legacy = signature({}, ("a", "b"), 1)  # a file written before the keys: kind unknown, 28x28
    assert (legacy.kind, legacy.size, legacy.channels) == (None, LEGACY_SIZE, 1)
    assert trained_on_problem({"source_kind": "png"}).startswith("bad source_kind 'png'")
    for size in ([28], [0, 28], [28.0, 28], "28x28", [28, 5000]):
        assert trained_on_problem({"source_size": size}).startswith("bad source_size"), size
    assert trained_on_problem({"source_channels": True}).startswith("bad source_channels")
    assert parse_trained_on({"source_size": "not json"}) == {"source_size": "not json"}


def test_an_image_size_is_a_side_or_height_and_width():
    assert image_size(8) == (8, 8) and image_size((64, 48)) == (64, 48) and image_size([3, 4]) == (3, 4)
    for bad in (0, -1, 4097, (8,), (8, 8, 8), "8", 8.0, True, (8, None)):
        with pytest.raises(ConfigError, match="image_size must be a side or"):
            image_size(bad)
