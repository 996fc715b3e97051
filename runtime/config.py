"""Strict typed configs: a dataclass rebuilt from a dict refuses keys it does not have."""
from __future__ import annotations

import dataclasses
from typing import Any


def reject_unknown(cls: type, d: dict[str, Any], what: str, error: type[Exception] = ValueError) -> None:
    """Raise `error("unknown WHAT: a, b")` when `d` has keys that are not fields of dataclass `cls`
    (a config saved before a field existed still loads: the field gets its default)."""
    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise error(f"unknown {what}: {', '.join(sorted(unknown))}")
