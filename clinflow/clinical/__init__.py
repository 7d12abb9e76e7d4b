"""Clinical data batches: FHIR R4 bulk NDJSON and HL7 v2 in, validated rows in PostgreSQL out.

The public API the Temporal activities call (pure Python, no temporalio):

- discovery: ``discover_inputs(path) -> ExportInputs``, ``parse_manifest(bytes) -> Manifest``
- partitions: ``plan_partitions(path | InputFile, target_bytes) -> list[Partition]``,
  ``aplan_partitions(info, read_range, target_bytes)`` for S3 ranged reads
- reading: ``iter_ndjson_range(chunks, start, end, ...)`` / ``aiter_ndjson_range(...)`` ->
  ``RawLine``; ``read_file_range``, ``gunzip_chunks``, ``agunzip_chunks``
- FHIR records: ``process_fhir_line(raw, ctx) -> Processed | Quarantined``,
  ``process_ndjson_lines(lines, ctx, report)``
- HL7 v2: ``split_hl7_messages(bytes) -> HL7Split``,
  ``process_hl7_message(raw, ctx, ack_time=None) -> HL7Result``, ``count_hl7(report, result)``
- PostgreSQL: ``load_chunk(conn, rows, batch_id, source, watermark=, policy=) -> LoadCounts``,
  ``get_watermark``/``commit_watermark``, ``insert_quarantine``, ``start_batch``/``finish_batch``
"""

from clinflow.clinical.discovery import DiscoveryError, discover_inputs, parse_manifest
from clinflow.clinical.fhir_record import process_fhir_line, process_ndjson_lines
from clinflow.clinical.hl7_message import HL7Result, count_hl7, process_hl7_message
from clinflow.clinical.hl7_split import HL7RawMessage, HL7Split, split_hl7_messages
from clinflow.clinical.loader import load_chunk
from clinflow.clinical.models import (
    ExportInputs,
    FhirRow,
    InputFile,
    LoadCounts,
    Partition,
    ProcessContext,
    Processed,
    Quarantined,
    QuarantineReason,
    QuarantineRecord,
    ValidationReport,
)
from clinflow.clinical.ndjson_reader import (
    RawLine,
    agunzip_chunks,
    aiter_ndjson_range,
    gunzip_chunks,
    iter_ndjson_range,
    read_file_range,
)
from clinflow.clinical.partitions import aplan_partitions, plan_partitions
from clinflow.clinical.quarantine_store import (
    aesgcm_sealer,
    finish_batch,
    insert_quarantine,
    start_batch,
)
from clinflow.clinical.watermarks import commit_watermark, get_watermark

__all__ = [
    "DiscoveryError",
    "ExportInputs",
    "FhirRow",
    "HL7RawMessage",
    "HL7Result",
    "HL7Split",
    "InputFile",
    "LoadCounts",
    "Partition",
    "ProcessContext",
    "Processed",
    "QuarantineReason",
    "QuarantineRecord",
    "Quarantined",
    "RawLine",
    "ValidationReport",
    "aesgcm_sealer",
    "agunzip_chunks",
    "aiter_ndjson_range",
    "aplan_partitions",
    "commit_watermark",
    "count_hl7",
    "discover_inputs",
    "finish_batch",
    "get_watermark",
    "gunzip_chunks",
    "insert_quarantine",
    "iter_ndjson_range",
    "load_chunk",
    "parse_manifest",
    "plan_partitions",
    "process_fhir_line",
    "process_hl7_message",
    "process_ndjson_lines",
    "read_file_range",
    "split_hl7_messages",
    "start_batch",
]
