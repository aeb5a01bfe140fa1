"""Validation of names before they become paths or PromQL label values."""

from __future__ import annotations

import re

from analytics.errors import NameValidationError

# RFC 1123 label: what Kubernetes accepts as a namespace name, and so as a tenant.
_RFC1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Served model names are paths or hub ids ("meta-llama/Llama-3.1-8B-Instruct"): allow the
# characters those use, nothing that could break out of a quoted label value or a path.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,252}$")


def validate_tenant(name: str) -> str:
    """Return ``name`` if it is an RFC 1123 label (a Kubernetes namespace name), else raise."""
    if not isinstance(name, str) or not _RFC1123_LABEL.fullmatch(name):
        raise NameValidationError(
            f"tenant {name!r} is not an RFC 1123 label (lowercase letters, digits and '-', "
            "1-63 characters, starting and ending with a letter or digit)"
        )
    return name


def validate_model(name: str) -> str:
    """Return ``name`` if it is a safe model name (no quotes, spaces, '..' or control characters)."""
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name) or ".." in name:
        raise NameValidationError(
            f"model {name!r} is not a valid model name (letters, digits and ._/:@+-, "
            "at most 253 characters, no '..')"
        )
    return name


def promql_label_value(value: str) -> str:
    """Quote ``value`` as a PromQL string literal (backslash, double quote and newline escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
