"""IDX files (LeCun's format, MNIST's): read, validate, write.

An IDX file is 2 zero bytes, a type code (0x08 = uint8, the only one supported), the number of
dimensions (1 to 4), one big-endian int32 per dimension, then the data. Files may be
gzip-compressed, detected by their magic bytes, not their name. No file holds or declares more
bytes than the budget of ``augment.data.limits`` (MNIST's train images: 47 MB).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Optional

import torch

from augment.data.limits import check_bytes, open_regular
from augment.errors import DataError
from augment.fileio import PathLike

_IDX_DTYPE = 0x08  # unsigned byte; the only type MNIST-style data uses


# ---------------------------------------------------------------------------------------- IDX


def parse_idx(raw: bytes, name: str = "<bytes>") -> torch.Tensor:
    """Parse the (uncompressed) bytes of an IDX file into a uint8 tensor of its dimensions."""
    if len(raw) < 4:
        raise DataError(f"{name}: not an IDX file (only {len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{name}: not an IDX file (bad magic number {raw[:4].hex()})")
    if raw[2] != _IDX_DTYPE:
        raise DataError(f"{name}: unsupported IDX element type 0x{raw[2]:02x} (only uint8 0x08)")
    ndim = raw[3]
    if not 1 <= ndim <= 4:
        raise DataError(f"{name}: IDX file with {ndim} dimensions is not supported")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX header ({len(raw)} bytes)")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header
    count = 1
    for d in dims:
        count *= d
    expected += count
    if len(raw) != expected:
        kind = "truncated" if len(raw) < expected else "has trailing bytes (or inflates past its header)"
        raise DataError(f"{name}: IDX file {kind}: header {dims} needs {expected} bytes, "
                        f"file has {len(raw)}")
    data = torch.frombuffer(bytearray(memoryview(raw)[header:]), dtype=torch.uint8) if count else \
        torch.empty(0, dtype=torch.uint8)
    return data.reshape(dims)


def read_file_bytes(path: PathLike) -> bytes:
    """Bytes of an IDX file (a regular file), gunzipped if it starts with the gzip magic. A gzip
    file is inflated no further than its IDX header declares (plus one byte, to tell that it
    holds more), so a small file that would inflate to gigabytes costs no more memory than its
    header claims, and no file, compressed or not, holds more bytes than the budget
    (``augment.data.limits``)."""
    path = Path(path)
    with open_regular(path) as file:
        check_bytes(os.fstat(file.fileno()).st_size, str(path), "holds")
        try:
            raw = file.read()
        except OSError as e:
            raise DataError(f"cannot read {path}: {e.strerror}") from None
    check_bytes(len(raw), str(path), "holds")
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = _gunzip_declared(raw, path)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt gzip data ({e})") from None
    return raw


def _gunzip_declared(data: bytes, path: Path) -> bytes:
    """Inflate gzip ``data`` (one or more members) up to the size its IDX header declares; a
    ``DataError`` when it holds more. A file that is not IDX inside stops after its first bytes."""
    out = bytearray()
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pending = data

    def want() -> int:  # bytes the header says the file has (+1), once known
        if len(out) < 4 or out[0] or out[1] or not 1 <= out[3] <= 4:
            return 4 if len(out) < 4 else len(out)  # no (valid) header: nothing more to read
        header = 4 + 4 * out[3]
        if len(out) < header:
            return header
        count = 1
        for i in range(out[3]):
            count *= int.from_bytes(out[4 + 4 * i:8 + 4 * i], "big")
        check_bytes(header + count, str(path), "its IDX header declares")
        return header + count + 1

    while len(out) < want():
        chunk = stream.decompress(pending, min(want() - len(out), 1 << 24))
        out += chunk
        pending = stream.unconsumed_tail
        if stream.eof:
            if not stream.unused_data.strip(b"\0"):
                break
            stream, pending = zlib.decompressobj(16 + zlib.MAX_WBITS), stream.unused_data
        elif not chunk and not pending:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")
    declared = want() - 1
    if len(out) >= 8 and len(out) > declared:
        raise DataError(f"{path}: gzip data inflates past the {declared:,} bytes its IDX header declares "
                        f"(corrupt, or not an IDX file)")
    return bytes(out)


def read_idx(path: PathLike) -> torch.Tensor:
    """Read an IDX file (raw or gzip) into a uint8 tensor, validating its header and size."""
    return parse_idx(read_file_bytes(path), str(path))


def encode_idx(array: torch.Tensor) -> bytes:
    """The IDX bytes of a uint8 tensor of 1 to 4 dimensions."""
    if array.dtype != torch.uint8 or not 1 <= array.dim() <= 4:
        raise DataError("encode_idx needs a uint8 tensor of 1 to 4 dimensions")
    header = bytes([0, 0, _IDX_DTYPE, array.dim()])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.contiguous().cpu().numpy().tobytes()


# ------------------------------------------------------------------------- locating, verifying


def find_idx_file(directory: Path, name: str) -> Optional[Path]:
    """``directory/name`` or ``directory/name.gz``, whichever exists (raw first)."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None
