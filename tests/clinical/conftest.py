"""Fixtures for the clinical-data tests: corpus folders and a PostgreSQL connection."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from clinflow.settings import Settings
from tests.conftest import corpus_path

FHIR_EXPORTS = ("sample-bulk-10-patients", "cumulus-etl-simple")


def fhir_export(name: str) -> Path:
    """A Synthea/Cumulus export folder of the shared corpus (skips when absent)."""
    return corpus_path("fhir", name)


def hl7_corpus() -> Path:
    return corpus_path("hl7")


@pytest.fixture
async def pg(stack: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the application role to the stack's PostgreSQL (migrations applied)."""
    conn = await asyncpg.connect(stack.app_dsn())
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def unique() -> str:
    """A per-test suffix so tests sharing the session database never see each other's rows."""
    return uuid.uuid4().hex[:12]
