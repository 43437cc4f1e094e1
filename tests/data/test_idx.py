"""IDX files: round trip, malformed and corrupt files."""

import gzip
import tracemalloc

import pytest
import torch

from augment.data.idx import encode_idx, parse_idx, read_idx
from augment.errors import DataError
from tests.conftest import bar_digits


def test_idx_round_trip_raw_and_gzip(tmp_path):
    images, _ = bar_digits(7)
    raw = encode_idx(images)
    (tmp_path / "a").write_bytes(raw)
    (tmp_path / "b.gz").write_bytes(gzip.compress(raw))
    assert torch.equal(read_idx(tmp_path / "a"), images)
    assert torch.equal(read_idx(tmp_path / "b.gz"), images)


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b[:-5], "truncated"),
    (lambda b: b + b"\0", "trailing"),
    (lambda b: b"\x01" + b[1:], "magic"),
    (lambda b: b[:1] + b"\x01" + b[2:], "magic"),  # both zero bytes of the magic are checked
    (lambda b: b[:2] + b"\x0d" + b[3:], "element type"),
    (lambda b: b[:6], "truncated IDX header"),
    (lambda b: b[:2], "not an IDX"),
])
def test_malformed_idx_is_refused(mutate, message):
    raw = encode_idx(bar_digits(3)[0])
    with pytest.raises(DataError, match=message):
        parse_idx(mutate(raw))


def test_corrupt_gzip_is_refused(tmp_path):
    blob = gzip.compress(encode_idx(bar_digits(30)[0]))
    (tmp_path / "x.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="corrupt gzip"):
        read_idx(tmp_path / "x.gz")


def test_a_gzip_that_inflates_past_its_header_is_refused_in_bounded_memory(tmp_path):
    """A small .gz whose header declares 10 items but that inflates to 64 MB: refused after
    inflating ~the declared size, not after inflating everything."""
    header = bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big")
    path = tmp_path / "bomb-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(header + bytes(10) + bytes(64 << 20), compresslevel=9))
    tracemalloc.start()
    with pytest.raises(DataError, match="inflates past the 18 bytes its IDX header declares"):
        read_idx(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 << 20, peak  # the file is ~64 KB; inflating it all would take 64 MB


def test_a_multi_member_gzip_is_read_whole(tmp_path):
    raw = encode_idx(torch.arange(12, dtype=torch.uint8))
    path = tmp_path / "two-members.gz"
    path.write_bytes(gzip.compress(raw[:7]) + gzip.compress(raw[7:]))
    assert torch.equal(read_idx(path), torch.arange(12, dtype=torch.uint8))


def test_an_idx_file_declaring_more_than_the_cap_is_refused_before_inflating(tmp_path, monkeypatch):
    """A gzip whose header declares 256 x 256 x 256 x 256 bytes (4 GiB of images), with data
    that really inflates that far: refused at the header, not after inflating gigabytes."""
    header = bytes([0, 0, 8, 4]) + (256).to_bytes(4, "big") * 4
    path = tmp_path / "huge-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header + bytes(64 << 20), compresslevel=9))  # ~64 KB, inflating to 64 MB
    tracemalloc.start()
    with pytest.raises(DataError, match="declares 4,294,967,316 bytes, more than"):
        read_idx(path)
    assert tracemalloc.get_traced_memory()[1] < 4 << 20
    tracemalloc.stop()
    monkeypatch.setenv("AUGMENT_MAX_PIXELS", "16")  # and an uncompressed file by its size
    (tmp_path / "raw").write_bytes(encode_idx(torch.arange(12, dtype=torch.uint8)))
    with pytest.raises(DataError, match="20 bytes, more than the 16"):
        read_idx(tmp_path / "raw")
