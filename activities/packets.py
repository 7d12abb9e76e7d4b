"""Activities of the site-packet flow: thin adapters from workflow steps to the domain.

Every activity is idempotent and safe to retry: database writes are upserts on the natural
keys of migration 010, audit entries carry deterministic ids, parse results are stored under
the document key and reused. Taxonomy errors leave as ``ApplicationError`` typed by category
(see :mod:`activities.errors`); every failed attempt is also written to ``packet_attempts``
so a dead-letter entry can show the whole attempt history.
"""

from __future__ import annotations

import asyncio
import functools
import json
import multiprocessing
import os
import tempfile
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import botocore.exceptions
import structlog
from pydantic import BaseModel, Field
from temporalio import activity

from activities.deps import Deps
from activities.errors import (
    INFRASTRUCTURE_UNAVAILABLE,
    infrastructure_error,
    to_application_error,
)
from activities.packets_models import (
    REVIEW_ROLE,
    TERMINAL_STATUSES,
    AnalyseInput,
    AnalyseResult,
    AuditInput,
    BatchPlan,
    DeadLetterInput,
    DeadLetterResult,
    DescribeInput,
    DocumentStepInput,
    ExternalCheckInput,
    ExternalCheckResult,
    FindingsResult,
    HashVerifyResult,
    LoadPageInput,
    LoadPageResult,
    ObjectRef,
    PacketChecksInput,
    PacketClaim,
    PacketInput,
    PacketSettled,
    PacketStatus,
    RedactInput,
    RegisterPacketInput,
    RejectPacketInput,
    ReviewCheckInput,
    ReviewVerdict,
    StoreResult,
    TransitionInput,
)
from activities.packets_residency import redact_packet_status
from clinflow.audit_chain import AuditEntry, AuditRecord
from clinflow.auth import AuthError, verify_token
from clinflow.envelope import EnvelopeError
from clinflow.errors import (
    ClinflowError,
    ErrorCategory,
    FatalSchemaMismatch,
    RecoverableTimeout,
    error_for,
)
from clinflow.esign import ESignatureError, SignatureMeaning, verify_against_registry
from clinflow.object_store import ObjectIntegrityError
from clinflow.packets.checklists import Checklist, UnknownRegion, load_checklist
from clinflow.packets.circuit_breaker import CircuitBreaker
from clinflow.packets.cross_checks import cross_document_checks, duplicate_findings
from clinflow.packets.extraction_models import DocumentRecord
from clinflow.packets.gaps import gap_analysis
from clinflow.packets.models import (
    DocumentType,
    FileKind,
    Finding,
    GapReport,
    ParseOptions,
    ParseResult,
)
from clinflow.packets.parse import parse_document
from clinflow.packets.pipeline import evaluate_document, pdf_signature_report
from clinflow.packets.rules import make_finding
from clinflow.pdf_signatures import (
    PdfSignatureError,
    PdfSignatureReport,
    TrustBundle,
)
from clinflow.tokenise import Tokeniser
from workflows.search_attributes import STATUS as STATUS_KEY

log = structlog.get_logger(__name__)

R = TypeVar("R")
# Outages of the platform's own services: retried for as long as they last (see IO_RETRY).
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    aiohttp.ClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
)
PARSED_PREFIX = "packets/parsed"
DLQ_PREFIX = "packets/dlq"
_CACHE_SIZE = 64
_HEARTBEAT_SECONDS = 5.0


def _signatures_key(document_key: str) -> str:
    return f"{PARSED_PREFIX}/{document_key}.signatures.json"


class ParseFailure(BaseModel):
    """A taxonomy error raised in a parser process, carried back as data (picklable)."""

    category: ErrorCategory
    code: str
    reason: str
    subject: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


def parse_in_process(path: Path, options: ParseOptions, subject: str) -> ParseResult | ParseFailure:
    """Parse in a pool process; taxonomy errors come back as :class:`ParseFailure`."""
    try:
        return parse_document(path, options=options, subject=subject)
    except ClinflowError as exc:
        return ParseFailure(
            category=exc.category,
            code=exc.code,
            reason=exc.reason,
            subject=exc.subject,
            details=exc.details,
        )


_TRUST: dict[tuple[str | None, float], TrustBundle] = {}


def _trust_bundle(path: Path | None) -> TrustBundle:
    """The approved CA bundle at ``path`` (cached per process, reloaded when the file changes)."""
    stamp = path.stat().st_mtime if path is not None and path.exists() else 0.0
    key = (str(path) if path else None, stamp)
    if key not in _TRUST:
        _TRUST.clear()
        _TRUST[key] = TrustBundle.load(path) if path is not None else TrustBundle([])
    return _TRUST[key]


def signatures_in_process(
    path: Path, trust_path: Path | None, max_modification: str
) -> PdfSignatureReport:
    """Validate the PDF's digital signatures in a pool process (pyHanko reads the whole file).

    An unloadable trust bundle counts as no approved CA at all.
    """
    try:
        trust = _trust_bundle(trust_path)
    except PdfSignatureError:
        trust = TrustBundle([])
    return pdf_signature_report(path, trust, max_modification=max_modification)


def _parse_pool(size: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=size, mp_context=multiprocessing.get_context("spawn"))


def _subject(req: Any) -> str:
    return str(getattr(req, "document_key", "") or "")


def packet_activity(
    fn: Callable[[PacketActivities, Any], Awaitable[R]],
) -> Callable[[PacketActivities, Any], Awaitable[R]]:
    """Record each failed attempt in ``packet_attempts``, then raise it typed by category."""

    @functools.wraps(fn)
    async def wrapper(self: PacketActivities, req: Any) -> R:
        try:
            return await fn(self, req)
        except ClinflowError as exc:
            await self._record_attempt(req, str(exc.category), exc.code, exc.reason)
            raise to_application_error(exc) from exc
        except INFRASTRUCTURE_ERRORS as exc:
            await self._record_attempt(
                req, INFRASTRUCTURE_UNAVAILABLE, type(exc).__name__, str(exc)[:300]
            )
            raise infrastructure_error(exc) from exc

    return wrapper


class PacketActivities:
    """The packet flow's activities over one worker process's shared resources.

    Holds per-process state that must not live in workflows: a small cache of parse results
    (backed by the object store), the parse process pool (pypdf is CPU-bound and pdfium is not
    thread-safe, so documents are parsed in separate processes) and the external check's
    circuit breaker.
    """

    def __init__(self, deps: Deps, *, parse_executor: Executor | None = None) -> None:
        self.deps = deps
        s = deps.settings
        self.parse_executor = parse_executor or _parse_pool(s.packets_parse_processes)
        self.options = ParseOptions(
            ocr_max_workers=s.packets_ocr_max_workers,
            ocr_dpi=s.packets_ocr_dpi,
            ocr_max_dpi=max(s.packets_ocr_max_dpi, s.packets_ocr_dpi),
        )
        self.breaker = CircuitBreaker(
            "irb-portal",
            failure_threshold=s.packets_breaker_failures,
            cool_down=s.packets_breaker_cooldown_seconds,
        )
        self._parsed: OrderedDict[str, ParseResult] = OrderedDict()

    # ------------------------------------------------------------------ helpers
    @property
    def bucket(self) -> str:
        return self.deps.settings.s3_bucket_documents

    async def _record_attempt(self, req: Any, category: str, code: str, reason: str) -> None:
        if not activity.in_activity():
            return
        info = activity.info()
        try:
            async with self.deps.pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO packet_attempts (workflow_id, activity, subject, attempt, "
                    "category, code, reason) VALUES ($1,$2,$3,$4,$5,$6,$7) "
                    "ON CONFLICT DO NOTHING",
                    info.workflow_id or "",
                    info.activity_type,
                    _subject(req),
                    info.attempt,
                    category,
                    code,
                    reason[:500],
                )
        except Exception as exc:  # the attempt log is best effort; the failure still raises
            log.warning("packets.attempt_not_recorded", error=type(exc).__name__)

    def _remember(self, key: str, parsed: ParseResult) -> None:
        self._parsed[key] = parsed
        self._parsed.move_to_end(key)
        while len(self._parsed) > _CACHE_SIZE:
            self._parsed.popitem(last=False)

    async def _load_parsed(self, document_key: str, ref: ObjectRef) -> ParseResult:
        cached = self._parsed.get(document_key)
        if cached is not None:
            return cached
        data = await self.deps.store.get_bytes(ref.bucket, ref.key)
        parsed = ParseResult.model_validate_json(data)
        self._remember(document_key, parsed)
        return parsed

    @staticmethod
    def _checklist(region: str) -> Checklist:
        try:
            return load_checklist(region)
        except UnknownRegion as exc:
            raise FatalSchemaMismatch(
                "MANIFEST_INVALID", f"no checklist for region {region}", subject=region
            ) from exc

    async def _in_executor(self, fn: Callable[[], R]) -> R:
        """Run CPU-heavy ``fn`` off the event loop, heartbeating while it runs."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.parse_executor, fn)
        while True:
            done, _ = await asyncio.wait({future}, timeout=_HEARTBEAT_SECONDS)
            if done:
                return future.result()
            activity.heartbeat("working")

    # ------------------------------------------------------------------ packet
    @activity.defn(name="packets.register")
    @packet_activity
    async def register_packet(self, req: RegisterPacketInput) -> bool:
        """Record the packet (idempotent upsert); mark a replayed DLQ entry; audit receipt.

        Returns True when the packet row was created now.
        """
        p = req.packet
        m = p.manifest
        async with self.deps.pool.acquire() as conn, conn.transaction():
            created = await conn.fetchval(
                """INSERT INTO packets (packet_id, site_id, site_number, protocol_number,
                       protocol_version, region, country, target_activation_date,
                       correlation_id, status, manifest)
                   VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,'PROCESSING',$10::jsonb)
                   ON CONFLICT (packet_id) DO UPDATE SET updated_at = now()
                   RETURNING (xmax = 0)""",
                p.packet_id,
                m.site_id,
                m.site_number,
                m.protocol_number,
                m.protocol_version,
                m.region,
                m.country,
                m.target_activation_date,
                p.correlation_id,
                m.model_dump_json(),
            )
            if p.replay_of:
                await conn.execute(
                    "UPDATE dlq SET replayed_at = now(), replayed_by = $2 "
                    "WHERE dlq_id = $1::uuid AND replayed_at IS NULL",
                    p.replay_of,
                    p.submitted_by,
                )
        await self.deps.audit.append(req.entry)
        return bool(created)

    @activity.defn(name="packets.transition")
    @packet_activity
    async def transition(self, req: TransitionInput) -> AuditRecord:
        """Move the packet row to ``status`` (and ``outcome``), sync its gaps; audit it."""
        terminal = req.status in TERMINAL_STATUSES
        async with self.deps.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """UPDATE packets SET status = $2, outcome = coalesce($3, outcome),
                       updated_at = now(),
                       completed_at = CASE WHEN $4 THEN now() ELSE completed_at END
                   WHERE packet_id = $1""",
                req.packet_id,
                str(req.status),
                req.outcome,
                terminal,
            )
        return await self.deps.audit.append(req.entry)

    @activity.defn(name="packets.audit")
    @packet_activity
    async def audit(self, req: AuditInput) -> AuditRecord:
        """Append one entry to the audit chain (idempotent on entry_id)."""
        return await self.deps.audit.append(req.entry)

    # ------------------------------------------------------------------ documents
    @activity.defn(name="packets.hash_verify")
    @packet_activity
    async def hash_verify(self, req: DocumentStepInput) -> HashVerifyResult:
        """Stream the stored object, decrypting, and re-hash it against the upload's hash.

        Different bytes are a HASH_MISMATCH finding (COMPLIANCE_BLOCK). A missing object
        raises FATAL_SCHEMA_MISMATCH; an unreachable store RECOVERABLE_TIMEOUT.
        """
        import hashlib

        ref = req.document.ref
        digest = hashlib.sha256()
        size = 0
        findings: list[Finding] = []
        head = await self.deps.store.head(ref.bucket, ref.key)
        try:
            async for chunk in self.deps.store.download(
                ref.bucket, ref.key, expected_sha256=ref.sha256
            ):
                digest.update(chunk)
                size += len(chunk)
                if size % (8 * 1024 * 1024) < len(chunk):
                    activity.heartbeat(size)
        except (ObjectIntegrityError, EnvelopeError):
            findings.append(
                make_finding(
                    "HASH_MISMATCH",
                    req.document.name,
                    expected=ref.sha256[:16],
                    found=digest.hexdigest()[:16],
                )
            )
        return HashVerifyResult(
            sha256=digest.hexdigest(), size=size, encrypted=head.encrypted, findings=findings
        )

    @activity.defn(name="packets.store")
    @packet_activity
    async def store(self, req: DocumentStepInput) -> StoreResult:
        """Register the stored document under its key (sha256 + site + protocol version).

        Idempotent. A document key already VALIDATED is not processed again: its stored
        extraction and findings come back with ``reused=True``.
        """
        d = req.document
        async with self.deps.pool.acquire() as conn:
            await conn.execute(
                """INSERT INTO packet_documents (document_key, packet_id, sha256, site_id,
                       protocol_version, file_name, s3_bucket, s3_key, size_bytes,
                       declared_type, status)
                   VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,'STORED')
                   ON CONFLICT DO NOTHING""",
                req.document_key,
                req.packet_id,
                d.ref.sha256,
                req.site_id,
                req.protocol_version,
                d.name,
                d.ref.bucket,
                d.ref.key,
                d.ref.size,
                d.declared_type.value if d.declared_type else None,
            )
            row = await conn.fetchrow(
                "SELECT status, doc_type, page_count, ocr_pages, extraction "
                "FROM packet_documents WHERE document_key = $1",
                req.document_key,
            )
            if row is None or row["status"] != "VALIDATED" or row["extraction"] is None:
                return StoreResult(document_key=req.document_key)
            rows = await conn.fetch(
                "SELECT code, category, message, details FROM packet_findings "
                "WHERE document_key = $1 ORDER BY code",
                req.document_key,
            )
        record = DocumentRecord.model_validate(
            {
                "name": d.name,
                "sha256": d.ref.sha256,
                "doc_type": row["doc_type"] or DocumentType.UNKNOWN,
                "page_count": row["page_count"] or 0,
                "extraction": json.loads(row["extraction"]),
            }
        )
        findings = [
            Finding(
                code=r["code"],
                category=ErrorCategory(r["category"]),
                message=r["message"],
                document=d.name,
                details=json.loads(r["details"]),
            )
            for r in rows
        ]
        return StoreResult(
            document_key=req.document_key,
            reused=True,
            record=record,
            findings=findings,
            page_count=row["page_count"] or 0,
            ocr_pages=list(row["ocr_pages"] or []),
        )

    @activity.defn(name="packets.analyse")
    @packet_activity
    async def analyse(self, req: AnalyseInput) -> AnalyseResult:
        """Parse the stored document (PDF text/OCR, DOCX; in a parser process) and analyse it
        with :func:`clinflow.packets.pipeline.evaluate_document`: classify, extract, validate
        (structural, PDF signatures, then semantic unless a structural check was fatal).

        The parse result and the PDF signature report are stored encrypted under the document
        key, so a retry analyses again without parsing again. Records one
        ``packet_validations`` row per stage (upserts), the findings, and the document's
        extraction and status. Raises FATAL_SCHEMA_MISMATCH (unreadable, truncated,
        unsupported) or RECOVERABLE_TIMEOUT (OCR engine unavailable, parser crashed).
        """
        parsed, signatures = await self._parsed_document(req)
        checklist = self._checklist(req.manifest.region)
        evaluation = await asyncio.to_thread(
            evaluate_document,
            parsed,
            name=req.name,
            manifest=req.manifest,
            checklist=checklist,
            as_of=req.as_of,
            ingestion_sha256=req.ingestion_sha256,
            declared_type=req.declared_type,
            signatures=signatures,
        )
        extraction = evaluation.extraction
        assert extraction is not None and evaluation.classification is not None
        structural = evaluation.stage_findings("structural")
        semantic = evaluation.stage_findings("semantic") if evaluation.semantic_checked else None

        def passed(items: list[Finding]) -> bool:
            return not any(
                f.category in (ErrorCategory.FATAL_SCHEMA_MISMATCH, ErrorCategory.COMPLIANCE_BLOCK)
                for f in items
            )

        async with self.deps.pool.acquire() as conn, conn.transaction():
            stages: list[tuple[str, list[Finding]]] = [("structural", structural)]
            if semantic is not None:
                stages.append(("semantic", semantic))
            for stage, items in stages:
                await conn.execute(
                    """INSERT INTO packet_validations (packet_id, document_key, stage, passed,
                           finding_count) VALUES ($1,$2,$3,$4,$5)
                       ON CONFLICT (document_key, stage) DO UPDATE SET passed = excluded.passed,
                           finding_count = excluded.finding_count, validated_at = now()""",
                    req.packet_id,
                    req.document_key,
                    stage,
                    passed(items),
                    len(items),
                )
            await self._insert_findings(conn, req.packet_id, req.document_key, evaluation.findings)
            await conn.execute(
                """UPDATE packet_documents SET file_kind = $2, page_count = $3, ocr_pages = $4,
                       ocr_mean_confidence = $5, doc_type = $6, classification_score = $7,
                       extraction = $8::jsonb, status = $9, updated_at = now()
                   WHERE document_key = $1""",
                req.document_key,
                str(parsed.kind),
                parsed.page_count,
                parsed.ocr_pages,
                parsed.ocr_mean_confidence,
                extraction.doc_type.value,
                evaluation.classification.score,
                extraction.model_dump_json(),
                "VALIDATED" if evaluation.semantic_checked else "FAILED",
            )
        return AnalyseResult(
            kind=str(parsed.kind),
            page_count=parsed.page_count,
            ocr_pages=parsed.ocr_pages,
            ocr_mean_confidence=parsed.ocr_mean_confidence,
            classification=evaluation.classification,
            record=evaluation.record(),
            findings=evaluation.findings,
            structural_passed=passed(structural),
            semantic_passed=None if semantic is None else passed(semantic),
        )

    async def _parsed_document(
        self, req: AnalyseInput
    ) -> tuple[ParseResult, PdfSignatureReport | None]:
        """The document's parse result and PDF signature report: from this process's cache,
        from the object store (an earlier attempt), or parsed now and stored."""
        parsed_ref = ObjectRef(bucket=self.bucket, key=f"{PARSED_PREFIX}/{req.document_key}.json")
        sig_key = _signatures_key(req.document_key)
        parsed: ParseResult | None = self._parsed.get(req.document_key)
        if parsed is None and await self.deps.store.exists(parsed_ref.bucket, parsed_ref.key):
            parsed = await self._load_parsed(req.document_key, parsed_ref)
        signatures: PdfSignatureReport | None = None
        if parsed is None:
            parsed, signatures = await self._parse_fresh(req)
            if signatures is not None:
                await self.deps.store.put_bytes(
                    self.bucket,
                    sig_key,
                    signatures.model_dump_json().encode(),
                    content_type="application/json",
                )
            await self.deps.store.put_bytes(
                parsed_ref.bucket,
                parsed_ref.key,
                parsed.model_dump_json().encode(),
                content_type="application/json",
            )
            self._remember(req.document_key, parsed)
        elif parsed.kind is FileKind.PDF and parsed.signature_fields:
            if await self.deps.store.exists(self.bucket, sig_key):
                data = await self.deps.store.get_bytes(self.bucket, sig_key)
                signatures = PdfSignatureReport.model_validate_json(data)
        return parsed, signatures

    async def _parse_fresh(
        self, req: AnalyseInput
    ) -> tuple[ParseResult, PdfSignatureReport | None]:
        """Parse, and validate the digital signatures of a PDF that has signature fields."""
        fd, name = await asyncio.to_thread(tempfile.mkstemp, suffix=".doc", prefix="packet-")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                async for chunk in self.deps.store.download(
                    req.ref.bucket, req.ref.key, expected_sha256=None
                ):
                    await asyncio.to_thread(fh.write, chunk)
            try:
                outcome = await self._in_executor(
                    functools.partial(parse_in_process, path, self.options, req.name)
                )
            except BrokenProcessPool as exc:
                self.parse_executor = _parse_pool(self.deps.settings.packets_parse_processes)
                raise RecoverableTimeout(
                    "PARSER_CRASHED", "the parser process died; retrying", subject=req.name
                ) from exc
            if isinstance(outcome, ParseFailure):
                raise error_for(
                    outcome.category,
                    outcome.code,
                    outcome.reason,
                    subject=outcome.subject,
                    details=outcome.details,
                )
            signatures: PdfSignatureReport | None = None
            if outcome.kind is FileKind.PDF and outcome.signature_fields:
                s = self.deps.settings
                signatures = await self._in_executor(
                    functools.partial(
                        signatures_in_process,
                        path,
                        s.pdfsig_trust_bundle,
                        s.pdfsig_max_modification,
                    )
                )
            return outcome, signatures
        finally:
            await asyncio.to_thread(path.unlink, True)

    @staticmethod
    async def _insert_findings(
        conn: Any, packet_id: str, document_key: str | None, findings: list[Finding]
    ) -> None:
        for f in findings:
            await conn.execute(
                """INSERT INTO packet_findings (packet_id, document_key, code, category,
                       message, details) VALUES ($1,$2,$3,$4,$5,$6::jsonb)
                   ON CONFLICT DO NOTHING""",
                packet_id,
                document_key,
                f.code,
                str(f.category),
                f.message,
                json.dumps({**f.details, **({"document": f.document} if f.document else {})}),
            )

    # ------------------------------------------------------------------ packet checks
    @activity.defn(name="packets.cross_checks")
    @packet_activity
    async def cross_checks(self, req: PacketChecksInput) -> FindingsResult:
        """Duplicates and cross-document rules over the packet's documents; recorded."""
        hashes = req.hashes or {r.name: r.sha256 for r in req.records}
        findings = [
            *duplicate_findings(hashes),
            *req.extra_findings,
            *cross_document_checks(
                req.manifest, [r for r in req.records if r.extraction], as_of=req.as_of
            ),
        ]
        async with self.deps.pool.acquire() as conn, conn.transaction():
            await self._insert_findings(conn, req.packet_id, None, findings)
        return FindingsResult(findings=findings)

    @activity.defn(name="packets.gaps")
    @packet_activity
    async def gaps(self, req: PacketChecksInput) -> GapReport:
        """The packet against its region's checklist; open gaps recorded, closed ones resolved."""
        checklist = self._checklist(req.manifest.region)
        report = gap_analysis(req.manifest, req.records, checklist)
        async with self.deps.pool.acquire() as conn, conn.transaction():
            keys = [f"{g.code}|{g.doc_type.value}|{g.document or ''}" for g in report.items]
            await conn.execute(
                """UPDATE packet_gaps SET resolved_at = now()
                   WHERE packet_id = $1 AND resolved_at IS NULL
                     AND NOT (code || '|' || doc_type || '|' || coalesce(document_name, ''))
                         = ANY($2::text[])""",
                req.packet_id,
                keys,
            )
            for g in report.items:
                await conn.execute(
                    """INSERT INTO packet_gaps (packet_id, code, doc_type, document_name,
                           expected, found, message) VALUES ($1,$2,$3,$4,$5,$6,$7)
                       ON CONFLICT DO NOTHING""",
                    req.packet_id,
                    g.code,
                    g.doc_type.value,
                    g.document,
                    g.expected,
                    g.found,
                    g.message,
                )
        return report

    @activity.defn(name="packets.external_check")
    @packet_activity
    async def external_check(self, req: ExternalCheckInput) -> ExternalCheckResult:
        """Ask the configured IRB portal whether the site's approval is on record.

        Skipped when no endpoint is configured. Behind a circuit breaker: connection
        errors, timeouts and 5xx answers count as failures and raise RECOVERABLE_TIMEOUT;
        while the breaker is open calls fail fast (CIRCUIT_OPEN). A 404 is a warning
        finding (not on record), other 2xx answers pass. Rate-limited by its task queue.
        """
        s = self.deps.settings
        if not s.packets_external_url:
            return ExternalCheckResult(skipped=True)
        self.breaker.before_call()
        params = {
            "site_id": req.site_id,
            "protocol_number": req.protocol_number,
            "protocol_version": req.protocol_version,
        }
        timeout = aiohttp.ClientTimeout(total=s.packets_external_timeout_seconds)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(s.packets_external_url, params=params) as resp,
            ):
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.breaker.record_failure()
            raise RecoverableTimeout(
                "EXTERNAL_CHECK_UNAVAILABLE",
                f"the IRB portal check could not be reached ({type(exc).__name__})",
                subject=req.packet_id,
            ) from exc
        if status >= 500 or status == 429:
            self.breaker.record_failure()
            raise RecoverableTimeout(
                "EXTERNAL_CHECK_UNAVAILABLE",
                f"the IRB portal check answered HTTP {status}",
                subject=req.packet_id,
                details={"status": status},
            )
        self.breaker.record_success()
        if status == 404:
            return ExternalCheckResult(
                skipped=False,
                findings=[
                    Finding(
                        code="EXTERNAL_IRB_NOT_ON_RECORD",
                        category=ErrorCategory.WARNING_DEVIATION,
                        message="The IRB portal has no record of this site's approval",
                        details={"status": str(status)},
                    )
                ],
            )
        return ExternalCheckResult(skipped=False)

    # ------------------------------------------------------------------ routing outcomes
    @activity.defn(name="packets.reject")
    @packet_activity
    async def reject_packet(self, req: RejectPacketInput) -> DeadLetterResult:
        """End a packet that cannot be started, visibly: the packets row as DEAD_LETTERED with
        the reason, a DLQ entry (FATAL_SCHEMA_MISMATCH, ``req.code``) with the manifest as
        context, and an audit entry. Idempotent (one open DLQ entry per packet and code)."""
        p = req.packet
        m = p.manifest
        reason = req.reason[:500]
        async with self.deps.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO packets (packet_id, site_id, site_number, protocol_number,
                       protocol_version, region, country, target_activation_date,
                       correlation_id, status, outcome, manifest, completed_at)
                   VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,'DEAD_LETTERED','DEAD_LETTERED',
                           $10::jsonb, now())
                   ON CONFLICT (packet_id) DO UPDATE SET status = 'DEAD_LETTERED',
                       outcome = 'DEAD_LETTERED', updated_at = now(),
                       completed_at = coalesce(packets.completed_at, now())""",
                p.packet_id,
                m.site_id,
                m.site_number,
                m.protocol_number,
                m.protocol_version,
                m.region,
                m.country,
                m.target_activation_date,
                p.correlation_id,
                m.model_dump_json(),
            )
            attempts = [{"activity": "packets.reject", "attempt": 1, "code": req.code}]
            dlq_id = await conn.fetchval(
                """INSERT INTO dlq (packet_id, document_key, category, code, reason, attempts)
                   VALUES ($1, NULL, $2, $3, $4, $5::jsonb)
                   ON CONFLICT (packet_id, coalesce(document_key, ''), code)
                       WHERE replayed_at IS NULL DO NOTHING
                   RETURNING dlq_id::text""",
                p.packet_id,
                str(ErrorCategory.FATAL_SCHEMA_MISMATCH),
                req.code,
                reason,
                json.dumps(attempts),
            )
            created = dlq_id is not None
            if dlq_id is None:
                dlq_id = await conn.fetchval(
                    "SELECT dlq_id::text FROM dlq WHERE packet_id = $1 AND document_key IS NULL "
                    "AND code = $2 AND replayed_at IS NULL",
                    p.packet_id,
                    req.code,
                )
        context = {
            "dlq_id": dlq_id,
            "packet_id": p.packet_id,
            "stage": "route",
            "error": {
                "category": str(ErrorCategory.FATAL_SCHEMA_MISMATCH),
                "code": req.code,
                "reason": reason,
            },
            "manifest": m.model_dump(mode="json"),
            "documents": [d.model_dump(mode="json") for d in p.documents],
        }
        await self.deps.store.put_bytes(
            self.deps.settings.s3_bucket_dlq,
            f"{DLQ_PREFIX}/{dlq_id}.json",
            json.dumps(context, sort_keys=True).encode(),
            content_type="application/json",
        )
        await self.deps.audit.append(req.entry)
        return DeadLetterResult(dlq_id=str(dlq_id), created=created)

    @activity.defn(name="packets.dead_letter")
    @packet_activity
    async def dead_letter(self, req: DeadLetterInput) -> DeadLetterResult:
        """Open a DLQ entry with full context (packet, document, error, attempt history).

        The document's object is kept where it is; a JSON context file goes to the DLQ
        bucket. Idempotent: one open entry per packet, document and code.
        """
        async with self.deps.pool.acquire() as conn, conn.transaction():
            attempts = [
                {
                    "activity": r["activity"],
                    "attempt": r["attempt"],
                    "at": r["failed_at"].isoformat(),
                    "category": r["category"],
                    "code": r["code"],
                    "reason": r["reason"],
                }
                for r in await conn.fetch(
                    "SELECT activity, attempt, failed_at, category, code, reason "
                    "FROM packet_attempts WHERE workflow_id = $1 AND subject = $2 "
                    "ORDER BY failed_at, attempt",
                    req.workflow_id,
                    req.document_key or "",
                )
            ]
            if not attempts:
                attempts = [{"activity": req.stage, "attempt": 1, "code": req.code}]
            dlq_id = await conn.fetchval(
                """INSERT INTO dlq (packet_id, document_key, category, code, reason, attempts,
                       s3_bucket, s3_key) VALUES ($1,$2,$3,$4,$5,$6::jsonb,$7,$8)
                   ON CONFLICT (packet_id, coalesce(document_key, ''), code)
                       WHERE replayed_at IS NULL DO NOTHING
                   RETURNING dlq_id::text""",
                req.packet_id,
                req.document_key,
                str(req.category),
                req.code,
                req.reason,
                json.dumps(attempts),
                req.ref.bucket if req.ref else None,
                req.ref.key if req.ref else None,
            )
            created = dlq_id is not None
            if dlq_id is None:
                dlq_id = await conn.fetchval(
                    "SELECT dlq_id::text FROM dlq WHERE packet_id = $1 AND "
                    "coalesce(document_key, '') = $2 AND code = $3 AND replayed_at IS NULL",
                    req.packet_id,
                    req.document_key or "",
                    req.code,
                )
            if req.document_key:
                await conn.execute(
                    "UPDATE packet_documents SET status = 'DEAD_LETTERED', updated_at = now() "
                    "WHERE document_key = $1",
                    req.document_key,
                )
        context = {
            "dlq_id": dlq_id,
            "packet_id": req.packet_id,
            "workflow_id": req.workflow_id,
            "document_key": req.document_key,
            "document_name": req.document_name,
            "stage": req.stage,
            "error": {
                "category": str(req.category),
                "code": req.code,
                "reason": req.reason,
                "details": req.details,
            },
            "object": req.ref.model_dump() if req.ref else None,
            "attempts": attempts,
        }
        await self.deps.store.put_bytes(
            self.deps.settings.s3_bucket_dlq,
            f"{DLQ_PREFIX}/{dlq_id}.json",
            json.dumps(context, sort_keys=True).encode(),
            content_type="application/json",
        )
        entry = req.entry.model_copy(
            update={"details": {**req.entry.details, "dlq_id": dlq_id, "attempts": len(attempts)}}
        )
        await self.deps.audit.append(entry)
        return DeadLetterResult(dlq_id=str(dlq_id), created=created)

    @activity.defn(name="packets.verify_review")
    @packet_activity
    async def verify_review(self, req: ReviewCheckInput) -> ReviewVerdict:
        """Verify a reviewer's token and electronic signature, and record the decision.

        Accepted only when the bearer token is valid and of Regulatory Affairs, its user is the
        reviewer, and the signed decision (21 CFR Part 11) verifies against the signer's
        registered Ed25519 key, is bound to this packet's ``record_sha256``, means what the
        decision does (approval/rejection) and carries the same reason. Anything else (no
        signature, forged/expired token, wrong role, tampered or foreign signature) is refused
        with its code and audited as ``packet.review.refused``. An accepted decision goes to
        ``packet_reviews`` and the audit chain with the signed decision in ``details`` and the
        record hash as ``payload_sha256`` (re-verified by ``clinflow audit verify-signatures``).
        Idempotent on ``request_id``.
        """
        r = req.review
        verdict = await self._check_review(req)
        if verdict.accepted:
            async with self.deps.pool.acquire() as conn:
                await conn.execute(
                    """INSERT INTO packet_reviews (packet_id, request_id, reviewer_id,
                           reviewer_role, decision, reason, signature_meaning, blocking_codes,
                           decided_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
                       ON CONFLICT (request_id) DO NOTHING""",
                    req.packet_id,
                    req.request_id,
                    verdict.reviewer_id,
                    verdict.role,
                    req.decision,
                    r.reason,
                    r.signature_meaning,
                    req.blocking_codes,
                    req.occurred_at,
                )
        action = (
            f"packet.review.{req.decision.lower()}d"
            if verdict.accepted
            else "packet.review.refused"
        )
        details: dict[str, Any] = {
            "decision": req.decision,
            "role": verdict.role,
            "signature_meaning": r.signature_meaning,
            "blocking_codes": req.blocking_codes,
            "refusal_code": verdict.code,
        }
        if verdict.accepted and r.signed is not None:
            details.update(r.signed.audit_details())
        elif r.signed is not None:
            details["key_id"] = r.signed.key_id
        await self.deps.audit.append(
            AuditEntry(
                entry_id=f"{req.request_id}:audit",
                occurred_at=req.occurred_at,
                actor=verdict.reviewer_id,
                action=action,
                location=f"workflow:{activity.info().workflow_id}",
                reason=r.reason if verdict.accepted else verdict.message,
                subject_ref=req.packet_id,
                payload_sha256=req.record_sha256 if verdict.accepted else None,
                details=details,
            )
        )
        return verdict

    async def _check_review(self, req: ReviewCheckInput) -> ReviewVerdict:
        """The verdict on one decision: token, then electronic signature (see verify_review)."""
        r = req.review

        def refused(code: str, message: str) -> ReviewVerdict:
            return ReviewVerdict(
                accepted=False, reviewer_id=r.reviewer_id, role=r.role, code=code, message=message
            )

        try:
            principal = verify_token(
                self.deps.keyring,
                r.token,
                required_role=REVIEW_ROLE,
                settings=self.deps.settings,
            )
        except AuthError as exc:
            return refused(str(exc.code), exc.message)
        if principal.user != r.reviewer_id or principal.role != r.role:
            return refused("REVIEWER_MISMATCH", "the reviewer id or role does not match the token")
        signed = r.signed
        if signed is None:
            return refused(
                "ESIGN_MISSING",
                "the decision carries no electronic signature; sign it with the reviewer's "
                "registered key (clinflow packets approve|reject --key)",
            )
        d = signed.decision
        wanted = (
            SignatureMeaning.APPROVAL if req.decision == "APPROVE" else (SignatureMeaning.REJECTION)
        )
        if d.meaning is not wanted:
            return refused(
                "ESIGN_MEANING_MISMATCH",
                f"the signature means {d.meaning.value}, the decision is {req.decision}",
            )
        if d.record_ref != req.packet_id:
            return refused("esign_record_mismatch", "the decision was signed for another record")
        if (d.reason or "").strip() != r.reason.strip():
            return refused("ESIGN_REASON_MISMATCH", "the signed reason differs from the reason")
        if d.role != principal.role:
            return refused("ESIGN_ROLE_MISMATCH", "the signed role differs from the token's role")
        try:
            await verify_against_registry(
                self.deps.pool, signed, record_sha256=req.record_sha256, signer=principal.user
            )
        except ESignatureError as exc:
            return refused(exc.code, exc.reason)
        return ReviewVerdict(
            accepted=True,
            reviewer_id=principal.user,
            role=principal.role,
            signature=signed.manifestation(),
        )

    # ------------------------------------------------------------------ residency
    @activity.defn(name="packets.load_packet")
    @packet_activity
    async def load_packet(self, req: PacketClaim) -> PacketInput:
        """The full input behind a batch child's claim (read on the packet's regional queue).

        Raises FATAL_SCHEMA_MISMATCH when the stored input is for another packet.
        """
        data = await self.deps.store.get_bytes(req.ref.bucket, req.ref.key)
        loaded = PacketInput.model_validate_json(data)
        if loaded.packet_id != req.packet_id:
            raise FatalSchemaMismatch(
                "MANIFEST_INVALID",
                "the claimed packet input belongs to another packet",
                subject=req.packet_id,
            )
        return loaded

    @activity.defn(name="packets.redact_status")
    @packet_activity
    async def redact_status(self, req: RedactInput) -> PacketStatus:
        """``req.status`` as it may leave the region: tokens and codes, no names, no free text.

        File names (which name people) and reviewer ids become deterministic tokens
        (:class:`~clinflow.tokenise.Tokeniser`); messages, details, reasons in words and
        signature manifestations are dropped. Pure; idempotent.
        """
        return redact_packet_status(req.status, Tokeniser.from_keyring(self.deps.keyring))

    # ------------------------------------------------------------------ batches
    @activity.defn(name="packets.load_batch_page")
    @packet_activity
    async def load_batch_page(self, req: LoadPageInput) -> LoadPageResult:
        """Packets ``[offset, offset+limit)`` of a stored batch plan."""
        data = await self.deps.store.get_bytes(req.plan.bucket, req.plan.key)
        plan = BatchPlan.model_validate_json(data)
        return LoadPageResult(packets=plan.packets[req.offset : req.offset + req.limit])

    @activity.defn(name="packets.describe_packet")
    @packet_activity
    async def describe_packet(self, req: DescribeInput) -> PacketSettled:
        """The current status of an existing packet workflow (from its search attributes)."""
        desc = await activity.client().get_workflow_handle(req.workflow_id).describe()
        wf_status = desc.status.name if desc.status is not None else "UNKNOWN"
        status = desc.typed_search_attributes.get(STATUS_KEY) or wf_status
        closed = desc.close_time is not None
        if closed and status not in {str(s) for s in TERMINAL_STATUSES}:
            status = f"WORKFLOW_{wf_status}"
        return PacketSettled(packet_id=req.workflow_id, status=status, queue=desc.task_queue)

    # ------------------------------------------------------------------ registration
    def workflow_activities(self) -> list[Callable[..., Any]]:
        """The activities a packet workflow's own queue serves (all but the external check)."""
        return [
            self.register_packet,
            self.transition,
            self.audit,
            self.hash_verify,
            self.store,
            self.analyse,
            self.cross_checks,
            self.gaps,
            self.dead_letter,
            self.verify_review,
            self.describe_packet,
            self.load_packet,
            self.redact_status,
        ]

    def batch_activities(self) -> list[Callable[..., Any]]:
        return [self.load_batch_page, self.describe_packet, self.reject_packet]


__all__ = ["PacketActivities", "packet_activity"]
