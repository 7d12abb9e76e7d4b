"""The codec server: Temporal's remote codec protocol for the Temporal UI, behind RBAC.

``POST .../encode`` and ``POST .../decode`` take and return ``{"payloads": [...]}``
(the ``Payloads`` protobuf in its JSON form); only the last path segment selects
the operation, so the server can be mounted under any prefix. Requests must carry
a valid token of an allowed role (``codec_server_allowed_roles``; DevOps, QA and
Regulatory Affairs by default), as ``Authorization: Bearer <token>`` or as the
session cookie set by ``POST /session`` (what a browser uses: the Temporal UI's
"include cross-origin credentials" codec option sends it). Otherwise: 401
(missing, expired, invalid token) or 403 (wrong role, wrong namespace), and the
UI shows ciphertext. Every decode is audited (who, role, how many payloads,
namespace; never payload contents); refused attempts with a token are audited too.
If the audit write fails, the decode fails (503): no unaudited access.

CORS: the configured UI origins (``codec_cors_origins``, default the local
Temporal UI) get ``Access-Control-Allow-Origin`` with credentials, including on
preflight ``OPTIONS`` and on 401/403 answers.

Run with ``clinflow codec-server`` or ``python -m workers.codec_server``; the local
stack starts it after Temporal and points the UI at it (``--ui-codec-endpoint``).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

import asyncpg
from aiohttp import hdrs, web
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payloads

from clinflow.audit_chain import AuditChain, AuditEntry
from clinflow.auth import (
    AuthError,
    AuthErrorCode,
    Principal,
    TokenVerifier,
    verifier_from_settings,
    verify_token,
)
from clinflow.auth import bearer_token as parse_bearer
from clinflow.keyring import Keyring
from clinflow.log_config import configure_logging, get_logger
from clinflow.settings import Settings, get_settings
from workers.codec import EncryptionCodec, PayloadDecryptionError

SESSION_COOKIE: Final = "clinflow_codec_token"
ALLOW_HEADERS: Final = "Content-Type, Authorization, Authorization-Extras, X-Namespace"
MAX_BODY: Final = 8 * 1024 * 1024
LOCATION: Final = "codec-server"

AuditSink = Callable[[AuditEntry], Awaitable[object]]

log = get_logger(__name__)

_STATE: Final = web.AppKey("codec_state", dict)


class CodecServer:
    """The request handlers, bound to one settings/keyring/verifier/audit sink."""

    def __init__(
        self,
        settings: Settings,
        keyring: Keyring,
        *,
        audit: AuditSink | None,
        verifier: TokenVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.keyring = keyring
        self.payload_codec = EncryptionCodec(keyring)
        self.verifier = verifier or verifier_from_settings(keyring, settings)
        self.audit = audit
        self.allowed_roles = settings.codec_allowed_role_list
        self.origins = frozenset(settings.codec_cors_origin_list)
        self.namespace = settings.temporal_namespace

    # ------------------------------------------------------------------ helpers
    def _cors(self, request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and origin in self.origins:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
            response.headers[hdrs.VARY] = "Origin"
        return response

    def _error(self, request: web.Request, status: int, code: str, message: str) -> web.Response:
        response = web.json_response({"code": code, "message": message}, status=status)
        if status == 401:
            response.headers[hdrs.WWW_AUTHENTICATE] = 'Bearer realm="clinflow-codec"'
        self._cors(request, response)
        return response

    def _token(self, request: web.Request) -> str:
        header = request.headers.get(hdrs.AUTHORIZATION)
        if header:
            return parse_bearer(header)
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return cookie
        raise AuthError(
            AuthErrorCode.TOKEN_MISSING,
            "no token: send 'Authorization: Bearer <token>' or sign in at /login",
        )

    def _principal(self, request: web.Request) -> Principal:
        return verify_token(
            self.keyring,
            self._token(request),
            required_role=self.allowed_roles,
            verifier=self.verifier,
        )

    async def _audit(self, entry: AuditEntry) -> None:
        if self.audit is not None:
            await self.audit(entry)

    # ------------------------------------------------------------------ handlers
    async def preflight(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None or origin not in self.origins:
            return web.Response(status=403, text="origin not allowed")
        response = web.Response(status=204)
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "POST, OPTIONS"
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = ALLOW_HEADERS
        response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = "600"
        return self._cors(request, response)

    async def codec(self, request: web.Request) -> web.StreamResponse:
        operation = request.path.rstrip("/").rsplit("/", 1)[-1]
        if operation not in ("encode", "decode"):
            return self._error(request, 404, "not_found", "use .../encode or .../decode")
        namespace = request.headers.get("X-Namespace")
        try:
            principal = self._principal(request)
        except AuthError as exc:
            if exc.code is not AuthErrorCode.TOKEN_MISSING:
                await self._refused(request, operation, namespace, exc)
            return self._error(request, exc.http_status, str(exc.code), exc.message)
        if namespace and namespace != self.namespace:
            return self._error(
                request,
                403,
                "NAMESPACE_FORBIDDEN",
                f"this codec server serves namespace {self.namespace!r}, not {namespace!r}",
            )
        if request.content_type != "application/json":
            return self._error(
                request, 415, "unsupported_media_type", "send Content-Type: application/json"
            )
        try:
            payloads = json_format.Parse(await request.read(), Payloads())
        except (json_format.ParseError, DecodeError, UnicodeDecodeError) as exc:
            return self._error(request, 400, "bad_request", f"not a Payloads JSON body: {exc}")
        count = len(payloads.payloads)
        if operation == "decode":
            try:
                await self._audit(
                    AuditEntry(
                        actor=principal.user,
                        action="codec.decode",
                        location=LOCATION,
                        reason="payloads decoded for display",
                        details={
                            "role": principal.role,
                            "payloads": count,
                            "namespace": namespace or self.namespace,
                            "token_id": principal.token_id,
                        },
                    )
                )
            except (OSError, asyncpg.PostgresError) as exc:
                log.error("codec decode refused: audit unavailable", error=type(exc).__name__)
                return self._error(
                    request, 503, "audit_unavailable", "decode refused: cannot audit it now"
                )
            try:
                out = await self.payload_codec.decode(payloads.payloads)
            except PayloadDecryptionError as exc:
                return self._error(request, 422, exc.code, exc.reason)
        else:
            out = await self.payload_codec.encode(payloads.payloads)
        log.info(
            "codec request served",
            operation=operation,
            role=principal.role,
            payloads=count,
        )
        response = web.Response(
            text=json_format.MessageToJson(Payloads(payloads=out)),
            content_type="application/json",
        )
        return self._cors(request, response)

    async def _refused(
        self, request: web.Request, operation: str, namespace: str | None, exc: AuthError
    ) -> None:
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            await self._audit(
                AuditEntry(
                    actor=exc.user or "anonymous",
                    action=f"codec.{operation}.refused",
                    location=LOCATION,
                    reason=exc.message,
                    details={
                        "code": str(exc.code),
                        "role": exc.role,
                        "namespace": namespace or self.namespace,
                        "remote": request.remote,
                    },
                )
            )

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "namespace": self.namespace})

    async def login_page(self, request: web.Request) -> web.Response:
        ui = f"http://127.0.0.1:{self.settings.temporal_ui_port}/"
        body = f"""<!doctype html><html><head><meta charset="utf-8">
<title>clinflow codec server: sign in</title></head><body>
<h1>Sign in to decode Temporal payloads</h1>
<p>Paste a token from <code>clinflow auth issue --user U --role devops --ttl 8h</code>.
Then, in the Temporal UI's codec server settings, use this server's address and tick
"include cross-origin credentials".</p>
<form method="post" action="session">
<textarea name="token" rows="4" cols="80" required></textarea><br>
<button type="submit">Sign in</button></form>
<p><a href="{html.escape(ui)}">Temporal UI</a></p></body></html>"""
        return web.Response(text=body, content_type="text/html")

    def _same_origin(self, request: web.Request) -> bool:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None or origin == "null":
            return True
        own = f"{request.scheme}://{request.host}"
        return origin == own or origin in self.origins

    async def session(self, request: web.Request) -> web.StreamResponse:
        """Exchange a token for an HttpOnly session cookie (Bearer header or form field)."""
        if not self._same_origin(request):
            return self._error(request, 403, "ORIGIN_FORBIDDEN", "sign in from this server")
        try:
            if request.headers.get(hdrs.AUTHORIZATION):
                token = parse_bearer(request.headers[hdrs.AUTHORIZATION])
            else:
                form = await request.post()
                raw = form.get("token")
                token = raw.strip() if isinstance(raw, str) else ""
            principal = verify_token(
                self.keyring, token, required_role=self.allowed_roles, verifier=self.verifier
            )
        except AuthError as exc:
            if exc.code is not AuthErrorCode.TOKEN_MISSING:
                await self._refused(request, "session", None, exc)
            return self._error(request, exc.http_status, str(exc.code), exc.message)
        remaining = int((principal.expires_at - datetime.now(UTC)).total_seconds())
        await self._audit(
            AuditEntry(
                actor=principal.user,
                action="codec.session.opened",
                location=LOCATION,
                reason="signed in to the codec server",
                details={"role": principal.role, "expires_at": principal.expires_at.isoformat()},
            )
        )
        payload = {
            "user": principal.user,
            "role": principal.role,
            "expires_at": principal.expires_at.isoformat(),
        }
        if "json" in request.headers.get(hdrs.ACCEPT, "") or request.headers.get(
            hdrs.AUTHORIZATION
        ):
            response: web.Response = web.json_response(payload)
        else:
            response = web.Response(
                text=f"<p>Signed in as {html.escape(principal.user)} ({principal.role}) until "
                f"{html.escape(payload['expires_at'])}.</p>",
                content_type="text/html",
            )
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=max(remaining, 0),
            httponly=True,
            samesite="Strict",
            secure=request.secure,
            path="/",
        )
        self._cors(request, response)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        response = web.json_response({"status": "signed out"})
        response.del_cookie(SESSION_COOKIE, path="/")
        return self._cors(request, response)


def build_codec_app(
    settings: Settings,
    keyring: Keyring,
    *,
    audit: AuditSink | None = None,
    verifier: TokenVerifier | None = None,
    open_audit_pool: bool = False,
) -> web.Application:
    """The aiohttp application. ``audit`` receives one AuditEntry per decode.

    With ``open_audit_pool`` the app opens its own PostgreSQL pool (app role) on
    start-up and audits to the main chain; without either, nothing is audited
    (tests of the protocol only).
    """
    app = web.Application(client_max_size=MAX_BODY)
    server = CodecServer(settings, keyring, audit=audit, verifier=verifier)
    app[_STATE] = {"server": server}

    if open_audit_pool and audit is None:

        async def audit_pool(app: web.Application) -> AsyncIterator[None]:
            from clinflow.db import create_pool

            pool = await create_pool(settings)
            server.audit = AuditChain(pool, keyring).append
            try:
                yield
            finally:
                await pool.close()

        app.cleanup_ctx.append(audit_pool)

    app.add_routes(
        [
            web.get("/health", server.health),
            web.get("/login", server.login_page),
            web.post("/session", server.session),
            web.options("/session", server.preflight),
            web.post("/logout", server.logout),
            web.options("/logout", server.preflight),
            web.options("/{tail:.*}", server.preflight),
            web.post("/{tail:.*}", server.codec),
        ]
    )
    return app


async def serve(
    settings: Settings | None = None, *, host: str | None = None, port: int | None = None
) -> None:
    """Serve until SIGTERM/SIGINT; audits to the main chain through the app role."""
    settings = settings or get_settings()
    configure_logging(settings)
    keyring = Keyring.load(settings)
    app = build_codec_app(settings, keyring, open_audit_pool=True)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    bind_host = host or settings.codec_server_host
    bind_port = port or settings.codec_server_port
    site = web.TCPSite(runner, bind_host, bind_port)
    await site.start()
    log.info(
        "codec server listening",
        listen=f"http://{bind_host}:{bind_port}",
        roles=list(settings.codec_allowed_role_list),
        origins=list(settings.codec_cors_origin_list),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
