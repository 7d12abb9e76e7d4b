"""The packet manifest: which site, protocol version, region and files a packet is.

A manifest is JSON or YAML next to the documents (``manifest.json``, ``manifest.yaml`` or
``manifest.yml``)::

    site_id: SITE-US-0101          # sponsor's site identifier (required)
    site_number: "101"             # number printed on documents (optional)
    protocol_number: CFX-301
    protocol_version: "3.0"
    region: us                     # selects clinflow/data/checklists/<region>.yaml
    country: US                    # ISO 3166-1 alpha-2 (optional)
    target_activation_date: 2026-06-01   # planned site-initiation date (optional)
    files:                         # paths relative to the manifest's folder
      - path: 1572.pdf
        doc_type: FDA_1572         # optional; otherwise the classifier decides
        sha256: <64 hex>           # optional: the hash recorded at ingestion
    deviations:                    # protocol deviations the site reports (optional)
      - id: DEV-001
        description: Visit window widened
        approval_reference: SPONSOR-APPROVAL-17   # null/absent = not approved

Without a manifest the packet is inferred from the folder layout
``<region>/<site_id>__<protocol_number>__v<protocol_version>[__<YYYY-MM-DD>]/`` (double
underscores separate the parts; the optional date is the target activation date): every regular
file in that folder is a document, except hidden files and partial uploads (``*.part``,
``*.tmp``, ``*.partial``) and the manifest names above.
"""

from __future__ import annotations

import json
import re
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from clinflow.packets.data_files import read_yaml, register_cache
from clinflow.packets.dates import DateOrder
from clinflow.packets.identity import packet_key
from clinflow.packets.models import DocumentType
from clinflow.packets.rules import fatal

MANIFEST_NAMES = ("manifest.json", "manifest.yaml", "manifest.yml")
MAX_MANIFEST_BYTES = 1024 * 1024
_KEY = re.compile(r"[^a-z0-9]+")


@register_cache
@lru_cache(maxsize=1)
def _aliases() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(region aliases, doc-type aliases, country -> date order) from ``aliases.yaml``."""
    raw = read_yaml("aliases.yaml") or {}
    regions = {alias_key(str(k)): str(v) for k, v in (raw.get("regions") or {}).items()}
    types = {alias_key(str(k)): str(v) for k, v in (raw.get("doc_types") or {}).items()}
    orders = {
        str(c).upper(): order for order, cs in (raw.get("date_order") or {}).items() for c in cs
    }
    return regions, types, orders


def alias_key(value: str) -> str:
    """How a manifest value is looked up: lower case, runs of other characters as ``_``."""
    return _KEY.sub("_", value.strip().lower()).strip("_")


def canonical_doc_type(value: Any) -> Any:
    """A declared document type as the checklist names it ("Form FDA 1572" -> FDA_1572)."""
    if value is None or isinstance(value, DocumentType):
        return value
    text = str(value)
    key = alias_key(text)
    if key.upper() in DocumentType.__members__:
        return DocumentType[key.upper()]
    return _aliases()[1].get(key, text)


def canonical_region(value: Any) -> Any:
    """A region code as the configuration names it ("EU" -> eu, "Asia-Pacific" -> apac)."""
    if not isinstance(value, str):
        return value
    key = alias_key(value)
    return _aliases()[0].get(key, key.replace("_", "-"))


PARTIAL_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload")
_FOLDER = re.compile(
    r"^(?P<site>[A-Za-z0-9.-]+)__(?P<protocol>[A-Za-z0-9.-]+)__v(?P<version>[A-Za-z0-9.]+)"
    r"(?:__(?P<date>\d{4}-\d{2}-\d{2}))?$"
)


class ManifestFile(BaseModel):
    """One file of a packet."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(min_length=1)
    doc_type: DocumentType | None = None
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")

    @field_validator("doc_type", mode="before")
    @classmethod
    def _doc_type(cls, value: Any) -> Any:
        return canonical_doc_type(value)

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if Path(value).is_absolute() or ".." in Path(value).parts:
            raise ValueError("file paths must be relative and stay inside the packet folder")
        return value


class ProtocolDeviation(BaseModel):
    """A protocol deviation the site reports; approved when it has an approval reference."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    description: str = ""
    approval_reference: str | None = None


class PacketManifest(BaseModel):
    """What a packet is. Validated on load; see the module docstring for the format."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    site_id: str = Field(min_length=1)
    site_number: str | None = None
    protocol_number: str = Field(min_length=1)
    protocol_version: str = Field(min_length=1)
    region: str = Field(min_length=2, pattern=r"^[a-z][a-z0-9-]*$")
    country: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    target_activation_date: date | None = None
    files: list[ManifestFile] = Field(default_factory=list)
    deviations: list[ProtocolDeviation] = Field(default_factory=list)
    correlation_id: str | None = None

    @field_validator("protocol_version", "site_number", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @field_validator("region", mode="before")
    @classmethod
    def _region(cls, value: Any) -> Any:
        return canonical_region(value)

    @field_validator("country", mode="before")
    @classmethod
    def _country(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def packet_id(self) -> str:
        """The packet's idempotency key (its workflow id)."""
        return packet_key(self.site_id, self.protocol_number, self.protocol_version)

    @property
    def date_order(self) -> DateOrder:
        """The numeric date order of the packet's country (``aliases.yaml``), else its region's
        (MDY in the US, day-first elsewhere)."""
        if self.country:
            order = _aliases()[2].get(self.country)
            if order in ("MDY", "DMY", "YMD"):
                return cast(DateOrder, order)
            return "DMY"
        return "MDY" if self.region == "us" else "DMY"

    @property
    def dayfirst(self) -> bool:
        """Whether ambiguous numeric dates in this packet read day-first."""
        return self.date_order == "DMY"


def parse_manifest(text: str, *, fmt: str = "yaml", subject: str | None = None) -> PacketManifest:
    """A manifest from JSON or YAML text; raises FatalSchemaMismatch (MANIFEST_INVALID)."""
    try:
        raw = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise fatal("MANIFEST_INVALID", subject, problem=f"not valid {fmt}") from exc
    if not isinstance(raw, dict):
        raise fatal("MANIFEST_INVALID", subject, problem="the top level must be a mapping")
    try:
        return PacketManifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise fatal("MANIFEST_INVALID", subject, problem=f"{where}: {first['msg']}") from exc


def load_manifest(path: Path) -> PacketManifest:
    """Read a manifest file (``.json`` as JSON, anything else as YAML), at most 1 MB."""
    fmt = "json" if path.suffix.lower() == ".json" else "yaml"
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise fatal("MANIFEST_INVALID", path.name, problem="the manifest is larger than 1 MB")
    return parse_manifest(path.read_text(encoding="utf-8"), fmt=fmt, subject=path.name)


def find_manifest(folder: Path) -> Path | None:
    """The manifest file inside ``folder``, if any (first of :data:`MANIFEST_NAMES`)."""
    for name in MANIFEST_NAMES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def is_document_file(path: Path) -> bool:
    """Whether a file in a packet folder is a document (not hidden, partial or a manifest)."""
    name = path.name
    return (
        path.is_file()
        and not name.startswith(".")
        and not name.lower().endswith(PARTIAL_SUFFIXES)
        and name not in MANIFEST_NAMES
    )


def infer_manifest(folder: Path) -> PacketManifest:
    """A manifest inferred from the documented folder layout (see module docstring).

    Raises FatalSchemaMismatch (MANIFEST_INVALID) when the folder name does not follow it.
    """
    m = _FOLDER.match(folder.name)
    if m is None:
        raise fatal(
            "MANIFEST_INVALID",
            folder.name,
            problem="no manifest and the folder name is not "
            "<site_id>__<protocol_number>__v<version>[__<YYYY-MM-DD>]",
        )
    files = [ManifestFile(path=p.name) for p in sorted(folder.iterdir()) if is_document_file(p)]
    try:
        return PacketManifest(
            site_id=m.group("site"),
            protocol_number=m.group("protocol"),
            protocol_version=m.group("version"),
            region=folder.parent.name.lower(),
            target_activation_date=(
                date.fromisoformat(m.group("date")) if m.group("date") else None
            ),
            files=files,
        )
    except (ValidationError, ValueError) as exc:
        raise fatal("MANIFEST_INVALID", folder.name, problem=str(exc).splitlines()[0]) from exc


def manifest_for(path: Path) -> tuple[PacketManifest, Path]:
    """The manifest of a packet given its folder or its manifest file, and the folder.

    A folder without a manifest file is inferred from its layout.
    """
    if path.is_file():
        return load_manifest(path), path.parent
    found = find_manifest(path)
    return (load_manifest(found) if found else infer_manifest(path)), path
