"""`--set KEY=VALUE` overrides of a typed training config, shared by `heed train asr` and `heed train iqd`."""
from __future__ import annotations

import json
from typing import TypeVar

C = TypeVar("C")


def apply_settings(cfg: C, items: list[str]) -> C:
    """cfg (a config with `to_dict`/`from_dict` and a nested `model` dict) with the items applied.

    VALUE is read as JSON when it parses (numbers, booleans, lists), else as a string; `model.KEY`
    sets a field of the model config. ValueError on an item without `=` or an unknown key.
    """
    d = cfg.to_dict()
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set needs KEY=VALUE, got {item!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        target = d["model"] if key.startswith("model.") else d
        name = key.removeprefix("model.")
        if name not in target or name == "model":
            raise ValueError(f"unknown setting {key!r}")
        target[name] = parsed
    return type(cfg).from_dict(d)
