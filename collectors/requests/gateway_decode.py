"""Decoding a JSON-lines access log into one text column per alias key, naming the lines that are bad.

The fast path reads the whole log with polars' NDJSON reader; only when that fails are lines screened
and decoded in chunks, and only the lines the chunks still reject are read one by one.
"""

from __future__ import annotations

import json
import math

import polars as pl

from collectors.requests.gateway_fields import ALIASES, RAW_COLUMNS, SCHEMA, col

_CHUNK = 256  # below this many lines a rejected chunk is read line by line


def _flatten(df: pl.DataFrame) -> pl.DataFrame:
    """Decoded NDJSON -> one text column per alias key."""
    exprs = [pl.col(c) for c in df.columns if c not in SCHEMA or not isinstance(SCHEMA[c], pl.Struct)]
    for parent, dtype in SCHEMA.items():
        if isinstance(dtype, pl.Struct) and parent in df.columns:
            exprs += [pl.col(parent).struct.field(f.name).alias(f"{parent}>{f.name}") for f in dtype.fields]
    # The reader returns one chunk per block; every later column operation is far cheaper on one.
    return df.select(exprs).select(RAW_COLUMNS).rechunk()


def _read_chunk(data: bytes) -> pl.DataFrame | None:
    try:
        return _flatten(pl.read_ndjson(data, schema=SCHEMA))
    except (pl.exceptions.PolarsError, ValueError):
        return None


def _text(value: object) -> str | None:
    """A JSON value as the NDJSON reader would give it for a text column."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a number out of range")
    return json.dumps(value, separators=(",", ":"))


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _read_line(raw: bytes) -> dict[str, str | None] | str:
    """One line -> its alias columns, or the reason it is bad."""
    try:
        obj = json.loads(raw, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except ValueError as exc:
        return f"not JSON: {exc}"
    if not isinstance(obj, dict):
        return f"not a JSON object (got {type(obj).__name__})"
    out: dict[str, str | None] = {}
    try:
        for a in ALIASES:
            if isinstance(a.key, str):
                value = obj.get(a.key)
            else:
                parent = obj.get(a.key[0])
                # A parent that is not an object is some other field of the same name: not ours.
                value = parent.get(a.key[1]) if isinstance(parent, dict) else None
            out[col(a.key)] = _text(value)
    except ValueError as exc:
        return f"field {a.key!r}: {exc}"
    return out


def _split(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line does not start another
    return lines


def _decode_slow(data: bytes) -> tuple[pl.DataFrame, list[tuple[int, str]], int, int]:
    """Screen lines, decode them in chunks, read rejected chunks line by line."""
    lines = _split(data)
    frames: list[pl.DataFrame] = []
    bad: list[tuple[int, str]] = []
    candidates: list[tuple[int, bytes]] = []
    blank = 0
    for no, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if not stripped:
            blank += 1
        elif stripped[:1] == b"{" and stripped[-1:] == b"}":
            candidates.append((no, stripped))
        else:
            reason = _read_line(stripped)
            bad.append((no, reason if isinstance(reason, str) else "not a JSON object"))

    def decode(chunk: list[tuple[int, bytes]]) -> None:
        if not chunk:
            return
        if len(chunk) > 1:
            df = _read_chunk(b"\n".join(raw for _, raw in chunk))
            if df is not None and df.height == len(chunk):
                frames.append(df.with_columns(line=pl.Series([no for no, _ in chunk], dtype=pl.Int64)))
                return
        if len(chunk) > _CHUNK:
            step = max(_CHUNK, len(chunk) // 16)
            for i in range(0, len(chunk), step):
                decode(chunk[i:i + step])
            return
        rows: dict[str, list[str | None]] = {c: [] for c in RAW_COLUMNS}
        nos: list[int] = []
        for no, raw in chunk:
            got = _read_line(raw)
            if isinstance(got, str):
                bad.append((no, got))
                continue
            nos.append(no)
            for c in RAW_COLUMNS:
                rows[c].append(got[c])
        if nos:
            frames.append(pl.DataFrame(rows, schema={c: pl.Utf8 for c in RAW_COLUMNS})
                          .with_columns(line=pl.Series(nos, dtype=pl.Int64)))

    for i in range(0, len(candidates), 1 << 16):
        decode(candidates[i:i + (1 << 16)])
    raw_frame = pl.concat(frames, how="vertical", rechunk=True) if frames else _empty_raw()
    return raw_frame.sort("line"), bad, len(lines), blank


def _empty_raw() -> pl.DataFrame:
    return pl.DataFrame(schema={**{c: pl.Utf8 for c in RAW_COLUMNS}, "line": pl.Int64})


def decode(data: bytes) -> tuple[pl.DataFrame, list[tuple[int, str]], int, int]:
    """Bytes of a JSON-lines log -> (alias columns + line, (line, reason) of bad lines, total lines, blank lines)."""
    total = data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)
    df = _read_chunk(data) if data else _empty_raw().drop("line")
    # The reader skips blank lines; only when it skipped none do row numbers equal line numbers.
    if df is not None and df.height == total:
        return df.with_columns(line=pl.int_range(1, total + 1, dtype=pl.Int64)), [], total, 0
    return _decode_slow(data)
