"""Escrowed object data keys: what makes crypto-shredding possible.

A version 1 envelope carries its wrapped data key in its own header, so every
copy of the object (replica, backup, a download kept somewhere) carries the
means to open it. With escrow, the object store writes version 2 envelopes:
the header names an escrow id, and the wrapped data key lives in the table
``object_data_keys`` (wrapped by the keyring's ``object`` KEK, bound to the
escrow id). Destroying that row's key material is crypto-shredding: from then
on no copy of the object opens, and the row remains as the record of what was
destroyed, when, by whom and why. A database trigger keeps destroyed keys
destroyed.

Caveat an operator must know: PostgreSQL does not overwrite the old row version
at once (MVCC, WAL, base backups). The key table's backups need a retention
shorter than the shortest purge deadline, or keys live on in them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel

from clinflow.envelope import (
    KEK_PURPOSE,
    EnvelopeError,
    EscrowDeposit,
    decrypt_bytes,
    escrow_wrap_aad,
    read_header,
)
from clinflow.keyring import Keyring, KeyringError


class KeyDestroyed(EnvelopeError):
    """The object's data key was destroyed (crypto-shredded): no copy of it opens any more.

    ``code`` is ``envelope_key_destroyed``; ``details`` has ``escrow_key_id`` and
    ``destroyed_at``.
    """


class DestroyedKey(BaseModel):
    """The record of one destroyed data key (what the audit chain's purge entry cites)."""

    key_id: str
    bucket: str
    object_key: str
    kek_id: str
    destroyed_at: datetime
    destroyed_by: str | None
    reason: str | None
    newly_destroyed: bool


def new_escrow_id() -> str:
    """A fresh escrow id (random; carries nothing about the object)."""
    return f"dk-{uuid.uuid4().hex}"


class LazyPool:
    """A small asyncpg pool opened on first use.

    For object stores that may never meet an escrowed object: nothing connects to
    PostgreSQL until a key is deposited or fetched.
    """

    def __init__(self, dsn: str, *, max_size: int = 2) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=0, max_size=self._max_size
                    )
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            yield conn

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class KeyEscrow:
    """Deposit, fetch and destroy escrowed data keys in PostgreSQL (``object_data_keys``)."""

    def __init__(self, pool: asyncpg.Pool | LazyPool, keyring: Keyring) -> None:
        self.pool = pool
        self.keyring = keyring

    async def deposit(self, deposit: EscrowDeposit, bucket: str, key: str) -> None:
        """Record the wrapped data key of a new object before the object is written.

        Idempotent for the same escrow id and material.
        """
        async with self.pool.acquire() as conn:
            await conn.execute(
                """INSERT INTO object_data_keys (key_id, bucket, object_key, kek_id, wrap_nonce,
                       wrapped_key) VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (key_id) DO NOTHING""",
                deposit.escrow_key_id,
                bucket,
                key,
                deposit.kek_id,
                deposit.wrap_nonce,
                deposit.wrapped_key,
            )

    async def data_key(self, escrow_key_id: str) -> bytes:
        """The unwrapped data key of ``escrow_key_id``.

        Raises KeyDestroyed once the key was shredded, EnvelopeError
        (``envelope_key_unavailable``) for an unknown id, ``envelope_unknown_kek`` /
        ``envelope_unwrap_failed`` when the KEK is missing or the row was altered.
        """
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT kek_id, wrap_nonce, wrapped_key, destroyed_at FROM object_data_keys "
                "WHERE key_id = $1",
                escrow_key_id,
            )
        if row is None:
            raise EnvelopeError(
                "envelope_key_unavailable",
                f"no escrowed data key {escrow_key_id!r}",
                details={"escrow_key_id": escrow_key_id},
            )
        if row["destroyed_at"] is not None or row["wrapped_key"] is None:
            raise KeyDestroyed(
                "envelope_key_destroyed",
                f"data key {escrow_key_id!r} was destroyed at "
                f"{row['destroyed_at'].isoformat()}: the object was crypto-shredded",
                details={
                    "escrow_key_id": escrow_key_id,
                    "destroyed_at": row["destroyed_at"].isoformat(),
                },
            )
        kek_id: str = row["kek_id"]
        try:
            kek = self.keyring.get(KEK_PURPOSE, kek_id)
        except KeyringError:
            raise EnvelopeError(
                "envelope_unknown_kek",
                f"object key-encryption key {kek_id!r} is not in the keyring",
                details={"kek_id": kek_id},
            ) from None
        try:
            return AESGCM(kek).decrypt(
                bytes(row["wrap_nonce"]),
                bytes(row["wrapped_key"]),
                escrow_wrap_aad(kek_id, escrow_key_id),
            )
        except InvalidTag:
            raise EnvelopeError(
                "envelope_unwrap_failed",
                f"escrowed data key {escrow_key_id!r} does not open with KEK {kek_id!r}",
                details={"kek_id": kek_id, "escrow_key_id": escrow_key_id},
            ) from None

    async def decrypt(self, envelope: bytes) -> bytes:
        """Plaintext of an in-memory envelope of either version (e.g. a copy from a backup).

        Raises KeyDestroyed for a shredded object, EnvelopeError otherwise.
        """
        header = read_header(envelope)
        if header is None:
            raise EnvelopeError("envelope_truncated", "stream ends inside the header")
        if header.escrow_key_id is None:
            return decrypt_bytes(self.keyring, envelope)
        key = await self.data_key(header.escrow_key_id)
        return decrypt_bytes(self.keyring, envelope, data_keys={header.escrow_key_id: key})

    async def keys_for_object(self, bucket: str, key: str) -> list[str]:
        """Escrow ids ever deposited for ``bucket/key`` (an overwritten key may have several)."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT key_id FROM object_data_keys WHERE bucket = $1 AND object_key = $2 "
                "ORDER BY created_at, key_id",
                bucket,
                key,
            )
        return [str(r["key_id"]) for r in rows]

    async def destroy(self, escrow_key_id: str, *, actor: str, reason: str) -> DestroyedKey:
        """Destroy the key material of ``escrow_key_id`` (idempotent).

        Returns the destruction record; ``newly_destroyed`` is False when it was
        already destroyed. Raises EnvelopeError (``envelope_key_unavailable``) for an
        unknown id.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM object_data_keys WHERE key_id = $1 FOR UPDATE", escrow_key_id
            )
            if row is None:
                raise EnvelopeError(
                    "envelope_key_unavailable",
                    f"no escrowed data key {escrow_key_id!r}",
                    details={"escrow_key_id": escrow_key_id},
                )
            newly = row["destroyed_at"] is None
            if newly:
                row = await conn.fetchrow(
                    """UPDATE object_data_keys SET wrapped_key = NULL, wrap_nonce = NULL,
                           destroyed_at = now(), destroyed_by = $2, destroy_reason = $3
                       WHERE key_id = $1 RETURNING *""",
                    escrow_key_id,
                    actor,
                    reason,
                )
                assert row is not None
        return DestroyedKey(
            key_id=row["key_id"],
            bucket=row["bucket"],
            object_key=row["object_key"],
            kek_id=row["kek_id"],
            destroyed_at=row["destroyed_at"],
            destroyed_by=row["destroyed_by"],
            reason=row["destroy_reason"],
            newly_destroyed=newly,
        )
