"""A database outage while packets are in flight never decides a packet.

PostgreSQL is stopped for ~20 s while a handful of packets are being processed (workers
in-process, real servers), then started again. Every packet must still reach the outcome it
reaches without an outage: the activities that failed meanwhile are retried with jittered
backoff for as long as the outage lasts (INFRASTRUCTURE_UNAVAILABLE), never turned into a
failed workflow, a dead letter or a RECOVERABLE_TIMEOUT verdict.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.packets_models import PacketStatusName
from clinflow.keyring import Keyring
from clinflow.packets.sample_data import DemoPacket, generate_demo_packets
from clinflow.settings import Settings
from clinflow.stack import LocalStack
from tests.test_packets_support import PacketEnv, packet_workers
from workflows.packets import SitePacketWorkflow

pytestmark = pytest.mark.stack

EXPECTED = {
    "us-101-complete": PacketStatusName.VALIDATED,
    "us-102-warnings": PacketStatusName.VALIDATED_WITH_WARNINGS,
    "us-103-expired-irb": PacketStatusName.BLOCKED,
    "us-106-truncated": PacketStatusName.DEAD_LETTERED,
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DemoPacket]:
    packets = generate_demo_packets(tmp_path_factory.mktemp("outage"), only=list(EXPECTED))
    return {p.name: p for p in packets}


@pytest.fixture(scope="module")
async def env(
    stack: Settings, keyring: Keyring, temporal_client: Client
) -> AsyncIterator[PacketEnv]:
    async with packet_workers(stack, keyring, temporal_client) as e:
        yield e


async def _settled(handle: object, status: PacketStatusName) -> bool:
    current = await handle.query(SitePacketWorkflow.status)  # type: ignore[attr-defined]
    return bool(current.status is status)


async def test_postgres_outage_mid_packets_changes_no_outcome(
    env: PacketEnv, demo: dict[str, DemoPacket], stack: Settings
) -> None:
    inputs = {name: await env.make_input(Path(p.path)) for name, p in demo.items()}
    local = LocalStack(stack)
    local.stop("postgres")
    try:
        handles = {name: await env.start(inp) for name, inp in inputs.items()}
        await asyncio.sleep(20)  # every packet's first database write fails meanwhile
    finally:
        await asyncio.to_thread(local.up)
    deadline = time.monotonic() + 240
    results = {}
    for name, handle in handles.items():
        expected = EXPECTED[name]
        if expected is PacketStatusName.BLOCKED:
            while not await _settled(handle, expected):
                assert time.monotonic() < deadline, f"{name} never reached {expected}"
                await asyncio.sleep(1)
            results[name] = expected
        else:
            result = await asyncio.wait_for(handle.result(), max(1, deadline - time.monotonic()))
            results[name] = result.status
            assert "RECOVERABLE_TIMEOUT" not in result.counts, (name, result.reasons)
    assert results == EXPECTED
