"""Read the packet flow's data files (rule table, vocabularies, checklists, protocol matrix).

Defaults ship under ``clinflow/data/``. A study configuration folder (setting
``packets_config_dir``, env ``CLINFLOW_PACKETS_CONFIG_DIR``) overrides any of them file by file
with the same relative layout (``checklists/apac.yaml``, ``rules/protocol_versions.yaml``, ...):
a file present there wins, anything else comes from the defaults. Files are YAML read with
``safe_load``, at most :data:`MAX_BYTES` each; a path never leaves the folder (symlinks out of it
are refused). Reads are cached (do not mutate the results); :func:`configure` clears the caches.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

F = TypeVar("F")
MAX_BYTES = 1024 * 1024
ENV = "CLINFLOW_PACKETS_CONFIG_DIR"
_config_dir: Path | None = None
_configured = False


class DataFileError(ValueError):
    """A data file is missing, too large, outside its folder or not shaped as documented."""


def configure(folder: Path | str | None, *, export: bool = False) -> None:
    """Use ``folder`` as the study configuration (None: shipped defaults only); clears caches.

    With ``export`` the choice is also put in the environment (``CLINFLOW_PACKETS_CONFIG_DIR``),
    so the parse and OCR processes a worker spawns read the same configuration."""
    global _config_dir, _configured
    _config_dir = Path(folder).resolve() if folder else None
    _configured = True
    if export:
        if _config_dir is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = str(_config_dir)
    for cached in list(_CACHES):
        cached.cache_clear()


def config_dir() -> Path | None:
    """The study configuration folder in use (set by :func:`configure`, else the env var)."""
    if not _configured:
        env = os.environ.get(ENV)
        return Path(env).resolve() if env else None
    return _config_dir


def _override(parts: tuple[str, ...]) -> Path | None:
    root = config_dir()
    if root is None:
        return None
    candidate = root.joinpath(*parts)
    if not candidate.exists():
        return None
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root):
        raise DataFileError(f"{'/'.join(parts)} leads outside the configuration folder")
    return resolved if resolved.is_file() else None


def source_of(*parts: str) -> str:
    """Where ``parts`` is read from: the configuration folder's file or the shipped default."""
    found = _override(parts)
    return str(found) if found else f"(default) clinflow/data/{'/'.join(parts)}"


def _read_text(parts: tuple[str, ...]) -> str:
    found = _override(parts)
    if found is not None:
        if found.stat().st_size > MAX_BYTES:
            raise DataFileError(f"{found}: larger than {MAX_BYTES} bytes")
        return found.read_text(encoding="utf-8")
    node = resources.files("clinflow").joinpath("data", *parts)
    if not node.is_file():
        raise DataFileError(f"data file not found: data/{'/'.join(parts)}")
    return node.read_text(encoding="utf-8")


@lru_cache(maxsize=64)
def read_yaml(*parts: str) -> Any:
    """Parse data file ``parts`` as YAML (configuration folder first, then the defaults)."""
    try:
        return yaml.safe_load(_read_text(parts))
    except yaml.YAMLError as exc:
        raise DataFileError(f"{'/'.join(parts)}: not valid YAML ({exc})") from exc


@lru_cache(maxsize=16)
def list_data(*parts: str) -> list[str]:
    """Names of the files in data folder ``parts``: the defaults' and the configuration's."""
    names: set[str] = set()
    node = resources.files("clinflow").joinpath("data", *parts)
    if node.is_dir():
        names |= {child.name for child in node.iterdir() if child.is_file()}
    root = config_dir()
    if root is not None:
        folder = root.joinpath(*parts)
        if folder.is_dir() and folder.resolve().is_relative_to(root):
            names |= {c.name for c in folder.iterdir() if c.is_file() and not c.is_symlink()}
    return sorted(names)


_CACHES: list[Any] = [read_yaml, list_data]


def register_cache(fn: F) -> F:
    """Mark a cached loader built on these files, so :func:`configure` clears it too."""
    _CACHES.append(fn)
    return fn
