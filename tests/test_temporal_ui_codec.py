"""The Temporal UI in headless chromium: decoded payloads through the codec server only when
authorised, ciphertext otherwise.

The browser is driven over the DevTools protocol (aiohttp's websocket client). The UI of the
dev server is pointed at the codec server with its browser-local codec settings (endpoint +
"include cross-origin credentials"); the authorised browser context signs in at the codec
server's ``/session`` (an HttpOnly cookie), the other one does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from google.protobuf import json_format
from temporalio.client import Client

from activities.packets_models import PacketStatusName
from clinflow.audit_chain import AuditChain
from clinflow.auth import issue_token
from clinflow.keyring import Keyring
from clinflow.packets.sample_data import generate_demo_packets
from clinflow.settings import Settings
from tests.test_packets_support import packet_workers
from workers.codec_server import build_codec_app

pytestmark = pytest.mark.stack

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SETTLED = {
    PacketStatusName.VALIDATED,
    PacketStatusName.VALIDATED_WITH_WARNINGS,
    PacketStatusName.BLOCKED,
    PacketStatusName.AWAITING_DOCUMENTS,
    PacketStatusName.DEAD_LETTERED,
}
MARKER = "ui-visible-" + uuid.uuid4().hex[:12]
ENCRYPTED_B64 = "YmluYXJ5L2VuY3J5cHRlZA"  # base64 of "binary/encrypted"
PAGE_TIMEOUT = 60.0


class DevTools:
    """A minimal Chrome DevTools protocol client over one browser websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._next = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            fut = self._pending.pop(data.get("id", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(data)

    async def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next] = fut
        await self.ws.send_str(json.dumps(message))
        reply = await asyncio.wait_for(fut, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.ws.close()


class Tab:
    """One page in its own browser context (own cookies and local storage)."""

    def __init__(self, devtools: DevTools, session: str) -> None:
        self.devtools = devtools
        self.session = session

    @classmethod
    async def open(cls, devtools: DevTools) -> Tab:
        context = await devtools.call("Target.createBrowserContext")
        target = await devtools.call(
            "Target.createTarget",
            {"url": "about:blank", "browserContextId": context["browserContextId"]},
        )
        attached = await devtools.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        return cls(devtools, attached["sessionId"])

    async def evaluate(self, expression: str) -> Any:
        result = await self.devtools.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            self.session,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def goto(self, url: str) -> None:
        """Navigate and wait for the new document (the UI may redirect within its origin)."""
        origin = "/".join(url.split("/")[:3])
        nav = await self.devtools.call("Page.navigate", {"url": url}, self.session)
        if nav.get("errorText"):
            raise AssertionError(f"cannot open {url}: {nav['errorText']}")
        deadline = time.monotonic() + PAGE_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                state = await self.evaluate("[location.origin, document.readyState]")
                if state == [origin, "complete"]:
                    return
            await asyncio.sleep(0.2)
        raise AssertionError(f"page {url} did not load")

    async def text(self) -> str:
        return str(await self.evaluate("document.body ? document.body.innerText : ''"))

    async def wait_for_any(self, *needles: str) -> str:
        deadline = time.monotonic() + PAGE_TIMEOUT
        text = ""
        while time.monotonic() < deadline:
            text = await self.text()
            if any(n in text for n in needles):
                return text
            await asyncio.sleep(0.5)
        raise AssertionError(f"none of {needles} appeared; page text ends with: {text[-1500:]}")


def _launch(binary: str, profile: Path) -> subprocess.Popen[bytes]:
    """Headless chromium with a DevTools port chosen by itself (see DevToolsActivePort)."""
    return subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
async def browser() -> AsyncIterator[DevTools]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    profile = Path(tempfile.mkdtemp(prefix="clinflow-chromium-"))
    proc = _launch(CHROMIUM, profile)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("chromium did not open its DevTools port")
            await asyncio.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0)
        devtools = DevTools(ws)
        try:
            yield devtools
        finally:
            await devtools.close()
            await session.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
async def codec_url(
    stack: Settings, keyring: Keyring, app_pool: asyncpg.Pool
) -> AsyncIterator[str]:
    app = build_codec_app(stack, keyring, audit=AuditChain(app_pool, keyring).append)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def packet_workflow_path(
    stack: Settings, keyring: Keyring, temporal_client: Client, tmp_path: Path
) -> str:
    """A site packet's workflow, run until it settles; MARKER is its manifest's site number.

    The marker sits near the start of the (encrypted) input, so the UI shows it on the
    first screen once decoded; it is in no id, memo or search attribute.
    """
    (demo,) = generate_demo_packets(tmp_path / "packets", only=["us-101-complete"])
    async with packet_workers(stack, keyring, temporal_client) as env:
        inp = await env.make_input(Path(demo.path))
        inp = inp.model_copy(
            update={"manifest": inp.manifest.model_copy(update={"site_number": MARKER})}
        )
        handle = await env.start(inp)
        await env.wait_status(handle, SETTLED)
    return f"{inp.packet_id}/{handle.first_execution_run_id}"


@pytest.fixture
async def ciphertexts(temporal_client: Client, packet_workflow_path: str) -> list[str]:
    """Beginnings of the sealed payloads as Temporal stores them (what an unauthorised UI shows)."""
    wf_id = packet_workflow_path.split("/")[0]
    history = await temporal_client.get_workflow_handle(wf_id).fetch_history()
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            meta = node.get("metadata")
            if isinstance(meta, dict) and meta.get("encoding") == ENCRYPTED_B64 + "==":
                found.append(str(node.get("data", ""))[:16])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for event in history.events:
        walk(json_format.MessageToDict(event))
    assert found, "the raw history holds sealed payloads"
    return found


async def _point_ui_at_codec(tab: Tab, ui: str, codec_url: str) -> None:
    """The UI's browser-local codec settings (what its codec settings dialog stores)."""
    await tab.goto(f"{ui}/")
    settings = {
        "endpoint": codec_url,
        "includeCredentials": True,
        "passAccessToken": False,
        "overrideRemoteCodecConfiguration": True,
    }
    for key, value in settings.items():
        await tab.evaluate(
            f"localStorage.setItem({json.dumps(key)}, {json.dumps(json.dumps(value))})"
        )


async def _sign_in(tab: Tab, codec_url: str, token: str) -> int:
    """Open the codec server's sign-in page and exchange ``token`` for its session cookie."""
    await tab.goto(f"{codec_url}/login")
    headers = json.dumps({"Authorization": f"Bearer {token}"})
    status = await tab.evaluate(
        f"fetch('/session', {{method: 'POST', headers: {headers}}}).then(r => r.status)"
    )
    return int(status)


async def test_ui_shows_decoded_payloads_only_when_authorised(
    stack: Settings,
    keyring: Keyring,
    browser: DevTools,
    codec_url: str,
    packet_workflow_path: str,
    ciphertexts: list[str],
    app_pool: asyncpg.Pool,
) -> None:
    ui = f"http://127.0.0.1:{stack.temporal_ui_port}"
    history = f"{ui}/namespaces/{stack.temporal_namespace}/workflows/{packet_workflow_path}/history"

    # Authorised: a DevOps user signs in at the codec server, then opens the history.
    allowed = await Tab.open(browser)
    token = issue_token(keyring, "ops.ui", "devops", timedelta(minutes=15))
    assert await _sign_in(allowed, codec_url, token) == 200
    await _point_ui_at_codec(allowed, ui, codec_url)
    await allowed.goto(history)
    text = await allowed.wait_for_any(MARKER)
    assert MARKER in text

    async with app_pool.acquire() as conn:
        decodes = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'codec.decode' AND actor = 'ops.ui'"
        )
    assert decodes >= 1, "the UI's decode requests were audited"

    # Not signed in: same UI, same codec server, no credentials -> ciphertext only.
    anonymous = await Tab.open(browser)
    await _point_ui_at_codec(anonymous, ui, codec_url)
    await anonymous.goto(history)
    text = await anonymous.wait_for_any(ENCRYPTED_B64, "binary/encrypted", *ciphertexts)
    assert MARKER not in text

    # Signed in with a role that may not decode -> ciphertext too.
    clinical = await Tab.open(browser)
    ops_token = issue_token(keyring, "co.ui", "clinical_ops", timedelta(minutes=15))
    assert await _sign_in(clinical, codec_url, ops_token) == 403
    await _point_ui_at_codec(clinical, ui, codec_url)
    await clinical.goto(history)
    text = await clinical.wait_for_any(ENCRYPTED_B64, "binary/encrypted", *ciphertexts)
    assert MARKER not in text
