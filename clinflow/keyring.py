"""Key material by purpose, with key ids for rotation.

A keyring holds, per purpose (payload codec, object-store key-encryption key,
audit-chain HMAC, log tokenisation, access-token signing, system signatures,
audit-archive signing), a set of 256-bit keys and the id of the active one.
New material is always produced with the active key; every key in the set
still opens what it produced, which is what makes rotation safe. An
``archive`` key is the 32-byte seed of an Ed25519 key pair: it signs archive
seals and head checkpoints, and its public half verifies them.

Sources, in order: ``CLINFLOW_KEYRING_JSON`` (inline JSON, for containers and
CI secrets) or the keyring file (``<home>/keyring.json`` by default, written
with mode 0600 by ``clinflow stack up`` or ``clinflow keys rotate``).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from clinflow.settings import Settings

Purpose = Literal["payload", "object", "audit", "token", "auth", "signing", "archive"]
PURPOSES: tuple[Purpose, ...] = (
    "payload",
    "object",
    "audit",
    "token",
    "auth",
    "signing",
    "archive",
)
KEY_BYTES = 32


class KeyringError(Exception):
    """The keyring is missing, malformed, or lacks the key a payload names."""


@dataclass
class KeySet:
    active: str
    keys: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Keyring:
    sets: dict[str, KeySet]

    @classmethod
    def generate(cls) -> Keyring:
        """A fresh keyring with one random key per purpose."""
        ring = cls(sets={})
        for purpose in PURPOSES:
            ring.sets[purpose] = KeySet(active="", keys={})
            ring.rotate(purpose)
        return ring

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        try:
            raw = json.loads(text)
            sets = {
                purpose: KeySet(
                    active=entry["active"],
                    keys={kid: base64.b64decode(k) for kid, k in entry["keys"].items()},
                )
                for purpose, entry in raw.items()
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyringError(f"malformed keyring: {exc}") from exc
        for purpose, ks in sets.items():
            if ks.active not in ks.keys:
                raise KeyringError(f"keyring purpose {purpose!r}: active key {ks.active!r} absent")
            if any(len(k) != KEY_BYTES for k in ks.keys.values()):
                raise KeyringError(f"keyring purpose {purpose!r}: keys must be {KEY_BYTES} bytes")
        return cls(sets=sets)

    @classmethod
    def load(cls, settings: Settings) -> Keyring:
        """The keyring configured by ``settings`` (inline JSON first, then the file)."""
        if settings.keyring_json is not None:
            return cls.from_json(settings.keyring_json.get_secret_value())
        path = settings.keyring_path
        if not path.exists():
            raise KeyringError(
                f"no keyring at {path}: run 'clinflow stack up' (local) or set "
                "CLINFLOW_KEYRING_JSON / CLINFLOW_KEYRING_FILE"
            )
        return cls.from_json(path.read_text())

    @classmethod
    def load_or_create(cls, path: Path) -> Keyring:
        """Read the keyring file, creating it (mode 0600) when absent.

        A file written before a purpose existed gets that purpose generated and
        the file saved again; existing keys are never changed.
        """
        if path.exists():
            ring = cls.from_json(path.read_text())
            if ring.add_missing_purposes():
                ring.save(path)
            return ring
        ring = cls.generate()
        ring.save(path)
        return ring

    def missing_purposes(self) -> list[Purpose]:
        """Purposes this keyring has no keys for (an older keyring file)."""
        return [p for p in PURPOSES if p not in self.sets]

    def add_missing_purposes(self) -> list[Purpose]:
        """Generate a key for every purpose the keyring lacks; returns the purposes added."""
        added = self.missing_purposes()
        for purpose in added:
            self.rotate(purpose)
        return added

    def to_json(self) -> str:
        return json.dumps(
            {
                purpose: {
                    "active": ks.active,
                    "keys": {kid: base64.b64encode(k).decode() for kid, k in ks.keys.items()},
                }
                for purpose, ks in self.sets.items()
            },
            indent=2,
            sort_keys=True,
        )

    def save(self, path: Path) -> None:
        """Write atomically with owner-only permissions."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.to_json())
        os.replace(tmp, path)

    def _set(self, purpose: str) -> KeySet:
        try:
            return self.sets[purpose]
        except KeyError:
            raise KeyringError(
                f"keyring has no keys for purpose {purpose!r} (written before that purpose "
                f"existed?): run 'clinflow keys rotate {purpose}' or 'clinflow stack up' to add "
                "it to the keyring file, or add it to CLINFLOW_KEYRING_JSON"
            ) from None

    def active(self, purpose: Purpose) -> tuple[str, bytes]:
        """(key id, key) used to produce new material for ``purpose``."""
        ks = self._set(purpose)
        return ks.active, ks.keys[ks.active]

    def get(self, purpose: Purpose, key_id: str) -> bytes:
        """The key ``key_id`` of ``purpose``; raises KeyringError when unknown."""
        ks = self._set(purpose)
        try:
            return ks.keys[key_id]
        except KeyError:
            raise KeyringError(f"unknown {purpose} key id {key_id!r}") from None

    def all(self, purpose: Purpose) -> dict[str, bytes]:
        """Every key of ``purpose`` by id (empty when the keyring lacks the purpose)."""
        ks = self.sets.get(purpose)
        return dict(ks.keys) if ks else {}

    def rotate(self, purpose: Purpose) -> str:
        """Add a new random key for ``purpose`` and make it active; old keys remain."""
        ks = self.sets.setdefault(purpose, KeySet(active=""))
        kid = f"{purpose}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
        ks.keys[kid] = secrets.token_bytes(KEY_BYTES)
        ks.active = kid
        return kid
