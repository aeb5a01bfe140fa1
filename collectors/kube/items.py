"""Reading the items of a Kubernetes list document (``kubectl get ... -o json``); a bad item is a ``Problem``."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from analytics.errors import InputError, ItemError, Problem

# The kind of an item that does not say, by the kind of the list holding it.
_LIST_KINDS = {
    "PodList": "Pod",
    "NodeList": "Node",
    "ResourceQuotaList": "ResourceQuota",
    "ClusterQueueList": "ClusterQueue",
    "LocalQueueList": "LocalQueue",
    "QueueList": "Queue",
}


@dataclass(frozen=True, slots=True)
class Item:
    """One list item with its position and kind."""

    index: int
    kind: str | None
    obj: Mapping[str, Any]

    @property
    def name(self) -> str | None:
        """``namespace/name`` or ``name`` for the report."""
        meta = self.obj.get("metadata")
        if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
            return None
        ns = meta.get("namespace")
        return f"{ns}/{meta['name']}" if isinstance(ns, str) and ns else meta["name"]


def json_document(doc: Mapping[str, Any] | str, *, source: str, expected: str) -> Mapping[str, Any]:
    """``doc`` (JSON text or decoded) as an object; InputError naming ``source`` (and the line) otherwise."""
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except json.JSONDecodeError as exc:
            raise InputError(source, exc.lineno, f"not JSON: {exc.msg}") from exc
    if not isinstance(doc, Mapping):
        raise InputError(source, None, f"expected a JSON object ({expected}), got {type(doc).__name__}")
    return doc


def read_items(doc: Mapping[str, Any] | str, *, source: str) -> tuple[list[Item], list[Problem]]:
    """The items of a ``List``/``<Kind>List`` document; InputError if the document itself is unusable."""
    doc = json_document(doc, source=source, expected="a Kubernetes List")
    kind = doc.get("kind")
    if not isinstance(kind, str) or not (kind == "List" or kind.endswith("List")):
        raise InputError(source, None, f"expected kind List or <Kind>List, got {kind!r}")
    items = doc.get("items")
    if items is None:
        items = []  # an API server may omit an empty list
    if not isinstance(items, list):
        raise InputError(source, None, f"'items' must be a list, got {type(items).__name__}")
    default = _LIST_KINDS.get(kind)
    out: list[Item] = []
    issues: list[Problem] = []
    for i, obj in enumerate(items):
        if not isinstance(obj, Mapping):
            issues.append(Problem(source, f"skipped: not an object ({type(obj).__name__})", item=i))
            continue
        item_kind = obj.get("kind", default)
        out.append(Item(i, item_kind if isinstance(item_kind, str) else None, obj))
    return out, issues


def of_kind(items: list[Item], kind: str) -> Iterator[Item]:
    """The items of one kind."""
    return (it for it in items if it.kind == kind)


def skipped(source: str, item: int, name: str | None, exc: Exception) -> Problem:
    """The Problem of an item skipped because reading it raised ``exc``."""
    return Problem(source, f"skipped: {exc}", item=item, name=name)


def section(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``obj[key]`` as an object ({} when absent); ItemError when it is something else."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ItemError(f"{key} must be an object, got {type(value).__name__}")
    return value


def str_map(value: object, what: str) -> dict[str, str]:
    """Labels/annotations: an object of strings ({} when absent); ItemError otherwise."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ItemError(f"{what} must be an object of strings")
    return dict(value)


def utc(ts: datetime) -> datetime:
    """``ts`` as an aware UTC datetime (a naive one is taken to be UTC already)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
