"""OpenLineage run events of clinical batches (START, COMPLETE, FAIL), via openlineage-python.

One OpenLineage run per batch execution: the run id is a UUID derived from the batch id and
the execution's attempt token, so every event of one execution (and a retried emit) carries
the same run id, and a forced re-run of the same batch is a new run. The job is
``clinical_batch.<kind>`` in namespace ``clinflow``; inputs are the stored input objects
(``s3://bucket`` namespace, the key as name); outputs are the PostgreSQL tables the batch
writes (``fhir_resources``, ``quarantine``), with row counts on COMPLETE.

Transport from settings: ``file`` (default; one JSON event per line appended to
``<home>/lineage/openlineage.ndjson``), ``http`` (``clinical_lineage_url``) or ``none``.
Events carry references and counts only, never record content.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    OutputDatasetFacet,
    RunFacet,
    error_message_run,
    output_statistics_output_dataset,
)
from openlineage.client.transport import Transport
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpConfig, HttpTransport
from pydantic import BaseModel, Field

from clinflow.settings import Settings

NAMESPACE = "clinflow"
PRODUCER = "https://github.com/clinflow/clinflow/clinical"
_RUN_NS = uuid.UUID("6f2c8f8e-3a55-5a4b-9e1e-5c1b0d7b7c11")

LineageState = Literal["START", "COMPLETE", "FAIL"]


class LineageDataset(BaseModel):
    """A dataset reference: ``namespace`` (``s3://bucket``, ``postgres://host:port``) + name."""

    namespace: str
    name: str
    rows: int | None = Field(None, description="Rows written (outputs on COMPLETE).")


class LineageRun(BaseModel):
    """What an event needs to know about a batch execution (PHI-free)."""

    batch_id: str
    attempt_token: str
    kind: str
    source_system: str
    inputs: list[LineageDataset]
    outputs: list[LineageDataset]


def run_id(batch_id: str, attempt_token: str) -> str:
    """Deterministic OpenLineage run id (UUID) of one execution of a batch."""
    return str(uuid.uuid5(_RUN_NS, f"{batch_id}/{attempt_token}"))


def output_tables(settings: Settings) -> tuple[str, list[str]]:
    """The PostgreSQL namespace and table names a batch writes."""
    namespace = f"postgres://{settings.pg_host}:{settings.pg_port}"
    schema = f"{settings.pg_database}.public"
    return namespace, [f"{schema}.fhir_resources", f"{schema}.quarantine"]


def build_event(
    run: LineageRun, state: LineageState, when: datetime, error: str | None = None
) -> RunEvent:
    """The RunEvent for ``state`` of ``run`` at ``when`` (timezone-aware)."""
    run_facets: dict[str, RunFacet] = {}
    if error is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error[:2000], programmingLanguage="python"
        )
    outputs = []
    for ds in run.outputs:
        facets: dict[str, OutputDatasetFacet] = {}
        if ds.rows is not None:
            facets["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=ds.rows
                )
            )
        outputs.append(OutputDataset(namespace=ds.namespace, name=ds.name, outputFacets=facets))
    return RunEvent(
        eventType=RunState[state],
        eventTime=when.isoformat(),
        producer=PRODUCER,
        run=Run(runId=run_id(run.batch_id, run.attempt_token), facets=run_facets),
        job=Job(namespace=NAMESPACE, name=f"clinical_batch.{run.kind}"),
        inputs=[InputDataset(namespace=ds.namespace, name=ds.name) for ds in run.inputs],
        outputs=outputs,
    )


def build_transport(settings: Settings) -> Transport | None:
    """The configured transport (None for ``none``). Creates the event file's folder."""
    kind = settings.clinical_lineage_transport
    if kind == "none":
        return None
    if kind == "http":
        if not settings.clinical_lineage_url:
            raise ValueError("clinical_lineage_transport=http needs clinical_lineage_url")
        return HttpTransport(HttpConfig(url=settings.clinical_lineage_url))
    path = settings.clinical_lineage_path
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileTransport(FileConfig(log_file_path=str(path), append=True))


class LineageEmitter:
    """Emits batch events through the configured transport (a no-op for ``none``)."""

    def __init__(self, settings: Settings) -> None:
        transport = build_transport(settings)
        self._client = OpenLineageClient(transport=transport) if transport else None

    def emit(
        self, run: LineageRun, state: LineageState, when: datetime, error: str | None = None
    ) -> RunEvent:
        """Build and send one event; returns it. Transport errors propagate (retryable)."""
        event = build_event(run, state, when, error)
        if self._client is not None:
            self._client.emit(event)
        return event
