from pathlib import Path

import pytest

from augment.errors import DataError
from augment.fetch import fetch_mnist


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
