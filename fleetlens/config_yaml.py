"""Reading the configuration file: YAML text -> a mapping and the line of every dotted key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from analytics.errors import ConfigError
from fleetlens.config_values import join
from fleetlens.text_files import decode_utf8


def read_yaml(path: Path) -> tuple[Any, dict[str, int]]:
    """The parsed document (None when empty) and its key lines; ConfigError (InputError if not UTF-8) otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError("<file>", f"cannot read: {exc.strerror or exc}", source=str(path)) from exc
    text = decode_utf8(data, str(path))
    try:
        lines = key_lines(yaml.compose(text, Loader=yaml.SafeLoader), str(path))
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError("<yaml>", f"{where}{exc.problem or exc}", source=str(path)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError("<yaml>", str(exc), source=str(path)) from exc
    return raw, lines


def key_lines(node: yaml.Node | None, source: str) -> dict[str, int]:
    """Dotted key -> 1-based line of every key in the document; refuses duplicate keys."""
    lines: dict[str, int] = {}

    def walk(n: yaml.Node, key: str) -> None:
        lines.setdefault(key, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in n.value:
                name = join(key, str(k.value))
                if k.value in seen:
                    raise ConfigError(name, f"duplicate key (line {k.start_mark.line + 1})", source=source)
                seen.add(k.value)
                lines[name] = k.start_mark.line + 1
                walk(v, name)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, f"{key}[{i}]")

    if node is not None:
        walk(node, "")
    return lines
