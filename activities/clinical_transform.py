"""The CPU-bound stage of a partition, run in a process pool (or a thread when none).

Each function takes one signed raw chunk, verifies its signature (tamper detection between
the reading activity and this process), parses, normalises and validates every record with the
domain code, and returns the rows, the quarantine records and a signature over them, which the
loader verifies before COPY. Module-level functions with picklable arguments: they run in
spawned pool processes and import no temporalio.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from clinflow.clinical.chunk_signing import ChunkKey, sign_copy_output, sign_output, verify_raw
from clinflow.clinical.copy_rows import CopyRows, CopyRowsBuilder
from clinflow.clinical.fhir_record import (
    Accepted,
    line_fields,
    process_ndjson_lines,
    process_ndjson_outcomes,
)
from clinflow.clinical.hl7_message import count_hl7, process_hl7_message
from clinflow.clinical.hl7_split import HL7RawMessage
from clinflow.clinical.models import (
    FhirRow,
    ProcessContext,
    Processed,
    QuarantineRecord,
    ValidationReport,
    WatermarkPolicy,
)
from clinflow.clinical.ndjson_blocks import RawBlock, block_line_fields
from clinflow.clinical.ndjson_reader import LineFields, RawLine


@dataclass
class FhirChunk:
    """Raw NDJSON lines of one chunk and their ingestion signature."""

    context: str
    lines: list[RawLine]
    signature: str
    ctx: ProcessContext
    key: ChunkKey


@dataclass
class HL7Chunk:
    context: str
    messages: list[tuple[int, int, bytes]]  # (index, offset, data)
    signature: str
    ctx: ProcessContext
    ack_time: datetime
    key: ChunkKey


@dataclass
class ChunkOutput:
    """What a transform produced, signed for the loader."""

    rows: list[FhirRow]
    records: list[QuarantineRecord]
    report: ValidationReport
    signature: str
    acks: list[bytes] = field(default_factory=list)


def raw_items(lines: list[RawLine]) -> list[tuple[int, bytes]]:
    return [(line.offset, line.data) for line in lines]


def transform_fhir_chunk(chunk: FhirChunk) -> ChunkOutput:
    """Verify, process and sign one NDJSON chunk. Raises ``ChunkTampered``."""
    verify_raw(chunk.key, chunk.context, raw_items(chunk.lines), chunk.signature)
    report = ValidationReport()
    rows: list[FhirRow] = []
    records: list[QuarantineRecord] = []
    for result in process_ndjson_lines(chunk.lines, chunk.ctx, report):
        if isinstance(result, Processed):
            rows.append(result.row)
        else:
            records.append(result.record)
    signature = sign_output(chunk.key, chunk.context, rows, records)
    return ChunkOutput(rows, records, report, signature)


@dataclass
class FhirBlockChunk:
    """One chunk of a partition as raw bytes: a block of whole lines, or one over-long line.

    Everything the transform needs to produce COPY-ready rows (limits, resume point,
    watermark) travels with it; ``signature`` is ``sign_raw`` over ``raw_block_items``.
    """

    context: str
    item: RawBlock | RawLine
    signature: str
    ctx: ProcessContext
    key: ChunkKey
    max_line_bytes: int
    keep_prefix: int
    resume_from: int
    watermark: datetime | None
    policy: WatermarkPolicy
    source_system: str = ""
    batch_id: str = ""


@dataclass
class CopyChunkOutput:
    """COPY tuples, quarantine records and the report of one chunk, signed for the loader."""

    rows: CopyRows
    records: list[QuarantineRecord]
    report: ValidationReport
    signature: str


def raw_block_items(item: RawBlock | RawLine) -> list[tuple[int, bytes]]:
    """What the raw signature of a block chunk covers: its offset and bytes."""
    return [(item.offset, item.data)]


def block_lines(chunk: FhirBlockChunk) -> Iterator[LineFields]:
    """The lines of a block chunk, with the offsets and indexes the line reader gives them."""
    item = chunk.item
    if isinstance(item, RawLine):
        return line_fields([item])
    return block_line_fields(
        item,
        max_line_bytes=chunk.max_line_bytes,
        keep_prefix=chunk.keep_prefix,
        resume_from=chunk.resume_from,
    )


def transform_fhir_block(chunk: FhirBlockChunk) -> CopyChunkOutput:
    """Verify, process and sign one raw block; rows come back as binary COPY tuples.

    Same records, rows, quarantine reasons and counts as ``transform_fhir_chunk`` over the same
    lines followed by ``load_chunk``'s watermark rule. Raises ``ChunkTampered``.
    """
    verify_raw(chunk.key, chunk.context, raw_block_items(chunk.item), chunk.signature)
    report = ValidationReport()
    builder = CopyRowsBuilder(chunk.watermark, chunk.policy, chunk.source_system, chunk.batch_id)
    records: list[QuarantineRecord] = []
    for result in process_ndjson_outcomes(block_lines(chunk), chunk.ctx, report):
        if isinstance(result, Accepted):
            builder.add(result)
        else:
            records.append(result.record)
    rows = builder.build()
    signature = sign_copy_output(chunk.key, chunk.context, rows.data, rows.summary(), records)
    return CopyChunkOutput(rows, records, report, signature)


def ack_line(
    index: int, offset: int, message_type: str, control_id: str, code: str, ack: str
) -> bytes:
    """One line of a file's ACK NDJSON object."""
    return (
        orjson.dumps(
            {
                "message_index": index,
                "byte_offset": offset,
                "message_type": message_type,
                "control_id": control_id,
                "ack_code": code,
                "ack": ack,
            }
        )
        + b"\n"
    )


def transform_hl7_chunk(chunk: HL7Chunk) -> ChunkOutput:
    """Verify, route, map, validate and acknowledge one chunk of HL7 v2 messages."""
    verify_raw(
        chunk.key, chunk.context, [(off, data) for _, off, data in chunk.messages], chunk.signature
    )
    report = ValidationReport()
    rows: list[FhirRow] = []
    records: list[QuarantineRecord] = []
    acks: list[bytes] = []
    for index, offset, data in chunk.messages:
        raw = HL7RawMessage(index=index, offset=offset, data=data)
        result = process_hl7_message(raw, chunk.ctx, ack_time=chunk.ack_time)
        count_hl7(report, result)
        rows.extend(result.rows)
        if result.quarantine is not None:
            records.append(result.quarantine)
        acks.append(
            ack_line(
                index, offset, result.message_type, result.control_id, result.ack_code, result.ack
            )
        )
    signature = sign_output(chunk.key, chunk.context, rows, records, acks)
    return ChunkOutput(rows, records, report, signature, acks)


def pool_ready() -> int:
    """A no-op task: one per pool process starts (and warms) every process."""
    return os.getpid()


def warm_up() -> None:
    """Pool initializer: import the FHIR models once per process, before the first chunk, and
    keep chunk buffers out of the heap (``malloc_tuning``)."""
    from clinflow.clinical.fhir_validate import resource_class
    from clinflow.clinical.malloc_tuning import fix_mmap_threshold

    fix_mmap_threshold()

    for name in ("Patient", "Observation", "Encounter", "Condition"):
        resource_class(name)
