"""Resources the activities of one worker process share: settings, keys, stores, pools."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from clinflow.audit_chain import AuditChain
from clinflow.db import create_pool
from clinflow.key_escrow import KeyEscrow
from clinflow.keyring import Keyring
from clinflow.object_store import ObjectStore
from clinflow.settings import Settings


@dataclass
class Deps:
    settings: Settings
    keyring: Keyring
    store: ObjectStore
    pool: asyncpg.Pool
    audit: AuditChain

    @classmethod
    async def open(cls, settings: Settings, keyring: Keyring | None = None) -> Deps:
        keyring = keyring or Keyring.load(settings)
        pool = await create_pool(settings)
        # With escrow, data keys live in PostgreSQL, so retention can crypto-shred them.
        escrow = KeyEscrow(pool, keyring) if settings.retention_key_escrow else None
        store = ObjectStore(settings, keyring, escrow=escrow)
        await store.__aenter__()
        return cls(settings, keyring, store, pool, AuditChain(pool, keyring))

    async def close(self) -> None:
        await self.pool.close()
        await self.store.__aexit__(None, None, None)
