from pathlib import Path

import pytest

from augment.data.fetch import fetch_mnist
from augment.errors import DataError


def test_fetch_keeps_verified_files_and_fails_cleanly(tmp_path, shared_mnist):
    dest = tmp_path / "mnist"
    dest.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (dest / f"{name}.gz").write_bytes((shared_mnist / f"{name}.gz").read_bytes())
    report = fetch_mnist(dest, mirrors=(), use_npm=False)
    assert set(report.source.values()) == {"present"}
    (dest / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="could not fetch t10k-labels"):
        fetch_mnist(dest, mirrors=("http://127.0.0.1:9/",), timeout=2, use_npm=False)
    assert not any(p.name.endswith(".tmp") for p in Path(dest).iterdir())


def test_a_mirror_serving_other_data_is_skipped_and_the_first_good_one_is_kept(tmp_path, shared_mnist, monkeypatch):
    import gzip
    import io

    import torch

    import augment.data.fetch as fetch
    from augment.data.idx import encode_idx

    dest = tmp_path / "mnist"
    dest.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        (dest / f"{name}.gz").write_bytes((shared_mnist / f"{name}.gz").read_bytes())
    good = (shared_mnist / "t10k-labels-idx1-ubyte.gz").read_bytes()
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
