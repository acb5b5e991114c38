"""A writer of tiny *stored* (uncompressed) RAR 4.x archives, single or multi-volume, for the extraction tests.

No RAR creator is free software, so the test archives are assembled from the RAR 1.5-4.x block layout
(marker, main header, file headers, end-of-archive block; each header's CRC is the low 16 bits of the CRC-32
of its bytes after the CRC field). Each volume holds whole files.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

MARKER = b"Rar!\x1a\x07\x00"
MAIN, FILE, END = 0x73, 0x74, 0x7B
VOLUME, NEW_NUMBERING, FIRST_VOLUME = 0x0001, 0x0010, 0x0100
DOS_TIME_2026_01_01 = (46 << 25) | (1 << 21) | (1 << 16)


def _block(head_type: int, flags: int, body: bytes = b"") -> bytes:
    head = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head


def _file(name: str, data: bytes) -> bytes:
    encoded = name.encode()
    body = struct.pack("<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), DOS_TIME_2026_01_01, 20, 0x30,
                       len(encoded), 0o100644) + encoded
    return _block(FILE, 0x8000, body) + data


def write_rar_volumes(folder: Path, stem: str, volumes: list[dict[str, bytes]]) -> list[Path]:
    """Write ``stem.partNN.rar`` (or ``stem.rar`` for one volume); returns the paths."""
    paths = []
    many = len(volumes) > 1
    for i, files in enumerate(volumes):
        flags = (VOLUME | NEW_NUMBERING | (FIRST_VOLUME if i == 0 else 0)) if many else 0
        data = MARKER + _block(MAIN, flags, b"\0" * 6) + b"".join(_file(n, d) for n, d in files.items())
        data += _block(END, 0x4000 | (VOLUME if i < len(volumes) - 1 else 0))
        path = folder / (f"{stem}.part{i + 1:02d}.rar" if many else f"{stem}.rar")
        path.write_bytes(data)
        paths.append(path)
    return paths
