"""The packet dead-letter queue for operators: list entries, replay one as a new run.

Listing reads the ``dlq`` table (read-only). A replay never edits state behind the workflows'
backs: it starts a new SitePacketWorkflow run (id ``<packet id>-replay-<dlq id prefix>``) with
the original packet input and ``replay_of`` set; that run marks the entry replayed and audits
it in its first activity. Starting the same replay twice returns the same run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHandle

from activities.packets_models import PacketInput, PacketStatus
from clinflow.settings import Settings
from starters.packets_submit import start_packet, submitter
from workflows.packets import SitePacketWorkflow


class DlqError(Exception):
    """The DLQ entry does not exist, was already replayed, or its packet input is gone."""


@dataclass(frozen=True)
class DlqEntry:
    dlq_id: str
    packet_id: str
    document_key: str | None
    category: str
    code: str
    reason: str
    attempts: list[dict[str, Any]]
    s3: str | None
    created_at: datetime
    replayed_at: datetime | None
    replayed_by: str | None


def _entry(row: asyncpg.Record) -> DlqEntry:
    return DlqEntry(
        dlq_id=row["dlq_id"],
        packet_id=row["packet_id"],
        document_key=row["document_key"],
        category=row["category"],
        code=row["code"],
        reason=row["reason"],
        attempts=json.loads(row["attempts"]),
        s3=f"s3://{row['s3_bucket']}/{row['s3_key']}" if row["s3_key"] else None,
        created_at=row["created_at"],
        replayed_at=row["replayed_at"],
        replayed_by=row["replayed_by"],
    )


_SELECT = (
    "SELECT dlq_id::text AS dlq_id, packet_id, document_key, category, code, reason, attempts, "
    "s3_bucket, s3_key, created_at, replayed_at, replayed_by FROM dlq"
)


async def list_dlq(pool: asyncpg.Pool, *, include_replayed: bool = False) -> list[DlqEntry]:
    """DLQ entries, newest first (open ones only unless ``include_replayed``)."""
    where = "" if include_replayed else " WHERE replayed_at IS NULL"
    async with pool.acquire() as conn:
        rows = await conn.fetch(f"{_SELECT}{where} ORDER BY created_at DESC")
    return [_entry(r) for r in rows]


async def get_dlq(pool: asyncpg.Pool, dlq_id: str) -> DlqEntry:
    """One entry by id or unique id prefix; raises DlqError."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(f"{_SELECT} WHERE dlq_id::text LIKE $1", f"{dlq_id}%")
    if len(rows) != 1:
        raise DlqError(f"{'no' if not rows else 'more than one'} DLQ entry matches {dlq_id!r}")
    return _entry(rows[0])


async def original_input(client: Client, workflow_id: str) -> PacketInput:
    """The input the packet's first run was started with (decoded from its history)."""
    handle = client.get_workflow_handle(workflow_id)
    async for event in handle.fetch_history_events():
        attrs = event.workflow_execution_started_event_attributes
        if attrs.HasField("input"):
            (value,) = await client.data_converter.decode(attrs.input.payloads, [PacketInput])
            if not isinstance(value, PacketInput):
                raise DlqError(f"{workflow_id}: its input is not a packet input")
            return value
        break
    raise DlqError(f"{workflow_id}: no start event with an input")


async def replay_dlq(
    client: Client,
    settings: Settings,
    pool: asyncpg.Pool,
    dlq_id: str,
    *,
    replayed_by: str | None = None,
) -> tuple[WorkflowHandle[SitePacketWorkflow, PacketStatus], DlqEntry]:
    """Start a new run of the entry's packet (idempotent per entry); raises DlqError."""
    entry = await get_dlq(pool, dlq_id)
    if entry.replayed_at is not None:
        raise DlqError(f"DLQ entry {entry.dlq_id} was already replayed by {entry.replayed_by}")
    inp = await original_input(client, entry.packet_id)
    replay = inp.model_copy(
        update={
            "replay_of": entry.dlq_id,
            "source": "replay",
            "submitted_by": replayed_by or submitter(),
        }
    )
    handle, _ = await start_packet(
        client,
        settings,
        replay,
        workflow_id=f"{entry.packet_id}-replay-{entry.dlq_id[:8]}",
    )
    return handle, entry


__all__ = ["DlqEntry", "DlqError", "get_dlq", "list_dlq", "original_input", "replay_dlq"]
