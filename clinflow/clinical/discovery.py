"""Input discovery: which NDJSON files an export consists of.

Accepted inputs (local paths; S3 callers parse a manifest with ``parse_manifest`` and build
``InputFile`` models themselves):

- a FHIR Bulk Data manifest (JSON with ``output[]`` entries of ``type`` and ``url``); a ``url``
  may be an absolute http(s) URL (the file is looked up by its base name next to the manifest),
  a ``file://`` URL, an absolute path or a path relative to the manifest;
- one NDJSON file (plain or gzip, recognised by its magic bytes, not its name);
- a folder of NDJSON files (``*.ndjson``, ``*.jsonl``, ``*.ndjson.gz``...). The bulk-export log
  ``log.ndjson`` is not data: its ``status_complete`` event gives the export's transactionTime.

All functions are read-only and deterministic (files sorted by name).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from pydantic import BaseModel, ConfigDict

from clinflow.clinical.fhir_validate import is_resource_type
from clinflow.clinical.models import ExportInputs, InputFile

GZIP_MAGIC = b"\x1f\x8b"
_DATA_SUFFIXES = (".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz", ".gz")
_LOG_NAMES = frozenset({"log.ndjson", "log.ndjson.gz"})


class DiscoveryError(ValueError):
    """The path is neither a manifest, an NDJSON file nor a folder of them."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class ManifestEntry(BaseModel):
    """One ``output[]`` (or ``error[]``) entry of a bulk-export manifest."""

    model_config = ConfigDict(frozen=True)

    type: str | None
    url: str
    count: int | None = None


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    transaction_time: datetime | None
    output: list[ManifestEntry]
    error: list[ManifestEntry]


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes."""
    with path.open("rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def parse_manifest(data: bytes) -> Manifest:
    """Parse manifest JSON; raises ``DiscoveryError`` when it has no ``output`` list."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DiscoveryError("manifest", f"not JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("output"), list):
        raise DiscoveryError("manifest", "no output[] list: not a bulk-export manifest")

    def entries(key: str) -> list[ManifestEntry]:
        items: list[Any] = doc.get(key) or []
        return [
            ManifestEntry(type=i.get("type"), url=i["url"], count=i.get("count"))
            for i in items
            if isinstance(i, dict) and isinstance(i.get("url"), str)
        ]

    tt = doc.get("transactionTime")
    return Manifest(
        transaction_time=datetime.fromisoformat(tt) if isinstance(tt, str) else None,
        output=entries("output"),
        error=entries("error"),
    )


def resolve_manifest_url(url: str, base: Path) -> Path:
    """Local path of a manifest ``url`` relative to the manifest's folder ``base``."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return base / Path(unquote(parts.path)).name
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    path = Path(url)
    return path if path.is_absolute() else base / path


def discover_inputs(path: Path) -> ExportInputs:
    """The data files behind ``path`` (manifest, file or folder).

    Raises ``DiscoveryError`` when the path is missing, or a manifest names a missing file.
    """
    if path.is_dir():
        return _discover_folder(path)
    if not path.is_file():
        raise DiscoveryError(str(path), "no such file or folder")
    if not is_gzip(path) and _looks_like_manifest(path):
        return _discover_manifest(path)
    return ExportInputs(files=[_input_file(path, _type_from_name(path))])


def read_transaction_time(log_path: Path) -> datetime | None:
    """transactionTime from a bulk-export ``log.ndjson`` (``status_complete`` event), if any."""
    with log_path.open("rb") as fh:
        for line in fh:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            detail = event.get("eventDetail") if isinstance(event, dict) else None
            if isinstance(detail, dict) and isinstance(detail.get("transactionTime"), str):
                return datetime.fromisoformat(detail["transactionTime"])
    return None


def _looks_like_manifest(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(64 * 1024)
    if head.count(b"\n") > 1 and not head.lstrip().startswith(b"{\n"):
        return False  # NDJSON: many lines, each an object
    if path.stat().st_size > 16 * 1024 * 1024:
        return False
    try:
        parse_manifest(path.read_bytes())
    except DiscoveryError:
        return False
    return True


def _discover_manifest(path: Path) -> ExportInputs:
    manifest = parse_manifest(path.read_bytes())
    files = []
    for entry in manifest.output:
        target = resolve_manifest_url(entry.url, path.parent)
        if not target.is_file():
            raise DiscoveryError(str(path), f"manifest names a missing file: {target.name}")
        files.append(_input_file(target, entry.type))
    return ExportInputs(files=files, transaction_time=manifest.transaction_time)


def _discover_folder(folder: Path) -> ExportInputs:
    files: list[InputFile] = []
    transaction_time = None
    for child in sorted(folder.iterdir()):
        if not child.is_file():
            continue
        if child.name in _LOG_NAMES:
            transaction_time = read_transaction_time(child) if not is_gzip(child) else None
            continue
        if child.name.endswith(_DATA_SUFFIXES):
            files.append(_input_file(child, _type_from_name(child)))
    if not files:
        raise DiscoveryError(str(folder), "no NDJSON files in folder")
    return ExportInputs(files=files, transaction_time=transaction_time)


def _type_from_name(path: Path) -> str | None:
    """``Patient.000.ndjson`` -> ``Patient``; None when the name is not a resource type."""
    stem = path.name.split(".", 1)[0]
    return stem if is_resource_type(stem) else None


def _input_file(path: Path, resource_type: str | None) -> InputFile:
    return InputFile(
        uri=str(path),
        resource_type=resource_type,
        size=path.stat().st_size,
        compressed=is_gzip(path),
    )
