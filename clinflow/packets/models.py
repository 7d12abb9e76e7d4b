"""Payload models of the site-packet flow: small, JSON-serialisable, safe for Temporal histories.

Nothing here holds page images or whole files: bytes live in object storage and the models
carry references (:class:`DocumentRef`) and capped text. Every model is a frozen pydantic v2
model, so ``model_dump(mode="json")`` / ``model_validate`` round-trip it exactly.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from clinflow.errors import ErrorCategory


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DocumentType(StrEnum):
    """The document types of the site-activation checklists."""

    FDA_1572 = "FDA_1572"
    INVESTIGATOR_CV = "INVESTIGATOR_CV"
    MEDICAL_LICENSE = "MEDICAL_LICENSE"
    GCP_CERTIFICATE = "GCP_CERTIFICATE"
    IRB_APPROVAL = "IRB_APPROVAL"
    ICF_APPROVAL = "ICF_APPROVAL"
    DELEGATION_LOG = "DELEGATION_LOG"
    FINANCIAL_DISCLOSURE = "FINANCIAL_DISCLOSURE"
    CTA_BUDGET = "CTA_BUDGET"
    PROTOCOL_SIGNATURE_PAGE = "PROTOCOL_SIGNATURE_PAGE"
    LAB_CERTIFICATION = "LAB_CERTIFICATION"
    UNKNOWN = "UNKNOWN"


class FileKind(StrEnum):
    """What the bytes are, decided by magic bytes (never by file name)."""

    PDF = "PDF"
    DOCX = "DOCX"
    UNSUPPORTED = "UNSUPPORTED"


class PacketOutcome(StrEnum):
    """Where a packet ends (or waits). BLOCKED and INCOMPLETE may still change by signal."""

    VALIDATED = "VALIDATED"
    VALIDATED_WITH_WARNINGS = "VALIDATED_WITH_WARNINGS"
    BLOCKED = "BLOCKED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    DEAD_LETTERED = "DEAD_LETTERED"
    INCOMPLETE = "INCOMPLETE"


class DocumentRef(_Frozen):
    """Claim check for one stored document: where its bytes are and what they hash to."""

    bucket: str
    key: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class PageText(_Frozen):
    """One page's text (capped) and how it was obtained."""

    index: int = Field(ge=0, description="0-based page index.")
    text: str = ""
    chars: int = Field(0, ge=0, description="Length of the page text before capping.")
    ocr: bool = False
    ocr_confidence: float | None = Field(
        None, description="Mean tesseract word confidence (0-100) when the page was OCR'd."
    )


class SignatureField(_Frozen):
    """A PDF signature form field (``/FT /Sig``); signed when it carries a value (``/V``)."""

    name: str
    signed: bool
    signer: str | None = None
    signed_at: str | None = Field(None, description="ISO 8601 date from the signature's /M.")


class SignatureMark(_Frozen):
    """Image evidence of a signature found by a parser beside a signature label (the text
    layer cannot show it): ink on a scanned page or beside a label on a rendered text-PDF page,
    an image in a DOCX signature cell, the widget of a signed PDF signature field."""

    page: int = Field(ge=0, description="0-based page index (0 for DOCX).")
    kind: Literal["wet_ink", "image", "digital_stamp"]
    label: str = Field("", description="The signature label the mark belongs to.")
    region: tuple[float, float, float, float] | None = Field(
        None, description="x0, y0, x1, y1 of the measured region, as fractions of the page."
    )
    ink_ratio: float | None = Field(None, description="Share of dark pixels in the region.")
    status: Literal["signed", "unsigned", "uncertain"]
    note: str = Field("", description="How the mark was found (no personal data).")


class ParseResult(_Frozen):
    """What a parser learnt from one file. Raises nothing once built: failures are errors."""

    kind: FileKind
    sha256: str
    size: int
    page_count: int = Field(ge=0)
    pages: list[PageText] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    form_fields: dict[str, str] = Field(default_factory=dict)
    signature_fields: list[SignatureField] = Field(default_factory=list)
    tables: list[list[list[str]]] = Field(default_factory=list, description="DOCX tables.")
    encrypted: bool = False
    ocr_pages: list[int] = Field(default_factory=list)
    ocr_mean_confidence: float | None = None
    text_truncated: bool = False
    signature_marks: list[SignatureMark] = Field(default_factory=list)

    @property
    def text(self) -> str:
        """All page text joined by form feeds (plus DOCX table cells)."""
        parts = [p.text for p in self.pages]
        for table in self.tables:
            parts.append("\n".join(" | ".join(row) for row in table))
        return "\n\f".join(parts)


class Classification(_Frozen):
    """The document type a classifier chose, with its score and the runner-up."""

    doc_type: DocumentType
    score: float
    confidence: float = Field(ge=0.0, le=1.0)
    runner_up: DocumentType | None = None
    matched: list[str] = Field(default_factory=list, description="Keyword rule ids that hit.")
    scores: dict[str, float] = Field(
        default_factory=dict, description="Score of every type with evidence (non-zero)."
    )


class Finding(_Frozen):
    """One rule outcome worth reporting. ``document`` is a document key or file name."""

    code: str
    category: ErrorCategory
    message: str
    document: str | None = None
    details: dict[str, str] = Field(default_factory=dict)


class GapItem(_Frozen):
    """A checklist item the packet does not satisfy (missing or wrong version)."""

    code: str
    doc_type: DocumentType
    message: str
    document: str | None = None
    expected: str | None = None
    found: str | None = None


class GapReport(_Frozen):
    """Gap analysis of a packet against its region's checklist."""

    region: str
    checklist: str
    missing: list[GapItem] = Field(default_factory=list)
    wrong_version: list[GapItem] = Field(default_factory=list)
    warnings: list[Finding] = Field(default_factory=list)

    @property
    def has_gaps(self) -> bool:
        return bool(self.missing or self.wrong_version)

    @property
    def items(self) -> list[GapItem]:
        return [*self.missing, *self.wrong_version]


class DecisionAction(StrEnum):
    """What the workflow does next."""

    DEAD_LETTER = "DEAD_LETTER"
    AWAIT_REVIEW = "AWAIT_REVIEW"
    AWAIT_DOCUMENTS = "AWAIT_DOCUMENTS"
    COMPLETE = "COMPLETE"


class Decision(_Frozen):
    """The routing decision for a packet: the next action and the outcome it implies."""

    action: DecisionAction
    outcome: PacketOutcome
    reasons: list[str] = Field(default_factory=list, description="Rule codes behind it.")
    counts: dict[str, int] = Field(default_factory=dict, description="Findings per category.")


class ParseOptions(_Frozen):
    """Knobs of parsing. Callers map their settings onto this (e.g. a worker's OCR limit)."""

    ocr_enabled: bool = True
    ocr_max_workers: int = Field(2, ge=1, description="OCR processes per document at most.")
    ocr_dpi: int = Field(
        200,
        ge=72,
        le=600,
        description="Render resolution for OCR; a scan stored at a higher resolution is read at "
        "its own (up to ocr_max_dpi): resampling a scan loses the strokes OCR needs.",
    )
    ocr_max_dpi: int = Field(300, ge=72, le=600)
    ocr_language: str = "eng"
    ocr_min_chars: int = Field(
        16, ge=0, description="A page with fewer non-space characters than this is OCR'd."
    )
    max_page_chars: int = Field(8_000, ge=100, description="Text kept per page.")
    max_total_chars: int = Field(120_000, ge=1_000, description="Text kept per document.")
