"""Per-source watermarks: the high-water mark of ``meta.lastUpdated`` of committed batches.

The watermark only moves forward and only after a batch succeeded (the workflow calls
``commit_watermark`` at the end, with the maximum of the partitions' ``max_last_updated``).
Committing the same or an older value is a no-op that leaves the row untouched, so a retried
commit is idempotent. ``load_chunk(watermark=...)`` uses the value read at batch start to
discard records older than what the source already delivered.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

_COMMIT = """
INSERT INTO source_watermarks (source_system, high_water, batch_id)
VALUES ($1, $2, $3)
ON CONFLICT (source_system) DO UPDATE SET
    high_water = excluded.high_water,
    batch_id = excluded.batch_id,
    updated_at = now()
WHERE excluded.high_water > source_watermarks.high_water
RETURNING high_water
"""


async def get_watermark(conn: asyncpg.Connection, source_system: str) -> datetime | None:
    """The committed high-water mark of ``source_system`` (None when it never loaded)."""
    value = await conn.fetchval(
        "SELECT high_water FROM source_watermarks WHERE source_system = $1", source_system
    )
    return value if isinstance(value, datetime) else None


async def commit_watermark(
    conn: asyncpg.Connection, source_system: str, high_water: datetime, batch_id: str
) -> bool:
    """Advance the watermark to ``high_water`` if newer; True when it moved."""
    moved = await conn.fetchval(_COMMIT, source_system, high_water, batch_id)
    return moved is not None
