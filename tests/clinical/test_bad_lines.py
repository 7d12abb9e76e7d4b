"""A file with injected bad lines: every good line loads, every bad one is quarantined."""

from __future__ import annotations

from pathlib import Path

import orjson

from clinflow.clinical import (
    ProcessContext,
    Processed,
    Quarantined,
    QuarantineReason,
    ValidationReport,
    iter_ndjson_range,
    plan_partitions,
    process_fhir_line,
    process_ndjson_lines,
    read_file_range,
)
from tests.clinical.conftest import fhir_export

MiB = 1024 * 1024


def test_injected_bad_lines(tmp_path: Path) -> None:
    good = fhir_export("sample-bulk-10-patients").joinpath("Condition.000.ndjson").read_bytes()
    good_lines = [line for line in good.split(b"\n") if line.strip()][:50]
    bad = {
        QuarantineReason.INVALID_JSON: b'{"resourceType": "Condition", "id": ',
        QuarantineReason.UNKNOWN_RESOURCE_TYPE: b'{"resourceType": "Conditione", "id": "x1"}',
        QuarantineReason.RESOURCE_TYPE_MISMATCH: b'{"resourceType": "Patient", "id": "x2"}',
        QuarantineReason.MISSING_RESOURCE_TYPE: b'{"id": "x3"}',
        QuarantineReason.MISSING_ID: b'{"resourceType": "Condition", "subject": {}}',
        QuarantineReason.FHIR_VALIDATION: (
            b'{"resourceType": "Condition", "id": "x4", "subject": {"reference": "Patient/1"},'
            b' "onsetDateTime": "not-a-date"}'
        ),
        QuarantineReason.INVALID_UTF8: b'{"resourceType": "Condition", "id": "\xff\xfe"}',
        QuarantineReason.NOT_AN_OBJECT: b"[1, 2, 3]",
        QuarantineReason.LINE_TOO_LONG: (
            b'{"resourceType": "Condition", "id": "big", "note": [{"text": "'
            + b"a" * (20 * MiB)
            + b'"}]}'
        ),
    }
    lines: list[bytes] = []
    bad_at: dict[int, QuarantineReason] = {}
    for i, line in enumerate(good_lines):
        lines.append(line)
        if i % 5 == 2 and bad:
            reason, bad_line = bad.popitem()
            bad_at[len(lines)] = reason
            lines.append(bad_line)
    assert not bad, "every bad kind was injected"
    lines.append(b"")  # a blank line is counted, not quarantined
    path = tmp_path / "Condition.000.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")

    ctx = ProcessContext(source_uri=str(path), expected_resource_type="Condition")
    report = ValidationReport()
    valid_ids: list[str] = []
    quarantined: dict[int, Quarantined] = {}
    line_starts = [0]
    for line in lines:
        line_starts.append(line_starts[-1] + len(line) + 1)
    for part in plan_partitions(path, 4 * MiB):
        stream = read_file_range(path, part.start, part.end)
        raw_lines = iter_ndjson_range(stream, part.start, part.end, max_line_bytes=16 * MiB)
        for result in process_ndjson_lines(raw_lines, ctx, report):
            if isinstance(result, Processed):
                valid_ids.append(result.row.id)
            else:
                quarantined[line_starts.index(result.record.byte_offset)] = result
    assert valid_ids == [orjson.loads(line)["id"] for line in good_lines]
    assert {i: q.record.reason for i, q in quarantined.items()} == bad_at
    too_long = next(q for q in quarantined.values() if q.record.reason == "LINE_TOO_LONG")
    assert too_long.record.raw_truncated and len(too_long.record.raw) < MiB
    assert report.blank_lines == 1
    assert report.valid == len(good_lines)
    assert report.quarantined_total == len(bad_at)
    for q in quarantined.values():
        assert q.record.byte_offset in line_starts and q.record.message


def test_quarantine_message_carries_no_values() -> None:
    line = b'{"resourceType": "Patient", "id": "p1", "birthDate": "SECRET-1970"}'
    result = process_fhir_line(line, ProcessContext(source_uri="f"))
    assert isinstance(result, Quarantined)
    assert result.record.reason == QuarantineReason.FHIR_VALIDATION
    assert "birthDate" in result.record.message
    assert "SECRET" not in result.record.message
    assert result.record.raw == line


def test_invalid_utf8_wins_over_invalid_json() -> None:
    """UTF-8 is checked before JSON: a line that is both is INVALID_UTF8, wherever the bad
    bytes are (in a string, a key, outside any string) and whatever kind of bad sequence."""
    ctx = ProcessContext(source_uri="f")
    cases = [
        b'{"resourceType": "Patient", "id": "\xed\xa0\x80"}',  # UTF-8-encoded surrogate
        b'{"resourceType": "Patient", "id": "\xc0\xaf"}',  # overlong encoding
        b'{"resourceType": "Patient", "\xf4\x90\x80\x80": 1}',  # beyond U+10FFFF, in a key
        b'{"resourceType": "Patient", "id": \xff',  # truncated JSON and a bad byte
        b"\xe2\x82",  # truncated sequence, not JSON at all
    ]
    for line in cases:
        result = process_fhir_line(line, ctx)
        assert isinstance(result, Quarantined), line
        assert result.record.reason == QuarantineReason.INVALID_UTF8, line
        assert result.record.message.startswith("invalid UTF-8 at byte "), line
    truncated = process_fhir_line(b'{"resourceType": "Patient", "id": ', ctx)
    assert isinstance(truncated, Quarantined)
    assert truncated.record.reason == QuarantineReason.INVALID_JSON
