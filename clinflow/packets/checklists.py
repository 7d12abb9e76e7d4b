"""Per-region required-document checklists (``clinflow/data/checklists/<region>.yaml``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from clinflow.packets.data_files import DataFileError, list_data, read_yaml, register_cache
from clinflow.packets.models import DocumentType


class ChecklistItem(BaseModel):
    """What the checklist asks of one document type."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    required: bool = True
    recommended: bool = Field(
        True, description="A missing not-required item is a GAP_RECOMMENDED_MISSING warning."
    )
    min_count: int = Field(1, ge=1)
    signature_required: bool = False
    digital_signature: Literal["none", "required"] = Field(
        "none",
        description=(
            "'required': the PDF must carry a cryptographic (PAdES/CMS) signature that "
            "validates against the approved CA bundle (PDF_SIGNATURE_MISSING otherwise). "
            "Signatures present in any PDF are validated whatever this says."
        ),
    )
    min_pages: int = Field(1, ge=1)
    accepted_versions: list[str] = Field(default_factory=list)
    required_when: list[Literal["us_ind", "lists_laboratory"]] = Field(
        default_factory=list,
        description=(
            "Conditions that make a not-required item required for this packet: 'us_ind' "
            "(the site runs under a US IND: the protocol matrix or a document says so), "
            "'lists_laboratory' (the packet's Form FDA 1572 lists a laboratory in section 4)."
        ),
    )


class Checklist(BaseModel):
    """A region's site-activation checklist."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    region: str
    name: str
    countries: list[str] = Field(default_factory=list)
    documents: dict[DocumentType, ChecklistItem]

    def item(self, doc_type: DocumentType) -> ChecklistItem | None:
        return self.documents.get(doc_type)


class UnknownRegion(DataFileError):
    """No checklist file exists for the region."""


def available_regions() -> list[str]:
    """Regions that have a checklist file."""
    return [n.rsplit(".", 1)[0] for n in list_data("checklists") if n.endswith(".yaml")]


@register_cache
@lru_cache(maxsize=16)
def load_checklist(region: str) -> Checklist:
    """The checklist of ``region`` (cached); raises :class:`UnknownRegion`."""
    if region not in available_regions():
        raise UnknownRegion(f"no checklist for region {region!r}")
    checklist = Checklist.model_validate(read_yaml("checklists", f"{region}.yaml"))
    if checklist.region != region:
        raise DataFileError(f"checklists/{region}.yaml declares region {checklist.region!r}")
    return checklist
