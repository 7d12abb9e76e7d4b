"""Deterministic tokens for identifiers: the same value and key always give the same token.

A token is ``tok_<kind>_<hex>``, where ``<hex>`` is the start of
``HMAC-SHA256(key, kind || 0x00 || value)``. It lets logs, metrics and (later)
other regions join records about one patient without ever holding the raw
identifier: tokens may cross a residency boundary, raw values may not.

Properties callers can rely on:

- **Deterministic and stable across processes**: no salt, no randomness; only
  the key (keyring purpose ``"token"``), the kind and the value enter the MAC.
- **Kinds are separate namespaces**: the kind is part of the MAC input and of the
  token text, so an MRN and a member id with equal text never share a token.
- **Not reversible without the key**; with the key, a small value space (for
  example nine-digit SSNs) can be enumerated, so the key is as sensitive as the
  data it protects. Rotating the active ``"token"`` key changes every token.
- Values are tokenised exactly as given (no trimming or case folding); callers
  that want ``" 123"`` and ``"123"`` to match must normalise first.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field

from clinflow.keyring import Keyring
from clinflow.settings import Settings

TOKEN_PREFIX = "tok"
DEFAULT_DIGEST_CHARS = 16
MIN_DIGEST_CHARS = 16
MAX_DIGEST_CHARS = 64
MIN_KEY_BYTES = 16

KIND_PATTERN = re.compile(r"[a-z][a-z0-9]{0,31}")
TOKEN_PATTERN = re.compile(
    rf"{TOKEN_PREFIX}_[a-z][a-z0-9]{{0,31}}_[0-9a-f]{{{MIN_DIGEST_CHARS},{MAX_DIGEST_CHARS}}}"
)


class TokeniseError(ValueError):
    """A token cannot be made: bad kind, unusable key, or a value of the wrong type."""


def _check_kind(kind: str) -> None:
    if not KIND_PATTERN.fullmatch(kind):
        raise TokeniseError(
            f"token kind {kind!r} must be 1-32 characters of a-z and 0-9, starting with a letter"
        )


def tokenise(
    value: str | int,
    key: bytes,
    kind: str = "id",
    *,
    digest_chars: int = DEFAULT_DIGEST_CHARS,
) -> str:
    """The token of ``value`` under ``key`` for identifiers of ``kind``.

    Pure and deterministic. ``digest_chars`` (16..64 hex characters) trades
    length for collision resistance: 16 (64 bits) suits logs; use 32 or more
    where tokens are join keys across millions of records.

    Raises ``TokeniseError`` for an invalid kind, a key shorter than 16 bytes,
    an out-of-range ``digest_chars`` or a value that is not ``str``/``int``.
    """
    _check_kind(kind)
    if len(key) < MIN_KEY_BYTES:
        raise TokeniseError(f"token key must be at least {MIN_KEY_BYTES} bytes")
    if not MIN_DIGEST_CHARS <= digest_chars <= MAX_DIGEST_CHARS:
        raise TokeniseError(
            f"digest_chars must be within {MIN_DIGEST_CHARS}..{MAX_DIGEST_CHARS}, "
            f"got {digest_chars}"
        )
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TokeniseError(f"only str and int values are tokenised, got {type(value).__name__}")
    message = kind.encode("ascii") + b"\x00" + str(value).encode("utf-8")
    digest = hmac.new(key, message, hashlib.sha256).hexdigest()
    return f"{TOKEN_PREFIX}_{kind}_{digest[:digest_chars]}"


def is_token(text: str) -> bool:
    """True when ``text`` has the shape of a token (it is never tokenised twice)."""
    return TOKEN_PATTERN.fullmatch(text) is not None


@dataclass(frozen=True, repr=False)
class Tokeniser:
    """A token key bound once, called as ``tokeniser(value, kind)``.

    ``key_id`` names the keyring key in use (safe to log); the key itself never
    appears in ``repr``.
    """

    key: bytes = field(compare=False)
    key_id: str = ""
    digest_chars: int = DEFAULT_DIGEST_CHARS

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise TokeniseError(f"token key must be at least {MIN_KEY_BYTES} bytes")
        if not MIN_DIGEST_CHARS <= self.digest_chars <= MAX_DIGEST_CHARS:
            raise TokeniseError(f"digest_chars out of range: {self.digest_chars}")

    def __call__(self, value: str | int, kind: str = "id") -> str:
        return tokenise(value, self.key, kind, digest_chars=self.digest_chars)

    def __repr__(self) -> str:
        return f"Tokeniser(key_id={self.key_id!r}, digest_chars={self.digest_chars})"

    @classmethod
    def from_keyring(cls, ring: Keyring, *, digest_chars: int = DEFAULT_DIGEST_CHARS) -> Tokeniser:
        """The tokeniser for the keyring's active ``"token"`` key.

        Raises ``KeyringError`` when the keyring has no ``"token"`` keys.
        """
        key_id, key = ring.active("token")
        return cls(key=key, key_id=key_id, digest_chars=digest_chars)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, digest_chars: int = DEFAULT_DIGEST_CHARS
    ) -> Tokeniser:
        """Load the configured keyring and bind its active ``"token"`` key.

        Raises ``KeyringError`` when the keyring is missing or malformed.
        """
        return cls.from_keyring(Keyring.load(settings), digest_chars=digest_chars)
