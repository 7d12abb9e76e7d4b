"""Shared fixtures: one real local stack per test session, on free loopback ports."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from clinflow.keyring import Keyring
from clinflow.settings import Settings
from clinflow.stack import LocalStack, throwaway_settings

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def stack_settings(home: Path) -> Settings:
    """Settings for a throw-away stack under ``home`` on free ports."""
    return throwaway_settings(home, s3_part_size=5 * 1024 * 1024)


def reap_orphan_stacks() -> list[Path]:
    """Stop stacks left by test sessions that were killed before their teardown ran."""
    reaped: list[Path] = []
    for home in Path(tempfile.gettempdir()).glob("clinflow-test-*"):
        owner = home / "owner.pid"
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            continue
        if Path(f"/proc/{pid}").exists():
            continue
        LocalStack(Settings(home=home)).down()
        shutil.rmtree(home, ignore_errors=True)
        reaped.append(home)
    return reaped


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    """A running Temporal + SeaweedFS + PostgreSQL stack, stopped after the session."""
    reap_orphan_stacks()
    home = Path(tempfile.mkdtemp(prefix="clinflow-test-"))
    os.chmod(home, 0o755)
    (home / "owner.pid").write_text(str(os.getpid()))
    settings = stack_settings(home)
    local = LocalStack(settings)
    saved = {k: v for k, v in os.environ.items() if k.startswith("CLINFLOW_")}
    try:
        local.up()
        os.environ.update(settings.to_env())
        yield settings
    finally:
        local.down()
        for key in [k for k in os.environ if k.startswith("CLINFLOW_")]:
            del os.environ[key]
        os.environ.update(saved)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def keyring(stack: Settings) -> Keyring:
    return Keyring.load(stack)


@pytest.fixture(scope="session")
async def app_pool(stack: Settings) -> AsyncIterator[object]:
    from clinflow.db import create_pool

    pool = await create_pool(stack)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def admin_pool(stack: Settings) -> AsyncIterator[object]:
    from clinflow.db import create_pool

    pool = await create_pool(stack, admin=True)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def temporal_client(stack: Settings, keyring: Keyring) -> object:
    from workers.client import connect_client

    return await connect_client(stack, keyring)


def corpus_path(*parts: str) -> Path:
    """A path in the shared public corpus, skipping the test when it is absent."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"public corpus not found at {path} (expected beside the repository)")
    return path
