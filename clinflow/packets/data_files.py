"""Read the packet flow's data files (rule table, keyword rules, checklists, protocol matrix).

Files live under ``clinflow/data/`` and ship with the package. Reads are cached: the files are
read-only data, so every call with the same name returns the same parsed object (do not mutate).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import yaml


class DataFileError(ValueError):
    """A data file is missing or not shaped as documented."""


@lru_cache(maxsize=64)
def read_yaml(*parts: str) -> Any:
    """Parse ``clinflow/data/<parts...>`` as YAML; raises :class:`DataFileError` if absent."""
    node = resources.files("clinflow").joinpath("data", *parts)
    if not node.is_file():
        raise DataFileError(f"data file not found: data/{'/'.join(parts)}")
    return yaml.safe_load(node.read_text(encoding="utf-8"))


def list_data(*parts: str) -> list[str]:
    """Names of the files in the data folder ``clinflow/data/<parts...>``, sorted."""
    node = resources.files("clinflow").joinpath("data", *parts)
    if not node.is_dir():
        return []
    return sorted(child.name for child in node.iterdir() if child.is_file())
