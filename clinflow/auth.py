"""Who may do what: business roles and time-bound bearer tokens.

A token is a compact JWT (``header.claims.signature``, base64url) naming a user
(``sub``), one business role (``role``), an issuer, an audience, and an expiry.
Locally issued tokens are signed with HMAC-SHA256 under the keyring's ``auth``
purpose; the header's ``kid`` names the key, so rotating the ``auth`` key keeps
earlier tokens valid until they expire. Production can verify an OIDC issuer's
JWTs instead (``CLINFLOW_AUTH_VERIFIER=oidc``, keys fetched from its JWKS URL):
every consumer calls :func:`verify_token` (or a :class:`TokenVerifier`) and gets a
:class:`Principal` or an :class:`AuthError` whose ``code`` says why not.

Checks run in a fixed order: the signature first (a forged token is reported as
``TOKEN_INVALID`` even when it is also expired), then issuer, audience and
expiry, then the role.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Protocol

from pydantic import BaseModel, ConfigDict

from clinflow.keyring import Keyring, KeyringError
from clinflow.settings import Settings

CLINICAL_OPS: Final = "clinical_ops"
REGULATORY_AFFAIRS: Final = "regulatory_affairs"
QA: Final = "qa"
DEVOPS: Final = "devops"
#: The business roles when settings do not say otherwise (``CLINFLOW_AUTH_ROLES``).
DEFAULT_ROLES: Final[tuple[str, ...]] = (CLINICAL_OPS, REGULATORY_AFFAIRS, QA, DEVOPS)
#: Who may approve or reject a COMPLIANCE_BLOCK.
DECISION_ROLES: Final[tuple[str, ...]] = (REGULATORY_AFFAIRS,)

KEY_PURPOSE: Final = "auth"
ALGORITHM: Final = "HS256"
DEFAULT_ISSUER: Final = "clinflow-local"
DEFAULT_AUDIENCE: Final = "clinflow"
#: Tolerated clock difference for ``iat``/``nbf`` in the future.
CLOCK_SKEW: Final = timedelta(seconds=30)
_USER_RE: Final = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")


class AuthErrorCode(StrEnum):
    TOKEN_MISSING = "TOKEN_MISSING"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_INVALID = "TOKEN_INVALID"
    ROLE_FORBIDDEN = "ROLE_FORBIDDEN"


class AuthError(Exception):
    """A request is not authorised.

    ``code`` is one of ``TOKEN_MISSING`` (no token presented), ``TOKEN_EXPIRED``
    (genuine but past its expiry), ``TOKEN_INVALID`` (malformed, forged, wrong
    issuer/audience, unknown key or role) or ``ROLE_FORBIDDEN`` (genuine, but its
    role may not do this). ``user``/``role`` are set when the token was genuine;
    ``required`` lists the roles that would have been accepted.
    """

    def __init__(
        self,
        code: AuthErrorCode | str,
        message: str,
        *,
        user: str | None = None,
        role: str | None = None,
        required: tuple[str, ...] = (),
    ) -> None:
        self.code = AuthErrorCode(code)
        self.message = message
        self.user = user
        self.role = role
        self.required = required
        super().__init__(f"{self.code}: {message}")

    @property
    def http_status(self) -> int:
        """401 for a missing/expired/invalid token, 403 for a genuine token of the wrong role."""
        return 403 if self.code is AuthErrorCode.ROLE_FORBIDDEN else 401

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": str(self.code),
            "message": self.message,
            "user": self.user,
            "role": self.role,
            "required": list(self.required),
        }


class Principal(BaseModel):
    """The verified bearer of a token."""

    model_config = ConfigDict(frozen=True)

    user: str
    role: str
    expires_at: datetime
    issuer: str = DEFAULT_ISSUER
    token_id: str | None = None

    def has_role(self, *roles: str) -> bool:
        return self.role in roles


class TokenVerifier(Protocol):
    """Turns a bearer token into a Principal, or raises AuthError (never another error)."""

    def verify(self, token: str, *, now: datetime | None = None) -> Principal: ...


# --------------------------------------------------------------------------- encoding
def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_b64(obj: dict[str, Any]) -> str:
    return _b64e(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("'now' must be timezone-aware")
    return now.astimezone(UTC)


def _split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, claims, signing input, signature); TOKEN_INVALID when malformed."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise AuthError(AuthErrorCode.TOKEN_INVALID, "token is not a compact JWT (3 parts)")
    try:
        header = json.loads(_b64d(parts[0]))
        claims = json.loads(_b64d(parts[1]))
        signature = _b64d(parts[2])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise AuthError(AuthErrorCode.TOKEN_INVALID, "token is not valid base64url JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AuthError(AuthErrorCode.TOKEN_INVALID, "token header and claims must be objects")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def _check_roles(role: str, roles: Iterable[str]) -> None:
    if role not in tuple(roles):
        raise ValueError(f"unknown role {role!r}; configured roles: {', '.join(roles)}")


def parse_ttl(text: str) -> timedelta:
    """``90s``, ``15m``, ``8h``, ``2d`` (or plain seconds) as a timedelta; ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"bad duration {text!r}: use e.g. 90s, 15m, 8h or 2d")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    value = timedelta(seconds=int(match.group(1)) * unit)
    if value <= timedelta(0):
        raise ValueError("duration must be positive")
    return value


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; TOKEN_MISSING otherwise."""
    if not header or not header.strip():
        raise AuthError(
            AuthErrorCode.TOKEN_MISSING, "no Authorization header: send 'Bearer <token>'"
        )
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthError(
            AuthErrorCode.TOKEN_MISSING, "Authorization header must be 'Bearer <token>'"
        )
    return value.strip()


# --------------------------------------------------------------------------- local tokens
def issue_token(
    keyring: Keyring,
    user: str,
    role: str,
    ttl: timedelta,
    *,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> str:
    """A token for ``user`` acting as ``role``, valid for ``ttl`` from ``now``.

    Signed with the keyring's active ``auth`` key. Raises ValueError for an
    unknown role, an unusable user id or a non-positive ttl, and KeyringError
    when the keyring has no ``auth`` key.
    """
    roles = settings.auth_role_list if settings is not None else DEFAULT_ROLES
    _check_roles(role, roles)
    if not _USER_RE.match(user):
        raise ValueError("user must be 1-128 characters of letters, digits and . _ @ + -")
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")
    issued = _utc(now)
    kid, key = keyring.active(KEY_PURPOSE)
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": kid}
    claims = {
        "iss": settings.auth_issuer if settings is not None else DEFAULT_ISSUER,
        "aud": settings.auth_audience if settings is not None else DEFAULT_AUDIENCE,
        "sub": user,
        "role": role,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
        "jti": secrets.token_hex(8),
    }
    signing_input = f"{_json_b64(header)}.{_json_b64(claims)}"
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64e(signature)}"


class LocalTokenVerifier:
    """Verifies tokens made by :func:`issue_token` with the same keyring."""

    def __init__(
        self,
        keyring: Keyring,
        *,
        roles: Iterable[str] = DEFAULT_ROLES,
        issuer: str = DEFAULT_ISSUER,
        audience: str = DEFAULT_AUDIENCE,
    ) -> None:
        self.keyring = keyring
        self.roles = tuple(roles)
        self.issuer = issuer
        self.audience = audience
        keyring.active(KEY_PURPOSE)  # fail now, with the keyring's message, if 'auth' is absent

    @classmethod
    def from_settings(cls, keyring: Keyring, settings: Settings) -> LocalTokenVerifier:
        return cls(
            keyring,
            roles=settings.auth_role_list,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
        )

    def verify(self, token: str, *, now: datetime | None = None) -> Principal:
        if not token:
            raise AuthError(AuthErrorCode.TOKEN_MISSING, "no token presented")
        header, claims, signing_input, signature = _split(token)
        if header.get("alg") != ALGORITHM:
            raise AuthError(
                AuthErrorCode.TOKEN_INVALID,
                f"token algorithm {header.get('alg')!r} is not accepted (expected {ALGORITHM})",
            )
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthError(AuthErrorCode.TOKEN_INVALID, "token header has no key id")
        try:
            key = self.keyring.get(KEY_PURPOSE, kid)
        except KeyringError:
            raise AuthError(
                AuthErrorCode.TOKEN_INVALID, f"token signed with unknown key id {kid!r}"
            ) from None
        expected = hmac.new(key, signing_input, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            raise AuthError(AuthErrorCode.TOKEN_INVALID, "token signature does not verify")
        return _principal_from_claims(
            claims,
            now=_utc(now),
            issuer=self.issuer,
            audience=self.audience,
            roles=self.roles,
            user_claim="sub",
            role_claim="role",
        )


def _principal_from_claims(
    claims: dict[str, Any],
    *,
    now: datetime,
    issuer: str | None,
    audience: str,
    roles: tuple[str, ...],
    user_claim: str,
    role_claim: str,
) -> Principal:
    """Check the registered claims of a token whose signature already verified."""
    if issuer is not None and claims.get("iss") != issuer:
        raise AuthError(
            AuthErrorCode.TOKEN_INVALID,
            f"token issuer {claims.get('iss')!r} is not the expected {issuer!r}",
        )
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if audience not in audiences:
        raise AuthError(AuthErrorCode.TOKEN_INVALID, f"token is not meant for {audience!r}")
    user = claims.get(user_claim)
    if not isinstance(user, str) or not user:
        raise AuthError(AuthErrorCode.TOKEN_INVALID, f"token has no {user_claim!r} claim")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise AuthError(AuthErrorCode.TOKEN_INVALID, "token has no numeric expiry ('exp')")
    expires_at = datetime.fromtimestamp(exp, UTC)
    for name in ("iat", "nbf"):
        value = claims.get(name)
        if isinstance(value, int | float) and datetime.fromtimestamp(value, UTC) > now + CLOCK_SKEW:
            raise AuthError(AuthErrorCode.TOKEN_INVALID, f"token {name!r} is in the future")
    raw_role = claims.get(role_claim)
    candidates = raw_role if isinstance(raw_role, list) else [raw_role]
    role = next((r for r in candidates if isinstance(r, str) and r in roles), None)
    if now >= expires_at:
        raise AuthError(
            AuthErrorCode.TOKEN_EXPIRED,
            f"token expired at {expires_at.isoformat()}; ask for a new one",
            user=user,
            role=role,
        )
    if role is None:
        raise AuthError(
            AuthErrorCode.TOKEN_INVALID,
            f"token role {raw_role!r} is not one of the configured roles ({', '.join(roles)})",
            user=user,
        )
    jti = claims.get("jti")
    return Principal(
        user=user,
        role=role,
        expires_at=expires_at,
        issuer=str(claims.get("iss") or ""),
        token_id=jti if isinstance(jti, str) else None,
    )


# --------------------------------------------------------------------------- OIDC tokens
class OidcTokenVerifier:
    """Verifies an OIDC issuer's JWTs (RS256/ES256/EdDSA) against its JWKS (needs PyJWT).

    The user comes from ``user_claim`` (``preferred_username`` by default) and the
    role from ``role_claim`` (a string or a list; the first configured role wins).
    """

    ALGORITHMS: Final = ("RS256", "RS384", "RS512", "ES256", "ES384", "EdDSA")

    def __init__(
        self,
        jwks_url: str,
        *,
        issuer: str | None,
        audience: str,
        roles: Iterable[str] = DEFAULT_ROLES,
        role_claim: str = "clinflow_role",
        user_claim: str = "preferred_username",
    ) -> None:
        try:
            import jwt
        except ImportError as exc:  # pragma: no cover - PyJWT is a declared dependency
            raise RuntimeError("OIDC token verification needs PyJWT: pip install pyjwt") from exc
        self._jwt = jwt
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True)
        self.issuer = issuer
        self.audience = audience
        self.roles = tuple(roles)
        self.role_claim = role_claim
        self.user_claim = user_claim

    def verify(self, token: str, *, now: datetime | None = None) -> Principal:
        jwt = self._jwt
        if not token:
            raise AuthError(AuthErrorCode.TOKEN_MISSING, "no token presented")
        try:
            signing_key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                signing_key.key,
                algorithms=list(self.ALGORITHMS),
                audience=self.audience,
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise AuthError(
                AuthErrorCode.TOKEN_INVALID, f"cannot fetch the issuer's keys: {exc}"
            ) from None
        except (jwt.PyJWTError, jwt.PyJWKClientError) as exc:
            raise AuthError(AuthErrorCode.TOKEN_INVALID, f"token rejected: {exc}") from None
        return _principal_from_claims(
            claims,
            now=_utc(now),
            issuer=self.issuer,
            audience=self.audience,
            roles=self.roles,
            user_claim=self.user_claim,
            role_claim=self.role_claim,
        )


@functools.lru_cache(maxsize=8)
def _oidc_verifier(
    jwks_url: str,
    issuer: str | None,
    audience: str,
    roles: tuple[str, ...],
    role_claim: str,
    user_claim: str,
) -> OidcTokenVerifier:
    """One verifier (and JWKS key cache) per configuration, shared by every call."""
    return OidcTokenVerifier(
        jwks_url,
        issuer=issuer,
        audience=audience,
        roles=roles,
        role_claim=role_claim,
        user_claim=user_claim,
    )


def verifier_from_settings(keyring: Keyring, settings: Settings) -> TokenVerifier:
    """The verifier ``settings.auth_verifier`` selects (``local`` or ``oidc``)."""
    if settings.auth_verifier == "local":
        return LocalTokenVerifier.from_settings(keyring, settings)
    if settings.auth_verifier == "oidc":
        if not settings.auth_oidc_jwks_url:
            raise ValueError("CLINFLOW_AUTH_VERIFIER=oidc needs CLINFLOW_AUTH_OIDC_JWKS_URL")
        return _oidc_verifier(
            settings.auth_oidc_jwks_url,
            settings.auth_oidc_issuer,
            settings.auth_audience,
            settings.auth_role_list,
            settings.auth_oidc_role_claim,
            settings.auth_oidc_user_claim,
        )
    raise ValueError(f"unknown auth verifier {settings.auth_verifier!r}: use 'local' or 'oidc'")


# --------------------------------------------------------------------------- checks
def require_role(principal: Principal, required_role: str | Iterable[str] | None) -> Principal:
    """``principal`` when its role is among ``required_role``; ROLE_FORBIDDEN otherwise."""
    if required_role is None:
        return principal
    allowed = (required_role,) if isinstance(required_role, str) else tuple(required_role)
    if principal.role not in allowed:
        raise AuthError(
            AuthErrorCode.ROLE_FORBIDDEN,
            f"role {principal.role!r} may not do this; requires {' or '.join(allowed)}",
            user=principal.user,
            role=principal.role,
            required=allowed,
        )
    return principal


def verify_token(
    keyring: Keyring,
    token: str | None,
    *,
    required_role: str | Iterable[str] | None = None,
    now: datetime | None = None,
    settings: Settings | None = None,
    verifier: TokenVerifier | None = None,
) -> Principal:
    """The Principal a token proves, optionally requiring one of ``required_role``.

    Uses ``verifier`` when given, else the one ``settings`` selects, else a local
    verifier over ``keyring`` with the default roles. Pure (no I/O for local
    tokens), so it is safe to call from an activity on every retry.
    Raises AuthError (TOKEN_MISSING / TOKEN_EXPIRED / TOKEN_INVALID / ROLE_FORBIDDEN).
    """
    if token is None or not token.strip():
        raise AuthError(AuthErrorCode.TOKEN_MISSING, "no token presented")
    if verifier is None:
        verifier = (
            verifier_from_settings(keyring, settings)
            if settings is not None
            else LocalTokenVerifier(keyring)
        )
    principal = verifier.verify(token.strip(), now=now)
    return require_role(principal, required_role)


def authorize_decision(
    keyring: Keyring,
    token: str | None,
    *,
    now: datetime | None = None,
    settings: Settings | None = None,
    verifier: TokenVerifier | None = None,
) -> Principal:
    """The reviewer allowed to approve or reject a COMPLIANCE_BLOCK (Regulatory Affairs only).

    Raises AuthError; callers audit the refused attempt with ``err.to_dict()``.
    """
    return verify_token(
        keyring,
        token,
        required_role=DECISION_ROLES,
        now=now,
        settings=settings,
        verifier=verifier,
    )
