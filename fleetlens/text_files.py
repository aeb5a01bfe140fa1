"""Reading the text files a user names (configuration, JSON documents): UTF-8 or an InputError naming file and line."""

from __future__ import annotations

from pathlib import Path

from analytics.errors import InputError


def decode_utf8(data: bytes, source: str) -> str:
    """``data`` as UTF-8 text; InputError naming ``source``, the line and the byte offset otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            source, line, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc


def read_utf8(path: Path) -> str:
    """The text of the file at ``path``; InputError naming it when it cannot be read or is not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(str(path), None, f"cannot read: {exc.strerror or exc}") from exc
    return decode_utf8(data, str(path))
