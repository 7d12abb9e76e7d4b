"""Every line of the real Synthea/Cumulus exports is either a valid row or quarantined."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinflow.clinical import (
    ProcessContext,
    Processed,
    Quarantined,
    ValidationReport,
    discover_inputs,
    iter_ndjson_range,
    plan_partitions,
    process_ndjson_lines,
    read_file_range,
)
from tests.clinical.conftest import FHIR_EXPORTS, fhir_export


@pytest.mark.parametrize("export", FHIR_EXPORTS)
def test_every_line_validates_or_is_quarantined(export: str) -> None:
    folder = fhir_export(export)
    inputs = discover_inputs(folder)
    assert inputs.files, "discovery found no data files"
    assert inputs.transaction_time is not None, "log.ndjson gives the export's transactionTime"
    assert all(f.resource_type for f in inputs.files)
    total = ValidationReport()
    for info in inputs.files:
        path = Path(info.uri)
        non_blank = sum(1 for line in path.read_bytes().split(b"\n") if line.strip())
        ctx = ProcessContext(
            source_uri=info.uri,
            expected_resource_type=info.resource_type,
            fallback_last_updated=inputs.transaction_time,
        )
        report = ValidationReport()
        # Small partitions so several ranges per file are exercised on real data.
        for part in plan_partitions(info, target_bytes=256 * 1024):
            lines = iter_ndjson_range(read_file_range(path, part.start, part.end), part.start)
            for result in process_ndjson_lines(lines, ctx, report):
                if isinstance(result, Processed):
                    assert result.row.resource_type == info.resource_type
                    assert result.row.last_updated is not None
                else:
                    assert isinstance(result, Quarantined)
                    assert result.record.reason, "a quarantined record names its reason"
                    assert result.record.source_uri == info.uri
        assert report.records == non_blank, info.uri
        assert report.valid + report.quarantined_total == report.records
        total = total.merge(report)
    assert total.valid > 0
    # Synthea (the 10-patient set) is clean R4: R4B validates all of it.
    if export == "sample-bulk-10-patients":
        assert total.quarantined_total == 0, total.quarantined
        assert set(total.by_resource_type) >= {"Patient", "Encounter", "Condition", "Procedure"}
