"""One extraction model per document type, plus the record cross-document checks read.

All dates are ISO 8601 strings (``YYYY-MM-DD``) or None. Fields a document did not state are
None; labelled dates that could not be read are listed in ``unparsed_dates`` so structural
validation can report them. ``Extraction`` is a discriminated union on ``doc_type``, so a dumped
extraction validates back into the right class.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clinflow.packets.models import DocumentType

SignatureMethod = Literal["digital", "typed", "e_signature", "wet_ink", "image", "none"]
SignatureStatus = Literal["signed", "unsigned", "uncertain"]


class SignatureBlock(BaseModel):
    """One signature block of a document and what it shows (see clinflow.packets.signatures)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: SignatureStatus
    kind: SignatureMethod
    page: int | None = Field(None, description="0-based page index, when known.")
    label: str = ""
    signer: str | None = None
    date: str | None = None
    region: tuple[float, float, float, float] | None = None
    evidence: str = Field("", description="What decided the status, for the reviewer.")


class SignatureEvidence(BaseModel):
    """Whether a document is signed, how, by whom and when (as far as the file shows).

    ``status`` is the document's: signed when any block is signed, else uncertain when any
    block is uncertain, else unsigned. ``present`` is ``status == "signed"``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    present: bool = False
    method: SignatureMethod = "none"
    signer: str | None = None
    date: str | None = None
    status: SignatureStatus = "unsigned"
    blocks: list[SignatureBlock] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _consistent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if "status" in data:
                data = {**data, "present": data["status"] == "signed"}
            elif data.get("present"):
                data = {**data, "status": "signed"}
        return data


class ExtractionBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    protocol_number: str | None = None
    protocol_version: str | None = None
    site_number: str | None = None
    document_date: str | None = None
    form_version: str | None = None
    signature: SignatureEvidence = Field(default_factory=SignatureEvidence)
    ind_number: str | None = Field(None, description="A US IND number the document states.")
    unparsed_dates: list[str] = Field(
        default_factory=list, description="Labelled fields whose value could not be read."
    )
    unreadable_pages: dict[str, int] = Field(
        default_factory=dict, description="Page (0-based) of each unreadable field, if known."
    )

    def people(self) -> list[str]:
        """Names of people this document is about (for cross-document checks)."""
        return []


class LaboratoryEntry(BaseModel):
    """A clinical laboratory listed in Form FDA 1572 section 4."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    address: str | None = None
    phone: str | None = None
    fax: str | None = None


class Form1572Extraction(ExtractionBase):
    doc_type: Literal[DocumentType.FDA_1572] = DocumentType.FDA_1572
    investigator_name: str | None = None
    irb_name: str | None = None
    sub_investigators: list[str] = Field(default_factory=list)
    laboratories: list[LaboratoryEntry] = Field(default_factory=list)

    def people(self) -> list[str]:
        return [n for n in [self.investigator_name, *self.sub_investigators] if n]


class InvestigatorCVExtraction(ExtractionBase):
    doc_type: Literal[DocumentType.INVESTIGATOR_CV] = DocumentType.INVESTIGATOR_CV
    person_name: str | None = None
    position: str | None = None

    def people(self) -> list[str]:
        return [self.person_name] if self.person_name else []


class MedicalLicenseExtraction(ExtractionBase):
    doc_type: Literal[DocumentType.MEDICAL_LICENSE] = DocumentType.MEDICAL_LICENSE
    holder_name: str | None = None
    license_number: str | None = None
    issue_date: str | None = None
    expiry_date: str | None = None


class GCPCertificateExtraction(ExtractionBase):
    doc_type: Literal[DocumentType.GCP_CERTIFICATE] = DocumentType.GCP_CERTIFICATE
    holder_name: str | None = None
    completion_date: str | None = None
    provider: str | None = None

    def people(self) -> list[str]:
        return [self.holder_name] if self.holder_name else []


class IRBApprovalExtraction(ExtractionBase):
    doc_type: Literal[DocumentType.IRB_APPROVAL] = DocumentType.IRB_APPROVAL
    irb_name: str | None = None
    investigator_name: str | None = None
    approval_date: str | None = None
    expiry_date: str | None = None


class ICFApprovalExtraction(ExtractionBase):
    doc_type: Literal[DocumentType.ICF_APPROVAL] = DocumentType.ICF_APPROVAL
    irb_name: str | None = None
    icf_version: str | None = None
    approval_date: str | None = None


class DelegatedStaff(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    role: str | None = None
    tasks: list[str] = Field(default_factory=list)
    start_date: str | None = None


class DelegationLogExtraction(ExtractionBase):
    doc_type: Literal[DocumentType.DELEGATION_LOG] = DocumentType.DELEGATION_LOG
    principal_investigator: str | None = None
    staff: list[DelegatedStaff] = Field(default_factory=list)

    def people(self) -> list[str]:
        names = [s.name for s in self.staff]
        if self.principal_investigator:
            names.insert(0, self.principal_investigator)
        return names


class FinancialDisclosureExtraction(ExtractionBase):
    doc_type: Literal[DocumentType.FINANCIAL_DISCLOSURE] = DocumentType.FINANCIAL_DISCLOSURE
    investigator_name: str | None = None
    interests_declared: bool | None = None


class CTABudgetExtraction(ExtractionBase):
    doc_type: Literal[DocumentType.CTA_BUDGET] = DocumentType.CTA_BUDGET
    sponsor: str | None = None
    institution: str | None = None
    total_budget: str | None = None
    effective_date: str | None = None


class ProtocolSignaturePageExtraction(ExtractionBase):
    doc_type: Literal[DocumentType.PROTOCOL_SIGNATURE_PAGE] = DocumentType.PROTOCOL_SIGNATURE_PAGE
    investigator_name: str | None = None


class LabCertificationExtraction(ExtractionBase):
    doc_type: Literal[DocumentType.LAB_CERTIFICATION] = DocumentType.LAB_CERTIFICATION
    lab_name: str | None = None
    certificate_number: str | None = None
    accreditation: str | None = None
    expiry_date: str | None = None


class UnknownExtraction(ExtractionBase):
    doc_type: Literal[DocumentType.UNKNOWN] = DocumentType.UNKNOWN


Extraction = Annotated[
    Form1572Extraction
    | InvestigatorCVExtraction
    | MedicalLicenseExtraction
    | GCPCertificateExtraction
    | IRBApprovalExtraction
    | ICFApprovalExtraction
    | DelegationLogExtraction
    | FinancialDisclosureExtraction
    | CTABudgetExtraction
    | ProtocolSignaturePageExtraction
    | LabCertificationExtraction
    | UnknownExtraction,
    Field(discriminator="doc_type"),
]

EXTRACTION_MODELS: dict[DocumentType, type[ExtractionBase]] = {
    DocumentType.FDA_1572: Form1572Extraction,
    DocumentType.INVESTIGATOR_CV: InvestigatorCVExtraction,
    DocumentType.MEDICAL_LICENSE: MedicalLicenseExtraction,
    DocumentType.GCP_CERTIFICATE: GCPCertificateExtraction,
    DocumentType.IRB_APPROVAL: IRBApprovalExtraction,
    DocumentType.ICF_APPROVAL: ICFApprovalExtraction,
    DocumentType.DELEGATION_LOG: DelegationLogExtraction,
    DocumentType.FINANCIAL_DISCLOSURE: FinancialDisclosureExtraction,
    DocumentType.CTA_BUDGET: CTABudgetExtraction,
    DocumentType.PROTOCOL_SIGNATURE_PAGE: ProtocolSignaturePageExtraction,
    DocumentType.LAB_CERTIFICATION: LabCertificationExtraction,
    DocumentType.UNKNOWN: UnknownExtraction,
}


class DocumentRecord(BaseModel):
    """One evaluated document of a packet: what cross-document checks and gap analysis read.

    ``name`` is the file name inside the packet (or the document key); ``extraction`` is None
    when the document could not be parsed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    sha256: str
    doc_type: DocumentType
    page_count: int = 0
    extraction: Extraction | None = None
