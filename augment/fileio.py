"""Atomic file writes: a file appears complete or not at all (temp file, fsync, os.replace).

Temp files and folders are created with mode 0o666 / 0o777, which the kernel narrows by the
process's umask at that moment (as for any new file): no global state is read or changed here.
A failed write (a full disk, a write error of the writer inside ``atomic_path``) is one
``AugmentError``: "writing PATH failed: REASON"."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

from augment.errors import AugmentError

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it onto ``path``,
    with the mode a new file gets (0o666 narrowed by the umask).

    On any exception the temporary file is removed and ``path`` is left untouched; an
    ``OSError`` (a full disk, a permission) becomes the one-line ``AugmentError`` "writing PATH
    failed: REASON".
    """
    path = Path(path)
    if path.is_dir():
        raise AugmentError(f"{path} is a directory; give the path of a file to write")
    _make_parent(path)
    tmp_path, mode = _new_temp_file(path.parent, path.name)
    try:
        yield tmp_path
        os.chmod(tmp_path, mode)  # after writing: some writers replace the file or change its mode
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(e, OSError):
            raise write_failed(path, e) from None
        raise


def write_failed(path: PathLike, e: BaseException) -> AugmentError:
    """The one-line error of a failed write of ``path`` (an ``OSError``'s reason, or the first
    line of a writer's own error, e.g. torch's RuntimeError for a full disk)."""
    reason = e.strerror if isinstance(e, OSError) and e.strerror else " ".join(str(e).split())[:200]
    return AugmentError(f"writing {path} failed: {reason or type(e).__name__}")


def _temp_name(directory: Path, name: str) -> Path:
    return directory / f".{name}.{secrets.token_hex(6)}.tmp"


def _new_temp_file(directory: Path, name: str) -> tuple[Path, int]:
    """A new empty file ``.NAME.<random>.tmp`` in ``directory``, created with mode 0o666 (the
    kernel applies the umask), and that mode."""
    while True:
        tmp = _temp_name(directory, name)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        try:
            return tmp, os.fstat(fd).st_mode & 0o777
        finally:
            os.close(fd)


def _new_temp_directory(directory: Path, name: str) -> Path:
    """A new empty folder ``.NAME.<random>.tmp`` in ``directory``, mode 0o777 narrowed by the umask."""
    while True:
        tmp = _temp_name(directory, name)
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:
            continue


def _make_parent(path: Path) -> None:
    """Create the parent folder of ``path`` and its missing ancestors; a file in the way is
    named as such (not as mkdir's "File exists")."""
    parent = path.parent
    ancestor = parent.absolute()
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise AugmentError(f"cannot write {path}: its parent {ancestor} is not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AugmentError(f"cannot write to {parent}: {e.strerror or e}") from None


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def check_directory_target(out: Path, overwrite: bool,
                           replaceable: Optional[Callable[[Path], Optional[str]]] = None) -> None:
    """Refuse an existing non-directory, or a non-empty directory unless ``overwrite`` and
    ``replaceable(out)`` returns None (it returns why ``out`` must not be replaced, e.g. "it is
    not a synthetic dump"), so that overwriting never deletes a directory of someone else's."""
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise AugmentError(f"output {out} exists and is not a directory")
        if not any(out.iterdir()):
            return
        if not overwrite:
            raise AugmentError(f"output directory {out} is not empty; pass overwrite (--overwrite) to replace it "
                               f"or choose another")
        refusal = replaceable(out) if replaceable is not None else None
        if refusal:
            raise AugmentError(f"refusing to overwrite {out}: {refusal}")


@contextlib.contextmanager
def atomic_directory(out: PathLike, overwrite: bool = False,
                     replaceable: Optional[Callable[[Path], Optional[str]]] = None) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``out`` to fill; on success flush it to disk
    and rename it onto ``out``, which therefore appears complete or not at all. An existing
    non-empty ``out`` is refused up front unless ``overwrite`` and ``replaceable`` allow it (see
    ``check_directory_target``; then replaced as a whole). On any exception the temporary
    directory is removed and ``out`` is left as it was. A symbolic link ``out`` stands for the
    directory it names: that directory is written (or replaced), and the link stays."""
    out = Path(os.path.realpath(out))
    here = Path.cwd().resolve()
    if out.resolve() == here or out.resolve() in here.parents:
        raise AugmentError(f"output {out} is the current directory or holds it; name a directory to create")
    check_directory_target(out, overwrite, replaceable)
    parent = out.absolute().parent
    created = None  # the highest parent folder this call creates, removed again on failure
    if not parent.exists():
        created = parent
        while not created.parent.exists():
            created = created.parent
    _make_parent(out)
    try:
        tmp = _new_temp_directory(parent, out.name)
    except OSError as e:
        raise AugmentError(f"cannot write to {parent}: {e.strerror or e}") from None
    try:
        yield tmp
        sync_tree(tmp)
        _publish_directory(tmp, out, overwrite, replaceable)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created is not None:
            _remove_empty_folders(parent, created)
        raise


def _remove_empty_folders(deepest: Path, highest: Path) -> None:
    """rmdir ``deepest`` and its parents up to ``highest`` while they are empty."""
    folder = deepest
    while True:
        try:
            folder.rmdir()
        except OSError:
            return
        if folder == highest:
            return
        folder = folder.parent


def _publish_directory(tmp: Path, out: Path, overwrite: bool,
                       replaceable: Optional[Callable[[Path], Optional[str]]]) -> None:
    check_directory_target(out, overwrite, replaceable)  # again: something may have appeared meanwhile
    if out.is_dir() and any(out.iterdir()):
        if not _exchange_directories(tmp, out):
            # no atomic exchange here: move the old output aside, and back if the second rename fails
            old = _new_temp_directory(tmp.parent, f"{out.name}.old") / "previous"
            try:
                os.replace(out, old)
                try:
                    os.replace(tmp, out)
                except BaseException:
                    os.replace(old, out)
                    raise
            except BaseException:
                shutil.rmtree(old.parent, ignore_errors=True)
                raise
            tmp = old.parent
        _fsync_dir(out.absolute().parent)
        shutil.rmtree(tmp, ignore_errors=True)  # now the previous output
        return
    if out.is_dir():
        out.rmdir()
    os.replace(tmp, out)
    _fsync_dir(out.absolute().parent)


def _exchange_directories(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where the
    platform or file system cannot, and nothing moved."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    except (OSError, TypeError):
        return False
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def sync_tree(path: Path) -> None:
    """Flush every file under ``path`` to disk: one syncfs (Linux), else os.sync()."""
    fd = os.open(path, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if getattr(libc, "syncfs", None) is not None and libc.syncfs(fd) == 0:
            return
    except OSError:
        pass
    finally:
        os.close(fd)
    os.sync()


def check_writable(path: PathLike) -> None:
    """Raise AugmentError unless ``path`` could be written: its nearest existing ancestor is a
    writable directory (checked before a long job, so that it does not fail at the end)."""
    path = Path(path).absolute()
    if path.is_dir():
        raise AugmentError(f"output {path} is a directory")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise AugmentError(f"cannot write {path}: {ancestor} is not a writable directory")


def remove_stale_temp_files(directory: Path) -> None:
    """Delete the temp files of ``atomic_path`` that a killed process left in ``directory`` or
    its subdirectories, one level deep (their targets are intact)."""
    for tmp in [*directory.glob(".*.tmp"), *directory.glob("*/.*.tmp")]:
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def append_jsonl(path: Path, row: dict) -> None:
    """Append one JSON object as a line and flush (a log that a crash leaves readable)."""
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()


def truncate_jsonl(path: Path, keep: Callable[[dict], bool]) -> None:
    """Atomically rewrite a JSON-lines file with its leading rows for which ``keep`` holds; stops
    at the first row that fails or does not parse (a torn last line). A missing file stays missing."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            if not keep(json.loads(line)):
                break
        except (json.JSONDecodeError, KeyError, TypeError):
            break
        kept.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in kept))


@contextlib.contextmanager
def exclusive_lock(path: PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if needed) for the block; raise
    AugmentError at once if another process holds it (``what`` names the resource). Without
    ``fcntl`` (Windows) the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AugmentError(f"{what} is in use by another process (lock {path})") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not all platforms allow fsync on a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
