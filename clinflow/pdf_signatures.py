"""Validation of the digital signatures inside submitted PDFs (pyHanko).

For every signature field this answers four questions and gives one status:

- **intact**: the digest of the signed byte ranges matches the signed digest and
  the signature value verifies (else ``INVALID``);
- **covers the document**: nothing was changed after signing beyond the
  incremental updates allowed (``pdfsig_max_modification``, by default form
  filling and further signatures) and the DocMDP policy holds (else
  ``MODIFIED``, with pyHanko's modification level);
- **trusted**: the signer's certificate chains to a CA of the approved bundle
  (``pdfsig_trust_bundle``) with a usage that permits signing (else
  ``UNTRUSTED``);
- **in date**: the certificate was valid at signing time (else ``EXPIRED``).
  Signing time is the time of a trusted signature timestamp when present, else
  the time the signer reports (a claim, recorded as such), else now. A
  certificate that expired after a valid signature does not invalidate it.

``pdf_signature_findings`` turns the results into packet findings from the rule
table (``PDF_SIGNATURE_*`` codes, all COMPLIANCE_BLOCK). Certificate subjects are
personal data: they appear in :class:`PdfSignatureResult` for the reviewer, never
in findings or log lines (which carry the certificate fingerprint instead).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import io
import logging
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from pydantic import BaseModel, ConfigDict
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from clinflow.packets.models import Finding
from clinflow.packets.rules import make_finding
from clinflow.settings import Settings

# pyHanko logs validation failures with certificate subjects (personal names, e-mail
# addresses) and tracebacks; the result model carries the reason instead.
for _name in ("pyhanko", "pyhanko_certvalidator"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

T = TypeVar("T")

_EXPIRY_PROBLEMS = frozenset(
    {
        AdESIndeterminate.EXPIRED,
        AdESIndeterminate.NOT_YET_VALID,
        AdESIndeterminate.OUT_OF_BOUNDS_NO_POE,
        AdESIndeterminate.OUT_OF_BOUNDS_NOT_REVOKED,
        AdESFailure.NOT_YET_VALID,
    }
)
_REVOKED_PROBLEMS = frozenset(
    {AdESFailure.REVOKED, AdESIndeterminate.REVOKED_NO_POE, AdESIndeterminate.REVOKED_CA_NO_POE}
)
_ALLOWED_LEVELS = {level.name: level for level in ModificationLevel}
# A signing certificate must allow signatures; either usage bit is enough.
_KEY_USAGE = KeyUsageConstraints(
    key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False
)


class SignatureStatus(enum.StrEnum):
    VALID = "VALID"
    INVALID = "INVALID"
    MODIFIED = "MODIFIED"
    UNTRUSTED = "UNTRUSTED"
    EXPIRED = "EXPIRED"


class PdfSignatureError(Exception):
    """The trust bundle cannot be loaded (missing path, no certificate in it)."""


class PdfSignatureResult(BaseModel):
    """The verdict on one signature field. ``signer_subject`` is personal data."""

    model_config = ConfigDict(frozen=True)

    field: str
    status: SignatureStatus
    reason: str
    intact: bool
    trusted: bool
    coverage: str | None = None
    modification_level: str | None = None
    docmdp_ok: bool | None = None
    signing_time: datetime | None = None
    signing_time_source: Literal["timestamp", "signer-reported", "validation-time"] = (
        "validation-time"
    )
    signer_subject: str | None = None
    signer_fingerprint_sha256: str | None = None
    certificate_not_before: datetime | None = None
    certificate_not_after: datetime | None = None
    trust_anchor_fingerprint_sha256: str | None = None
    digest_algorithm: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is SignatureStatus.VALID


class PdfSignatureReport(BaseModel):
    """Every signature of one PDF, in the order they appear in the file."""

    signatures: list[PdfSignatureResult]
    readable: bool = True
    problem: str | None = None

    @property
    def signed(self) -> bool:
        return bool(self.signatures)

    @property
    def ok(self) -> bool:
        """True when the PDF is signed and every signature is VALID."""
        return self.signed and all(s.ok for s in self.signatures)


class TrustBundle:
    """The approved certificate authorities signatures must chain to."""

    def __init__(self, roots: list[asn1_x509.Certificate]) -> None:
        self.roots = roots

    @classmethod
    def from_pem(cls, *blobs: bytes) -> TrustBundle:
        """A bundle of every certificate in the PEM (or DER) ``blobs``."""
        roots: list[asn1_x509.Certificate] = []
        for blob in blobs:
            if asn1_pem.detect(blob):
                for kind, _, der in asn1_pem.unarmor(blob, multiple=True):
                    if kind == "CERTIFICATE":
                        roots.append(asn1_x509.Certificate.load(der))
            elif blob:
                roots.append(asn1_x509.Certificate.load(blob))
        return cls(roots)

    @classmethod
    def load(cls, path: Path) -> TrustBundle:
        """A PEM file, or every ``*.pem``/``*.crt``/``*.cer`` file of a directory.

        Raises PdfSignatureError when the path is missing or holds no certificate.
        """
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in {".pem", ".crt", ".cer"})
        elif path.is_file():
            files = [path]
        else:
            raise PdfSignatureError(f"trust bundle {path} does not exist")
        bundle = cls.from_pem(*(p.read_bytes() for p in files))
        if not bundle.roots:
            raise PdfSignatureError(f"trust bundle {path} holds no certificate")
        return bundle

    @classmethod
    def from_settings(cls, settings: Settings) -> TrustBundle:
        """The configured bundle; an empty one (nothing approved) when none is configured."""
        if settings.pdfsig_trust_bundle is None:
            return cls([])
        return cls.load(settings.pdfsig_trust_bundle)

    def context(self, moment: datetime | None = None) -> ValidationContext:
        """A validation context trusting exactly this bundle (never the OS store)."""
        return ValidationContext(
            trust_roots=list(self.roots),
            allow_fetching=False,
            revocation_mode="soft-fail",
            moment=moment,
        )


def _signing_time(
    status: PdfSignatureStatus,
) -> tuple[datetime | None, Literal["timestamp", "signer-reported", "validation-time"]]:
    ts = status.timestamp_validity
    if ts is not None and ts.intact and ts.valid and ts.trusted:
        return ts.timestamp, "timestamp"
    if status.signer_reported_dt is not None:
        return status.signer_reported_dt.astimezone(UTC), "signer-reported"
    return None, "validation-time"


def _cert_facts(status: PdfSignatureStatus) -> dict[str, Any]:
    cert = status.signing_cert
    validity = cert["tbs_certificate"]["validity"].native
    anchor = status.validation_path[0] if status.validation_path is not None else None
    return {
        "signer_subject": cert.subject.human_friendly,
        "signer_fingerprint_sha256": cert.sha256.hex(),
        "certificate_not_before": validity["not_before"],
        "certificate_not_after": validity["not_after"],
        "trust_anchor_fingerprint_sha256": getattr(anchor, "sha256", b"").hex() or None,
        "digest_algorithm": status.md_algorithm,
    }


def _modification_problem(status: PdfSignatureStatus, allowed: ModificationLevel) -> str | None:
    coverage = status.coverage
    if coverage is None or coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        return "the signature does not cover the whole revision it signs"
    level = status.modification_level
    if level is None:
        return "changes after signing could not be analysed"
    if level > allowed:
        return f"the document was changed after signing (modification level {level.name})"
    if status.docmdp_ok is False:
        return f"changes after signing ({level.name}) break the document's modification policy"
    return None


async def _validate_one(
    sig: EmbeddedPdfSignature, trust: TrustBundle, allowed: ModificationLevel
) -> PdfSignatureResult:
    field = sig.field_name or "(unnamed)"
    try:
        status = await async_validate_pdf_signature(
            sig, trust.context(), key_usage_settings=_KEY_USAGE
        )
    except (SignatureValidationError, PdfError, ValueError, KeyError, TypeError) as exc:
        return PdfSignatureResult(
            field=field,
            status=SignatureStatus.INVALID,
            reason=f"the signature cannot be validated: {type(exc).__name__}: {exc}",
            intact=False,
            trusted=False,
        )
    signing_time, source = _signing_time(status)
    retimed = False
    if status.trust_problem_indic in _EXPIRY_PROBLEMS and signing_time is not None:
        # Judge the certificate at signing time, not now: expiry after signing is fine.
        status = await async_validate_pdf_signature(
            sig, trust.context(moment=signing_time), key_usage_settings=_KEY_USAGE
        )
        retimed = True
    facts = _cert_facts(status)
    base: dict[str, Any] = {
        "field": field,
        "intact": bool(status.intact and status.valid),
        "trusted": bool(status.trusted),
        "coverage": status.coverage.name if status.coverage is not None else None,
        "modification_level": (
            status.modification_level.name if status.modification_level is not None else None
        ),
        "docmdp_ok": status.docmdp_ok,
        "signing_time": signing_time,
        "signing_time_source": source,
        **facts,
    }
    if not status.intact:
        return PdfSignatureResult(
            status=SignatureStatus.INVALID,
            reason="the signed bytes do not match the signed digest (altered after signing)",
            **base,
        )
    if not status.valid:
        return PdfSignatureResult(
            status=SignatureStatus.INVALID,
            reason="the signature value does not verify with the signer's public key",
            **base,
        )
    modified = _modification_problem(status, allowed)
    if modified is not None:
        return PdfSignatureResult(status=SignatureStatus.MODIFIED, reason=modified, **base)
    problem = status.trust_problem_indic
    when = signing_time.isoformat() if signing_time else "validation time"
    if problem in _EXPIRY_PROBLEMS:
        return PdfSignatureResult(
            status=SignatureStatus.EXPIRED,
            reason=(
                f"the signer's certificate (valid {facts['certificate_not_before']:%Y-%m-%d} to "
                f"{facts['certificate_not_after']:%Y-%m-%d}) was not valid at signing time "
                f"{when} ({source})"
            ),
            **base,
        )
    if problem in _REVOKED_PROBLEMS:
        return PdfSignatureResult(
            status=SignatureStatus.UNTRUSTED,
            reason="the signer's certificate (or a CA above it) is revoked",
            **base,
        )
    if problem is not None or not status.trusted:
        name = getattr(problem, "name", "NO_VALIDATION_PATH")
        reason = (
            "the certificate does not chain to an approved certificate authority"
            if problem is AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND
            else "the certificate chain is not acceptable"
        )
        return PdfSignatureResult(
            status=SignatureStatus.UNTRUSTED, reason=f"{reason} ({name})", **base
        )
    note = " (certificate expired since; valid at signing time)" if retimed else ""
    return PdfSignatureResult(
        status=SignatureStatus.VALID,
        reason=f"intact, covers the document, chains to an approved CA, valid at {when}{note}",
        **base,
    )


def _allowed_level(name: str) -> ModificationLevel:
    try:
        return _ALLOWED_LEVELS[name.upper()]
    except KeyError:
        raise PdfSignatureError(
            f"unknown modification level {name!r}; one of {', '.join(_ALLOWED_LEVELS)}"
        ) from None


async def validate_pdf_signatures_async(
    pdf: bytes | Path, trust: TrustBundle, *, max_modification: str = "FORM_FILLING"
) -> PdfSignatureReport:
    """Validate every signature field of ``pdf`` (bytes or a path) against ``trust``.

    Never raises for a bad PDF or signature: an unreadable file gives a report with
    ``readable=False``; each signature gets a status and reason. Raises
    PdfSignatureError only for an unknown ``max_modification``.
    """
    allowed = _allowed_level(max_modification)
    data = await asyncio.to_thread(pdf.read_bytes) if isinstance(pdf, Path) else pdf
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        embedded = list(reader.embedded_regular_signatures)
    except (PdfError, ValueError, KeyError, TypeError, IndexError) as exc:
        return PdfSignatureReport(
            signatures=[], readable=False, problem=f"{type(exc).__name__}: {exc}"
        )
    results = [await _validate_one(sig, trust, allowed) for sig in embedded]
    return PdfSignatureReport(signatures=results)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside an event loop (e.g. an async activity): use a private loop.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def validate_pdf_signatures(
    pdf: bytes | Path, trust: TrustBundle, *, max_modification: str = "FORM_FILLING"
) -> PdfSignatureReport:
    """Synchronous :func:`validate_pdf_signatures_async` (safe to call from any thread)."""
    return _run(validate_pdf_signatures_async(pdf, trust, max_modification=max_modification))


_FINDING_CODE = {
    SignatureStatus.INVALID: "PDF_SIGNATURE_INVALID",
    SignatureStatus.MODIFIED: "PDF_SIGNATURE_MODIFIED",
    SignatureStatus.UNTRUSTED: "PDF_SIGNATURE_UNTRUSTED",
    SignatureStatus.EXPIRED: "PDF_SIGNATURE_EXPIRED",
}


def findings_from_report(
    report: PdfSignatureReport,
    *,
    required: bool,
    document: str | None = None,
    doc_type: str = "This document",
) -> list[Finding]:
    """Packet findings for a validated PDF: one per failing signature, plus a missing one."""
    findings: list[Finding] = []
    if not report.signed:
        if required:
            findings.append(
                make_finding(
                    "PDF_SIGNATURE_MISSING",
                    document,
                    doc_type=doc_type,
                    problem=report.problem if not report.readable else None,
                )
            )
        return findings
    for sig in report.signatures:
        code = _FINDING_CODE.get(sig.status)
        if code is None:
            continue
        findings.append(
            make_finding(
                code,
                document,
                field=sig.field,
                reason=sig.reason,
                modification=sig.modification_level or sig.coverage or "unknown",
                signing_time=sig.signing_time.isoformat() if sig.signing_time else "unknown",
                certificate_sha256=sig.signer_fingerprint_sha256,
            )
        )
    return findings


def pdf_signature_findings(
    pdf_bytes_or_path: bytes | Path,
    *,
    required: bool,
    trust: TrustBundle,
    document: str | None = None,
    doc_type: str = "This document",
    max_modification: str = "FORM_FILLING",
) -> list[Finding]:
    """Findings of the packet pipeline for the digital signatures of one PDF.

    An empty list means: every signature is valid, and there is one where
    ``required``. Each failing signature gives a COMPLIANCE_BLOCK finding
    (``PDF_SIGNATURE_INVALID`` / ``_MODIFIED`` / ``_UNTRUSTED`` / ``_EXPIRED``) with
    the reason; a required but absent signature gives ``PDF_SIGNATURE_MISSING``.
    """
    report = validate_pdf_signatures(pdf_bytes_or_path, trust, max_modification=max_modification)
    return findings_from_report(report, required=required, document=document, doc_type=doc_type)
