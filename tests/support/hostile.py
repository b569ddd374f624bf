"""Hostile files made on the spot: pixel bombs, names that are not UTF-8, odd directory entries."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from PIL import Image

NOT_UTF8 = b"bad\xff\xfename.jpg"
"""A file name that is not UTF-8 (Latin-1 bytes); its id is ``bad%FF%FEname.jpg``."""


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A small, valid PNG whose header declares ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def write_named(folder: Path, name: bytes, data: bytes) -> None:
    """Write ``data`` to the file ``folder/name``, ``name`` given as raw bytes."""
    path = os.path.join(os.fsencode(folder), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        out.write(data)


def jpeg(size: tuple[int, int] = (8, 6), color: str = "red") -> bytes:
    """A small JPEG."""
    import io

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()
