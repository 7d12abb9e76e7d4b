"""PostgreSQL access: connection pools and ordered plain-SQL migrations.

Migrations are the files ``clinflow/migrations/NNN_name.sql``, applied in
order, each in its own transaction, recorded in ``schema_migrations`` with a
checksum. Concurrent migrators (several workers starting at once) serialise on
an advisory lock, so each file is applied exactly once. An applied file whose
text later changes is refused: write a new migration instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

from clinflow.settings import Settings

_LOCK_ID = 0x636C696E666C6F77  # "clinflow"


class MigrationError(Exception):
    """A migration failed, or an applied migration's text no longer matches its checksum."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migration files in version order."""
    if directory is None:
        root = resources.files("clinflow") / "migrations"
        files = [(p.name, p.read_text()) for p in root.iterdir() if p.name.endswith(".sql")]
    else:
        files = [(p.name, p.read_text()) for p in directory.glob("*.sql")]
    out = []
    for filename, sql in sorted(files):
        version, _, rest = filename.partition("_")
        if not version.isdigit():
            raise MigrationError(f"migration file {filename!r} must start with a number")
        out.append(Migration(version=version, name=rest.removesuffix(".sql"), sql=sql))
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {versions}")
    return out


async def apply_migrations(dsn: str, directory: Path | None = None) -> list[str]:
    """Apply the pending migrations; returns the versions applied now (idempotent)."""
    migrations = load_migrations(directory)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        try:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version text PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {
                r["version"]: r["checksum"]
                for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
            }
            applied: list[str] = []
            for m in migrations:
                if m.version in done:
                    if done[m.version] != m.checksum:
                        raise MigrationError(
                            f"migration {m.version}_{m.name} was changed after it was applied"
                        )
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(m.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) "
                            "VALUES ($1, $2, $3)",
                            m.version,
                            m.name,
                            m.checksum,
                        )
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"migration {m.version}_{m.name} failed: {exc}") from exc
                applied.append(m.version)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    finally:
        await conn.close()


async def create_pool(settings: Settings, *, admin: bool = False) -> asyncpg.Pool:
    """A connection pool for the application role (or the owner with ``admin=True``)."""
    dsn = settings.admin_dsn() if admin else settings.app_dsn()
    pool = await asyncpg.create_pool(
        dsn, min_size=settings.pg_pool_min, max_size=settings.pg_pool_max
    )
    if pool is None:  # pragma: no cover - asyncpg returns None only when misused
        raise RuntimeError("asyncpg.create_pool returned None")
    return pool
