"""Access tokens: issue, verify, refuse (missing, expired, forged, wrong role), OIDC via JWKS."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from clinflow.auth import (
    DEFAULT_ROLES,
    AuthError,
    AuthErrorCode,
    OidcTokenVerifier,
    authorize_decision,
    bearer_token,
    issue_token,
    parse_ttl,
    verify_token,
)
from clinflow.keyring import PURPOSES, Keyring, KeyringError
from clinflow.settings import Settings

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def ring() -> Keyring:
    return Keyring.generate()


def _b64(obj: dict[str, object]) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_issue_then_verify_round_trips_user_role_and_expiry(ring: Keyring) -> None:
    token = issue_token(ring, "ra.lead", "regulatory_affairs", timedelta(hours=8), now=NOW)
    principal = verify_token(ring, token, now=NOW + timedelta(hours=1))
    assert (principal.user, principal.role) == ("ra.lead", "regulatory_affairs")
    assert principal.expires_at == NOW + timedelta(hours=8)


@pytest.mark.parametrize("token", [None, "", "   "])
def test_missing_token(ring: Keyring, token: str | None) -> None:
    with pytest.raises(AuthError) as caught:
        verify_token(ring, token)
    assert caught.value.code is AuthErrorCode.TOKEN_MISSING
    assert caught.value.http_status == 401


def test_expired_token(ring: Keyring) -> None:
    token = issue_token(ring, "qa.one", "qa", timedelta(minutes=5), now=NOW)
    with pytest.raises(AuthError) as caught:
        verify_token(ring, token, now=NOW + timedelta(minutes=5))
    assert caught.value.code is AuthErrorCode.TOKEN_EXPIRED
    assert caught.value.user == "qa.one"


def test_forged_claims_are_invalid(ring: Keyring) -> None:
    token = issue_token(ring, "ops.one", "devops", timedelta(hours=1), now=NOW)
    header, claims, sig = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    decoded["role"] = "regulatory_affairs"
    forged = f"{header}.{_b64(decoded)}.{sig}"
    with pytest.raises(AuthError) as caught:
        verify_token(ring, forged, now=NOW)
    assert caught.value.code is AuthErrorCode.TOKEN_INVALID


def test_token_of_another_keyring_is_invalid(ring: Keyring) -> None:
    token = issue_token(Keyring.generate(), "ra.lead", "regulatory_affairs", timedelta(hours=1))
    with pytest.raises(AuthError) as caught:
        verify_token(ring, token)
    assert caught.value.code is AuthErrorCode.TOKEN_INVALID


def test_alg_none_is_refused(ring: Keyring) -> None:
    kid, _ = ring.active("auth")
    exp = int((NOW + timedelta(hours=1)).timestamp())
    claims = {"iss": "clinflow-local", "aud": "clinflow", "sub": "x", "role": "qa", "exp": exp}
    token = f"{_b64({'alg': 'none', 'kid': kid})}.{_b64(claims)}.c2ln"
    with pytest.raises(AuthError) as caught:
        verify_token(ring, token, now=NOW)
    assert caught.value.code is AuthErrorCode.TOKEN_INVALID


@pytest.mark.parametrize("garbage", ["abc", "a.b", "a.b.c", "....", "x.y.z.w"])
def test_malformed_tokens_are_invalid(ring: Keyring, garbage: str) -> None:
    with pytest.raises(AuthError) as caught:
        verify_token(ring, garbage)
    assert caught.value.code is AuthErrorCode.TOKEN_INVALID


def test_forged_and_expired_reports_forged(ring: Keyring) -> None:
    token = issue_token(Keyring.generate(), "ra.lead", "regulatory_affairs", timedelta(minutes=1))
    with pytest.raises(AuthError) as caught:
        verify_token(ring, token, now=datetime.now(UTC) + timedelta(days=1))
    assert caught.value.code is AuthErrorCode.TOKEN_INVALID


@pytest.mark.parametrize("role", [r for r in DEFAULT_ROLES if r != "regulatory_affairs"])
def test_only_regulatory_affairs_may_decide(ring: Keyring, role: str) -> None:
    token = issue_token(ring, "someone", role, timedelta(hours=1))
    with pytest.raises(AuthError) as caught:
        authorize_decision(ring, token)
    assert caught.value.code is AuthErrorCode.ROLE_FORBIDDEN
    assert caught.value.http_status == 403
    assert caught.value.role == role
    ok = issue_token(ring, "ra.lead", "regulatory_affairs", timedelta(hours=1))
    assert authorize_decision(ring, ok).role == "regulatory_affairs"


def test_rotated_auth_key_still_verifies_earlier_tokens(ring: Keyring) -> None:
    before = issue_token(ring, "qa.one", "qa", timedelta(hours=1))
    ring.rotate("auth")
    after = issue_token(ring, "qa.one", "qa", timedelta(hours=1))
    assert verify_token(ring, before).user == verify_token(ring, after).user == "qa.one"


def test_configured_roles_are_enforced(ring: Keyring) -> None:
    settings = Settings(auth_roles="qa,auditor")
    token = issue_token(ring, "aud.one", "auditor", timedelta(hours=1), settings=settings)
    assert verify_token(ring, token, settings=settings).role == "auditor"
    with pytest.raises(AuthError) as caught:
        verify_token(ring, token)  # default roles know no 'auditor'
    assert caught.value.code is AuthErrorCode.TOKEN_INVALID
    with pytest.raises(ValueError, match="unknown role"):
        issue_token(ring, "x", "devops", timedelta(hours=1), settings=settings)


def test_issue_refuses_bad_input(ring: Keyring) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        issue_token(ring, "x", "admin", timedelta(hours=1))
    with pytest.raises(ValueError, match="ttl"):
        issue_token(ring, "x", "qa", timedelta(0))
    with pytest.raises(ValueError, match="user"):
        issue_token(ring, "Jane Doe", "qa", timedelta(hours=1))


def test_parse_ttl_and_bearer() -> None:
    assert parse_ttl("8h") == timedelta(hours=8)
    assert parse_ttl("15m") == timedelta(minutes=15)
    assert parse_ttl("2d") == timedelta(days=2)
    assert parse_ttl("90") == timedelta(seconds=90)
    for bad in ("", "8x", "-1h", "0s"):
        with pytest.raises(ValueError):
            parse_ttl(bad)
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    for header in (None, "", "Basic abc", "Bearer "):
        with pytest.raises(AuthError) as caught:
            bearer_token(header)
        assert caught.value.code is AuthErrorCode.TOKEN_MISSING


# --------------------------------------------------------------------------- keyring tolerance
def test_old_keyring_file_gains_missing_purposes(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    full = json.loads(Keyring.generate().to_json())
    old = {p: full[p] for p in ("payload", "object", "audit", "token")}
    path.write_text(json.dumps(old))
    loaded = Keyring.load(Settings(keyring_file=path))
    with pytest.raises(KeyringError, match="'auth'"):
        loaded.active("auth")
    assert loaded.active("payload")[1] == base64.b64decode(
        old["payload"]["keys"][old["payload"]["active"]]
    )
    ring = Keyring.load_or_create(path)
    assert set(ring.sets) == set(PURPOSES)
    saved = json.loads(path.read_text())
    assert set(saved) == set(PURPOSES)
    assert saved["payload"] == old["payload"], "existing keys are never changed"
    assert Keyring.load_or_create(path).active("auth") == ring.active("auth")


# --------------------------------------------------------------------------- CLI
def test_cli_issue_and_whoami(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from starters.cli import app

    monkeypatch.setenv("CLINFLOW_KEYRING_FILE", str(tmp_path / "keyring.json"))
    Keyring.load_or_create(tmp_path / "keyring.json")
    runner = CliRunner()
    issued = runner.invoke(app, ["auth", "issue", "--user", "ops.one", "--role", "devops"])
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip()
    who = runner.invoke(app, ["auth", "whoami", token])
    assert who.exit_code == 0, who.output
    assert json.loads(who.stdout)["role"] == "devops"
    bad = runner.invoke(app, ["auth", "whoami", token[:-4] + "AAAA"])
    assert bad.exit_code == 3
    wrong = runner.invoke(app, ["auth", "issue", "--user", "x", "--role", "root"])
    assert wrong.exit_code == 1


# --------------------------------------------------------------------------- OIDC
@pytest.fixture
async def jwks_server() -> AsyncIterator[tuple[str, Ed25519PrivateKey]]:
    import jwt

    key = Ed25519PrivateKey.generate()
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "idp-1", "use": "sig", "alg": "EdDSA"})

    async def keys(_: web.Request) -> web.Response:
        return web.json_response({"keys": [jwk]})

    app = web.Application()
    app.router.add_get("/jwks", keys)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/jwks", key
    finally:
        await runner.cleanup()


async def test_oidc_verifier_accepts_issuer_tokens_and_refuses_others(
    jwks_server: tuple[str, Ed25519PrivateKey],
) -> None:
    import asyncio

    import jwt

    url, key = jwks_server
    verifier = OidcTokenVerifier(url, issuer="https://idp.example", audience="clinflow")
    exp = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
    claims = {
        "iss": "https://idp.example",
        "aud": "clinflow",
        "preferred_username": "ra.lead",
        "clinflow_role": ["viewer", "regulatory_affairs"],
        "exp": exp,
    }
    good = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "idp-1"})
    principal = await asyncio.to_thread(verifier.verify, good)
    assert (principal.user, principal.role) == ("ra.lead", "regulatory_affairs")
    decided = await asyncio.to_thread(
        authorize_decision, Keyring.generate(), good, verifier=verifier
    )
    assert decided.user == "ra.lead"

    other = jwt.encode(
        claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "idp-1"}
    )
    wrong_aud = jwt.encode(
        {**claims, "aud": "other"}, key, algorithm="EdDSA", headers={"kid": "idp-1"}
    )
    expired = jwt.encode(
        {**claims, "exp": exp - 7200}, key, algorithm="EdDSA", headers={"kid": "idp-1"}
    )
    for token, code in (
        (other, AuthErrorCode.TOKEN_INVALID),
        (wrong_aud, AuthErrorCode.TOKEN_INVALID),
        (expired, AuthErrorCode.TOKEN_EXPIRED),
    ):
        with pytest.raises(AuthError) as caught:
            await asyncio.to_thread(verifier.verify, token)
        assert caught.value.code is code
