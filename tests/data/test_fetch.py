from pathlib import Path

import pytest

from augment.data.fetch import FetchError, fetch_mnist
from augment.data.idx import find_idx_file
from augment.errors import DataError


def copy_mnist(shared_mnist, dest, names):
    """MNIST's files ``names`` copied from wherever they were found, as they are (raw or .gz)."""
    dest.mkdir()
    for name in names:
        found = find_idx_file(shared_mnist, name)
        (dest / found.name).write_bytes(found.read_bytes())


def test_fetch_keeps_verified_files_and_fails_cleanly(tmp_path, shared_mnist):
    dest = tmp_path / "mnist"
    copy_mnist(shared_mnist, dest, ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                    "t10k-labels-idx1-ubyte"))
    report = fetch_mnist(dest, mirrors=(), use_npm=False)
    assert set(report.source.values()) == {"present"} and report.failures == []
    find_idx_file(dest, "t10k-labels-idx1-ubyte").write_bytes(b"garbage")
    with pytest.raises(DataError, match="could not fetch t10k-labels"):
        fetch_mnist(dest, mirrors=("http://127.0.0.1:9/",), timeout=2, use_npm=False)
    assert not any(p.name.endswith(".tmp") for p in Path(dest).iterdir())


def test_a_mirror_serving_other_data_is_skipped_and_the_first_good_one_is_kept(tmp_path, shared_mnist, monkeypatch):
    import gzip
    import io

    import torch

    import augment.data.fetch as fetch
    from augment.data.idx import encode_idx, read_file_bytes

    dest = tmp_path / "mnist"
    copy_mnist(shared_mnist, dest, ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"))
    good = gzip.compress(read_file_bytes(find_idx_file(shared_mnist, "t10k-labels-idx1-ubyte")))
    other = gzip.compress(encode_idx(torch.zeros(10000, dtype=torch.uint8)))  # valid IDX, not MNIST's
    opened = []

    def urlopen(url, timeout):
        opened.append(url)
        return io.BytesIO(other if url.startswith("http://bad/") else good)

    monkeypatch.setattr(fetch.urllib.request, "urlopen", urlopen)
    report = fetch_mnist(dest, mirrors=("http://bad/", "http://good/", "http://spare/"), use_npm=False)
    assert report.source["t10k-labels-idx1-ubyte"] == "http://good/t10k-labels-idx1-ubyte.gz"
    assert opened == ["http://bad/t10k-labels-idx1-ubyte.gz", "http://good/t10k-labels-idx1-ubyte.gz"]
    assert (dest / "t10k-labels-idx1-ubyte").read_bytes() == gzip.decompress(good)
    assert report.failures == ["http://bad/t10k-labels-idx1-ubyte.gz: not MNIST's t10k-labels-idx1-ubyte (SHA-256)"]


def test_a_failed_source_is_not_asked_again_and_every_failure_is_named_once_all_fail(tmp_path, monkeypatch):
    import urllib.error

    import augment.data.fetch as fetch

    opened, said = [], []

    def urlopen(url, timeout):
        opened.append(url)
        raise urllib.error.URLError("unreachable")

    monkeypatch.setattr(fetch.urllib.request, "urlopen", urlopen)
    with pytest.raises(FetchError) as e:
        fetch_mnist(tmp_path / "m", mirrors=("http://a/", "http://b/"), use_npm=False, log=said.append)
    assert opened == ["http://a/train-images-idx3-ubyte.gz", "http://b/train-images-idx3-ubyte.gz"]
    assert e.value.failures == ["http://a/train-images-idx3-ubyte.gz: <urlopen error unreachable>",
                                "http://b/train-images-idx3-ubyte.gz: <urlopen error unreachable>"]
    assert str(e.value).startswith("could not fetch train-images-idx3-ubyte, train-labels-idx1-ubyte, ")
    assert "\n" not in str(e.value) and all(f in str(e.value) for f in e.value.failures)
    assert said == [f"failed {f}" for f in e.value.failures]  # what a verbose caller prints
    assert isinstance(e.value, DataError) and not (tmp_path / "m").exists()


def test_a_file_that_is_not_mnists_is_replaced_and_reported(tmp_path, shared_mnist, monkeypatch):
    """Another data set under MNIST's names is not replaced silently: the report names it."""
    import gzip
    import io

    import augment.data.fetch as fetch
    from augment.data.idx import read_file_bytes

    dest = tmp_path / "mnist"
    copy_mnist(shared_mnist, dest, ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"))
    (dest / "t10k-labels-idx1-ubyte").write_bytes(b"another data set's labels")
    good = gzip.compress(read_file_bytes(find_idx_file(shared_mnist, "t10k-labels-idx1-ubyte")))
    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(good))
    report = fetch_mnist(dest, mirrors=("http://good/",), use_npm=False)
    assert report.replaced == [str(dest / "t10k-labels-idx1-ubyte")]
    assert fetch_mnist(dest, mirrors=(), use_npm=False).replaced == []
