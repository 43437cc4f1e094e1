import json
import os
import sys

import pytest

import augment.fileio as fileio
from augment.errors import AugmentError
from augment.fileio import (
    append_jsonl,
    atomic_directory,
    atomic_path,
    atomic_write_text,
    check_writable,
    remove_stale_temp_files,
    sha256_file,
    truncate_jsonl,
)


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_a_written_file_is_synced_before_its_rename_and_gets_the_umask_mode(tmp_path, monkeypatch):
    synced, real_fsync = [], os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists(f"/proc/self/fd/{fd}") else fd)
        return real_fsync(fd)

    monkeypatch.setattr(fileio.os, "fsync", fsync)
    target = tmp_path / "f.bin"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"data")
        os.chmod(tmp, 0o600)  # as mkstemp leaves it
    if sys.platform.startswith("linux"):
        assert any(os.path.basename(str(p)).startswith(".f.bin.") and str(p).endswith(".tmp") for p in synced)
    umask = os.umask(0)
    os.umask(umask)
    assert (target.stat().st_mode & 0o777) == 0o666 & ~umask and target.read_bytes() == b"data"


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "f.bin"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk on fire")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def _fill(directory, name):
    (directory / name).write_text(name)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_overwrite_replaces_a_directory_as_a_whole(tmp_path, monkeypatch, exchange):
    real_exchange, exchanged = fileio._exchange_directories, []

    def spy(a, b):
        exchanged.append(exchange and real_exchange(a, b))
        return exchanged[-1]

    if exchange and not sys.platform.startswith("linux"):
        pytest.skip("renameat2 is Linux only")
    monkeypatch.setattr(fileio, "_exchange_directories", spy)
    out = tmp_path / "out"
    with atomic_directory(out) as d:
        _fill(d, "old.txt")
    with atomic_directory(out, overwrite=True) as d:
        _fill(d, "new.txt")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp or old directory left
    if exchange and exchanged == [False]:
        pytest.skip("this file system cannot exchange directories atomically")
    assert exchanged == [exchange]  # the path under test was the one taken


def test_failed_second_rename_puts_the_previous_output_back(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio, "_exchange_directories", lambda a, b: False)
    out = tmp_path / "out"
    with atomic_directory(out) as d:
        _fill(d, "old.txt")
    real_replace, calls = fileio.os.replace, []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", failing_replace)
    with pytest.raises(OSError):
        with atomic_directory(out, overwrite=True) as d:
            _fill(d, "new.txt")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_sha256(tmp_path):
    (tmp_path / "x").write_bytes(b"abc")
    assert sha256_file(tmp_path / "x") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_jsonl_append_and_truncate(tmp_path):
    log = tmp_path / "metrics.jsonl"
    truncate_jsonl(log, lambda row: True)
    assert not log.exists()  # a missing log stays missing
    for step in (1, 2, 3):
        append_jsonl(log, {"step": step})
    with open(log, "a") as f:
        f.write('{"step": 4')  # torn by a kill mid-write
    truncate_jsonl(log, lambda row: row["step"] <= 9)
    assert log.read_text() == '{"step": 1}\n{"step": 2}\n{"step": 3}\n'
    truncate_jsonl(log, lambda row: row["step"] <= 2)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2]


def test_remove_stale_temp_files(tmp_path):
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / ".a.json.x1.tmp", tmp_path / "sub" / ".b.png.x2.tmp"]
    kept = [tmp_path / "a.json", tmp_path / "sub" / "b.png", tmp_path / "keep.tmp"]
    for path in stale + kept:
        path.write_text("x")
    remove_stale_temp_files(tmp_path)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def test_check_writable(tmp_path):
    check_writable(tmp_path / "new" / "deeper" / "w.safetensors")  # missing folders are fine
    (tmp_path / "file").write_text("x")
    with pytest.raises(AugmentError, match="not a writable directory"):
        check_writable(tmp_path / "file" / "w.safetensors")
    with pytest.raises(AugmentError, match="is a directory"):
        check_writable(tmp_path)


def test_exclusive_lock_refuses_a_second_holder_until_released(tmp_path):
    from augment.fileio import exclusive_lock

    lock = tmp_path / "sub" / ".lock"
    with exclusive_lock(lock, "the thing"):
        with pytest.raises(AugmentError, match="the thing is in use by another process"):
            with exclusive_lock(lock, "the thing"):
                pass
    with exclusive_lock(lock, "the thing"):  # released
        pass


@pytest.mark.parametrize("target", [".", "", ".."])
def test_the_current_directory_is_not_an_output(tmp_path, monkeypatch, target):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    with pytest.raises(AugmentError, match="current directory"):
        with atomic_directory(target):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"] and not any((tmp_path / "here").iterdir())


@pytest.mark.parametrize("exchange", [True, False])
def test_a_link_to_a_directory_is_written_through(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(fileio, "_exchange_directories", lambda a, b: False)
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to(real)
    with atomic_directory(link) as d:  # an empty directory behind the link
        (d / "a.txt").write_text("first")
    with atomic_directory(link, overwrite=True) as d:  # an earlier output behind the link
        (d / "b.txt").write_text("second")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert sorted(p.name for p in real.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]  # no temporary left
