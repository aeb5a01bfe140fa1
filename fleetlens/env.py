"""Every environment variable fleetlens reads, each a named constant: the one module that reads them.

Nothing else in fleetlens touches ``os.environ``. Variables a configuration file names with
``${env:NAME}`` are read through ``substitution``; the variables fleetlens itself reads are the
``EnvVar`` constants below, listed in ``KNOWN``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One environment variable fleetlens reads, with what it is for."""

    name: str
    doc: str

    def get(self, default: str | None = None) -> str | None:
        """The variable's value, or ``default`` when it is unset."""
        return os.environ.get(self.name, default)


CONFIG = EnvVar(
    "FLEETLENS_CONFIG",
    "Path of the YAML configuration file, used when the CLI is given no --config option.",
)
"""Path of the YAML configuration file, used when the CLI is given no --config option."""

KNOWN: tuple[EnvVar, ...] = (CONFIG,)


def is_valid_name(name: str) -> bool:
    """Whether ``name`` is a usable environment variable name (letters, digits, ``_``)."""
    return bool(_NAME.fullmatch(name))


def substitution(name: str) -> str | None:
    """The value of the variable a configuration names as ``${env:NAME}``; None when it is unset."""
    if not is_valid_name(name):
        raise ValueError(f"{name!r} is not an environment variable name")
    return os.environ.get(name)
