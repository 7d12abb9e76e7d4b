"""Shared helpers of the site-packet workflow tests: workers on fresh queues, packet inputs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.client import Client, WorkflowHandle

from activities.deps import Deps
from activities.packets_models import (
    REVIEW_ROLE,
    DocumentInput,
    PacketInput,
    PacketStatus,
    PacketStatusName,
    ReviewInput,
)
from clinflow.auth import issue_token
from clinflow.esign import (
    Decision,
    SignatureMeaning,
    generate_private_key,
    register_reviewer_key,
    sign_decision,
)
from clinflow.keyring import Keyring
from clinflow.object_store import ObjectStore
from clinflow.packets.manifest import PacketManifest, manifest_for
from clinflow.settings import Settings
from starters.packets_submit import packet_input, start_packet, upload_documents
from workers.factory import build_worker
from workers.packets_plan import packets_plan
from workflows.packets import SitePacketWorkflow


class FakePortal:
    """A real HTTP endpoint standing in for the IRB portal; its answer is switchable."""

    def __init__(self) -> None:
        self.status = 200
        self.calls = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        return web.json_response({"on_record": self.status == 200}, status=self.status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/irb", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/irb"


@dataclass
class PacketEnv:
    settings: Settings
    client: Client
    store: ObjectStore
    keyring: Keyring
    portal: FakePortal

    @property
    def prefix(self) -> str:
        return self.settings.packets_queue_prefix

    async def make_input(
        self,
        folder: Path,
        *,
        tag: str | None = None,
        target: date | None = None,
        drop: tuple[str, ...] = (),
        external_check: bool = False,
        **overrides: Any,
    ) -> PacketInput:
        """The packet at ``folder`` under a unique site id (so tests never share a workflow)."""
        manifest, base = manifest_for(folder)
        update: dict[str, Any] = {"site_id": f"{manifest.site_id}-{tag or uuid.uuid4().hex[:8]}"}
        if target is not None:
            update["target_activation_date"] = target
        if drop:
            update["files"] = [f for f in manifest.files if f.path not in drop]
        manifest = manifest.model_copy(update=update)
        documents = await upload_documents(self.store, self.settings, manifest, base)
        inp = packet_input(self.settings, manifest, documents, source="test")
        return inp.model_copy(update={"external_check": external_check, **overrides})

    async def upload(
        self, folder: Path, manifest: PacketManifest, names: list[str]
    ) -> list[DocumentInput]:
        subset = manifest.model_copy(
            update={"files": [f for f in manifest.files if f.path in names]}
        )
        return await upload_documents(self.store, self.settings, subset, folder)

    async def start(
        self, inp: PacketInput, queue: str | None = None
    ) -> WorkflowHandle[SitePacketWorkflow, PacketStatus]:
        handle, _ = await start_packet(
            self.client, self.settings, inp, queue=queue or f"{self.prefix}-{inp.manifest.region}"
        )
        return handle

    async def wait_status(
        self,
        handle: WorkflowHandle[Any, Any],
        wanted: set[PacketStatusName],
        within: float = 90.0,
    ) -> PacketStatus:
        """Poll the ``status`` query until the packet is in one of ``wanted``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        last: PacketStatus | None = None
        while loop.time() < deadline:
            try:
                last = await handle.query(SitePacketWorkflow.status)
                if last.status in wanted:
                    return last
            except Exception:
                pass
            await asyncio.sleep(0.3)
        raise AssertionError(f"packet never reached {wanted}; last: {last}")


@asynccontextmanager
async def packet_workers(
    stack: Settings, keyring: Keyring, client: Client, **overrides: Any
) -> AsyncIterator[PacketEnv]:
    """Every packet queue served in-process under a fresh prefix, plus a fake IRB portal."""
    portal = FakePortal()
    await portal.start()
    settings = stack.model_copy(
        update={
            "packets_queue_prefix": f"t{uuid.uuid4().hex[:10]}",
            "packets_regions": "us,eu,uk,apac",
            "packets_external_url": portal.url,
            "packets_breaker_failures": 2,
            "packets_breaker_cooldown_seconds": 1.0,
            "packets_external_rate_per_second": 50.0,
            "packets_review_deadline_seconds": 3600.0,
            "packets_gap_deadline_seconds": 3600.0,
            **overrides,
        }
    )
    deps = await Deps.open(settings, keyring)
    try:
        async with AsyncExitStack() as stack_ctx:
            for queue, plan in packets_plan(settings, deps).items():
                worker = build_worker(client, settings, task_queue=queue, plan=plan)
                await stack_ctx.enter_async_context(worker)
            yield PacketEnv(settings, client, deps.store, keyring, portal)
    finally:
        await deps.close()
        await portal.stop()


@dataclass
class Reviewer:
    """A Regulatory Affairs reviewer with a registered Ed25519 signing key."""

    user: str
    printed_name: str
    key: Ed25519PrivateKey
    keyring: Keyring

    @classmethod
    async def register(
        cls, pool: asyncpg.Pool, keyring: Keyring, user: str, printed_name: str
    ) -> Reviewer:
        key = generate_private_key()
        await register_reviewer_key(pool, user, key.public_key(), registered_by="test")
        return cls(user, printed_name, key, keyring)

    def token(self, role: str = REVIEW_ROLE) -> str:
        return issue_token(self.keyring, self.user, role, timedelta(minutes=10))

    def review(
        self,
        status: PacketStatus,
        decision: str,
        reason: str,
        *,
        role: str = REVIEW_ROLE,
        record_sha256: str | None = None,
        with_update: bool = False,
    ) -> ReviewInput:
        """A decision signed over the packet's record hash (``decision`` set for the update)."""
        approve = decision == "APPROVE"
        signed = sign_decision(
            self.key,
            Decision(
                signer=self.user,
                printed_name=self.printed_name,
                role=REVIEW_ROLE,
                meaning=SignatureMeaning.APPROVAL if approve else SignatureMeaning.REJECTION,
                signed_at=datetime.now(UTC),
                record_ref=status.packet_id,
                record_sha256=record_sha256 or status.record_sha256,
                reason=reason,
            ),
        )
        return ReviewInput(
            reviewer_id=self.user,
            role=role,
            reason=reason,
            token=self.token(role),
            decision=("APPROVE" if approve else "REJECT") if with_update else None,
            signed=signed,
        )
