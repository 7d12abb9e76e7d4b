"""The protocol version matrix (``clinflow/data/rules/protocol_versions.yaml``)."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

from clinflow.packets.data_files import read_yaml, register_cache


class ProtocolVersion(BaseModel):
    """When and where one protocol version may be used."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    effective: date
    superseded: date | None = None
    regions: list[str] = Field(default_factory=list)


class ProtocolEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = ""
    us_ind: str | None = Field(None, description="The US IND the protocol runs under, if any.")
    us_ind_regions: list[str] = Field(
        default_factory=list,
        description="Regions whose sites run under the US IND (empty: every region).",
    )
    versions: dict[str, ProtocolVersion]


class ProtocolMatrix(BaseModel):
    """All protocols and their versions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    protocols: dict[str, ProtocolEntry]

    def under_us_ind(self, protocol: str, region: str) -> bool:
        """Whether the matrix says sites of ``region`` run ``protocol`` under a US IND."""
        entry = self.protocols.get(protocol.upper())
        if entry is None or not entry.us_ind:
            return False
        return not entry.us_ind_regions or region in entry.us_ind_regions

    def known_versions(self, protocol: str) -> list[str]:
        """The versions the matrix lists for ``protocol`` (empty for an unknown protocol)."""
        entry = self.protocols.get(protocol.upper())
        return list(entry.versions) if entry else []

    def version(self, protocol: str, version: str) -> ProtocolVersion | None:
        entry = self.protocols.get(protocol.upper())
        return entry.versions.get(version) if entry else None

    def status(self, protocol: str, version: str, region: str, on: date) -> str:
        """``active``, ``unknown-protocol``, ``unknown-version``, ``not-yet-effective``,
        ``superseded`` or ``not-approved-in-region`` for the version on date ``on``."""
        entry = self.protocols.get(protocol.upper())
        if entry is None:
            return "unknown-protocol"
        v = entry.versions.get(version)
        if v is None:
            return "unknown-version"
        if region not in v.regions:
            return "not-approved-in-region"
        if on < v.effective:
            return "not-yet-effective"
        if v.superseded is not None and on >= v.superseded:
            return "superseded"
        return "active"


@register_cache
@lru_cache(maxsize=1)
def load_protocol_matrix() -> ProtocolMatrix:
    """The packaged matrix (cached; raises pydantic ValidationError on a malformed file)."""
    return ProtocolMatrix.model_validate(read_yaml("rules", "protocol_versions.yaml"))
