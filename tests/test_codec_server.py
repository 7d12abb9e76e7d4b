"""The codec server: Temporal's remote codec protocol, RBAC, CORS, audit of every decode."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from google.protobuf import json_format
from pydantic import BaseModel
from temporalio.api.common.v1 import Payloads

from clinflow.auth import issue_token
from clinflow.keyring import Keyring
from clinflow.settings import Settings
from workers.codec import build_data_converter
from workers.codec_server import SESSION_COOKIE, build_codec_app

pytestmark = pytest.mark.stack

ORIGIN = "http://127.0.0.1:18233"


class Sample(BaseModel):
    document_ref: str
    marker: str


@pytest.fixture(scope="module")
async def server(
    stack: Settings, keyring: Keyring, app_pool: asyncpg.Pool
) -> AsyncIterator[tuple[str, Settings]]:
    from clinflow.audit_chain import AuditChain

    settings = stack.model_copy(update={"codec_cors_origins": ORIGIN})
    app = build_codec_app(settings, keyring, audit=AuditChain(app_pool, keyring).append)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", settings
    finally:
        await runner.cleanup()


async def _encoded(keyring: Keyring, marker: str) -> dict[str, Any]:
    converter = build_data_converter(keyring)
    payloads = await converter.encode([Sample(document_ref="doc-1", marker=marker)])
    body: dict[str, Any] = json_format.MessageToDict(Payloads(payloads=payloads))
    return body


def _token(keyring: Keyring, role: str, user: str = "ops.one", ttl: float = 3600) -> str:
    return issue_token(keyring, user, role, timedelta(seconds=ttl))


def _headers(token: str | None = None, **extra: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Namespace": "clinflow", "Origin": ORIGIN}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(extra)
    return headers


@pytest.mark.parametrize("role", ["devops", "qa", "regulatory_affairs"])
async def test_authorised_roles_decode_what_the_project_codec_encoded(
    server: tuple[str, Settings], keyring: Keyring, app_pool: asyncpg.Pool, role: str
) -> None:
    url, _ = server
    marker = f"m-{uuid.uuid4().hex}"
    body = await _encoded(keyring, marker)
    assert marker not in json.dumps(body), "what Temporal stores is ciphertext"
    user = f"user-{uuid.uuid4().hex[:6]}"
    since = datetime.now(UTC)
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{url}/decode", data=json.dumps(body), headers=_headers(_token(keyring, role, user))
        )
        assert resp.status == 200, await resp.text()
        assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        decoded = json_format.Parse(await resp.text(), Payloads())
    converter = build_data_converter(keyring).payload_converter
    value = converter.from_payloads(list(decoded.payloads), [Sample])
    assert value == [Sample(document_ref="doc-1", marker=marker)]

    async with app_pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT actor, details FROM audit_log WHERE action = 'codec.decode' "
            "AND actor = $1 AND occurred_at >= $2",
            user,
            since,
        )
    assert len(rows) == 1
    details = json.loads(rows[0]["details"])
    assert details["payloads"] == 1 and details["role"] == role
    assert marker not in rows[0]["details"], "the audit records no payload contents"


async def test_encode_then_decode_under_any_path_prefix(
    server: tuple[str, Settings], keyring: Keyring
) -> None:
    url, _ = server
    token = _token(keyring, "devops")
    plain = {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "eyJhIjoxfQ=="}]}
    async with aiohttp.ClientSession() as http:
        enc = await http.post(
            f"{url}/ns/clinflow/encode", data=json.dumps(plain), headers=_headers(token)
        )
        assert enc.status == 200, await enc.text()
        sealed = await enc.json()
        assert sealed["payloads"][0]["data"] != plain["payloads"][0]["data"]
        dec = await http.post(
            f"{url}/ns/clinflow/decode?preserveStorageRefs=true",
            data=json.dumps(sealed),
            headers=_headers(token),
        )
        assert dec.status == 200
        assert (await dec.json()) == plain


@pytest.mark.parametrize(
    "case,status,code",
    [
        ("missing", 401, "TOKEN_MISSING"),
        ("expired", 401, "TOKEN_EXPIRED"),
        ("forged", 401, "TOKEN_INVALID"),
        ("wrong_role", 403, "ROLE_FORBIDDEN"),
        ("wrong_namespace", 403, "NAMESPACE_FORBIDDEN"),
    ],
)
async def test_refusals(
    server: tuple[str, Settings], keyring: Keyring, case: str, status: int, code: str
) -> None:
    url, _ = server
    marker = f"m-{uuid.uuid4().hex}"
    body = await _encoded(keyring, marker)
    token: str | None = {
        "missing": None,
        "expired": issue_token(
            keyring,
            "ops.one",
            "devops",
            timedelta(minutes=1),
            now=datetime.now(UTC) - timedelta(hours=1),
        ),
        "forged": _token(Keyring.generate(), "devops"),
        "wrong_role": _token(keyring, "clinical_ops"),
        "wrong_namespace": _token(keyring, "devops"),
    }[case]
    headers = _headers(token)
    if case == "wrong_namespace":
        headers["X-Namespace"] = "another-namespace"
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{url}/decode", data=json.dumps(body), headers=headers)
        text = await resp.text()
    assert resp.status == status
    assert json.loads(text)["code"] == code
    assert marker not in text
    assert resp.headers.get("Access-Control-Allow-Origin") == ORIGIN, "the UI can read the error"


async def test_refused_attempt_with_a_token_is_audited(
    server: tuple[str, Settings], keyring: Keyring, app_pool: asyncpg.Pool
) -> None:
    url, _ = server
    user = f"ops-{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{url}/decode",
            data=json.dumps(await _encoded(keyring, "x")),
            headers=_headers(_token(keyring, "clinical_ops", user)),
        )
    assert resp.status == 403
    async with app_pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT details FROM audit_log WHERE action = 'codec.decode.refused' AND actor = $1",
            user,
        )
    assert row is not None
    assert json.loads(row["details"])["code"] == "ROLE_FORBIDDEN"


async def test_preflight_allows_the_ui_origin_only(server: tuple[str, Settings]) -> None:
    url, _ = server
    request_headers = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization,x-namespace",
    }
    async with aiohttp.ClientSession() as http:
        ok = await http.options(f"{url}/decode", headers=request_headers)
        assert ok.status == 204
        assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert ok.headers["Access-Control-Allow-Credentials"] == "true"
        allowed = {h.strip().lower() for h in ok.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"content-type", "authorization", "x-namespace"} <= allowed
        assert "POST" in ok.headers["Access-Control-Allow-Methods"]
        evil = await http.options(
            f"{url}/decode", headers={**request_headers, "Origin": "http://evil.example"}
        )
        assert evil.status == 403
        assert "Access-Control-Allow-Origin" not in evil.headers


async def test_non_json_content_type_is_refused(
    server: tuple[str, Settings], keyring: Keyring
) -> None:
    url, _ = server
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{url}/decode",
            data=json.dumps(await _encoded(keyring, "x")),
            headers=_headers(_token(keyring, "devops"), **{"Content-Type": "text/plain"}),
        )
    assert resp.status == 415


async def test_payload_of_another_keyring_is_not_opened(
    server: tuple[str, Settings], keyring: Keyring
) -> None:
    url, _ = server
    marker = f"m-{uuid.uuid4().hex}"
    foreign = await _encoded(Keyring.generate(), marker)
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{url}/decode", data=json.dumps(foreign), headers=_headers(_token(keyring, "qa"))
        )
        text = await resp.text()
    assert resp.status == 422
    assert json.loads(text)["code"] == "payload_unknown_key"
    assert marker not in text


async def test_browser_session_cookie(server: tuple[str, Settings], keyring: Keyring) -> None:
    url, _ = server
    body = json.dumps(await _encoded(keyring, "cookie"))
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        login = await http.post(
            f"{url}/session", headers={"Authorization": f"Bearer {_token(keyring, 'qa')}"}
        )
        assert login.status == 200, await login.text()
        cookie = login.cookies[SESSION_COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert 0 < int(cookie["max-age"]) <= 3600
        resp = await http.post(f"{url}/decode", data=body, headers=_headers())
        assert resp.status == 200, await resp.text()
        await http.post(f"{url}/logout")
        after = await http.post(f"{url}/decode", data=body, headers=_headers())
        assert after.status == 401
    async with aiohttp.ClientSession() as http:
        refused = await http.post(
            f"{url}/session", headers={"Authorization": f"Bearer {_token(keyring, 'clinical_ops')}"}
        )
        assert refused.status == 403
        assert SESSION_COOKIE not in refused.cookies
        cross = await http.post(
            f"{url}/session",
            headers={"Authorization": f"Bearer {_token(keyring, 'qa')}", "Origin": "http://x.y"},
        )
        assert cross.status == 403


async def test_stack_points_the_temporal_ui_at_the_codec_server(stack: Settings) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{stack.temporal_ui_port}/api/v1/settings") as resp,
    ):
        ui = await resp.json()
    assert ui["Codec"]["Endpoint"] == stack.codec_endpoint
