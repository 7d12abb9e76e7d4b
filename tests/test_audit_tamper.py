"""A superuser who bypasses the append-only trigger cannot hide it: signed head checkpoints in
the write-once archive expose a truncated tail, a rewritten tail and a reset head; forged
checkpoints are refused. On the real PostgreSQL and SeaweedFS."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from clinflow.audit_archive import (
    CHECKPOINT_CONTEXT,
    ArchiveKeys,
    ArchiveSigner,
    AuditArchive,
    ChainTampered,
    archive_key_id,
)
from clinflow.audit_chain import AuditChain, AuditEntry
from clinflow.keyring import Keyring
from clinflow.object_store import ObjectStore
from clinflow.settings import Settings

pytestmark = pytest.mark.stack


@pytest.fixture
async def store(stack: Settings, keyring: Keyring) -> AsyncIterator[ObjectStore]:
    async with ObjectStore(stack, keyring) as s:
        yield s


class Chain:
    """One fresh chain with its archive, and the superuser's ways to rewrite it."""

    def __init__(
        self, stack: Settings, app_pool: Any, admin_pool: Any, keyring: Keyring, store: ObjectStore
    ) -> None:
        self.name = f"tamper-{uuid.uuid4().hex[:10]}"
        self.admin_pool = admin_pool
        self.audit = AuditChain(app_pool, keyring, self.name)
        self.archive = AuditArchive(stack, app_pool, keyring, store, self.name)

    async def fill(self, n: int) -> None:
        for i in range(n):
            await self.audit.append(
                AuditEntry(actor="svc:test", action="test.event", details={"i": i})
            )

    async def ids(self) -> dict[int, str]:
        return {e["seq"]: e["entry_id"] for e in await self.audit.entries()}

    async def superuser(self, *statements: str) -> None:
        """As the superuser: disable the append-only trigger, run ``statements`` ($1 is the
        chain), enable it again. One transaction."""
        async with self.admin_pool.acquire() as conn, conn.transaction():
            await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
            for sql in statements:
                await conn.execute(sql, self.name)
            await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")

    async def cut_tail(self, keep: int) -> None:
        """Delete every entry after ``keep`` and move the head back to entry ``keep``."""
        await self.superuser(
            f"DELETE FROM audit_log WHERE chain = $1 AND seq > {keep}",
            "UPDATE audit_chain_head h SET seq = l.seq, mac = l.mac FROM audit_log l "
            f"WHERE h.chain = $1 AND l.chain = $1 AND l.seq = {keep}",
        )


@pytest.fixture
async def chain(
    stack: Settings, app_pool: Any, admin_pool: Any, keyring: Keyring, store: ObjectStore
) -> Chain:
    return Chain(stack, app_pool, admin_pool, keyring, store)


def cli_verify(name: str, *extra: str) -> Any:
    from starters.cli import app

    return CliRunner().invoke(app, ["audit", "verify", "--chain", name, *extra])


async def test_truncated_tail_names_last_trusted_entry_and_missing_range(chain: Chain) -> None:
    await chain.fill(6)
    written = await chain.archive.checkpoint()
    assert written.written and written.checkpoint and written.checkpoint.seq == 6
    assert (await chain.archive.verify_chain()).ok
    ids = await chain.ids()

    await chain.cut_tail(keep=4)

    # The database alone cannot tell: what is left verifies and the head agrees.
    assert (await chain.audit.verify()).ok
    report = await chain.archive.verify_chain()
    assert not report.ok and not report.refused
    brk = report.report.first_break
    assert brk is not None and brk.kind == "truncated"
    assert (brk.last_trusted_seq, brk.last_trusted_entry_id) == (4, ids[4])
    assert (brk.missing_first, brk.missing_last) == (5, 6)
    assert brk.missing_range == "seq 5..6"
    assert ids[6] in brk.problem  # the checkpointed entry is named

    result = await asyncio.to_thread(cli_verify, chain.name)
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert f"is truncated: last trusted entry 4 (entry id {ids[4]})" in out
    assert "missing range seq 5..6" in out

    # Nothing gets anchored on top of a truncated chain, and sealing is refused too.
    with pytest.raises(ChainTampered) as refused:
        await chain.archive.checkpoint()
    assert refused.value.code == "AUDIT_CHAIN_TAMPERED"
    assert refused.value.details["missing_first"] == 5
    with pytest.raises(ChainTampered):
        await chain.archive.seal()


async def test_tail_cut_and_regrown_past_the_checkpoint_is_detected(chain: Chain) -> None:
    await chain.fill(4)
    await chain.archive.checkpoint()
    await chain.fill(2)
    await chain.archive.checkpoint()  # entry 6
    ids = await chain.ids()

    await chain.cut_tail(keep=4)
    await chain.fill(3)  # the application carries on: new entries 5, 6, 7 with valid MACs

    assert (await chain.audit.verify()).ok
    report = await chain.archive.verify_chain()
    brk = report.report.first_break
    assert brk is not None and brk.kind == "diverged" and brk.seq == 6
    # The older checkpoint (entry 4) still matches: the last trusted entry.
    assert (brk.last_trusted_seq, brk.last_trusted_entry_id) == (4, ids[4])
    assert brk.missing_range == "seq 5..6"
    with pytest.raises(ChainTampered):
        await chain.archive.checkpoint()
    result = await asyncio.to_thread(cli_verify, chain.name)
    assert result.exit_code == 2
    assert "was rewritten" in result.output and "seq 5..6" in " ".join(result.output.split())


async def test_reset_head_is_detected(chain: Chain) -> None:
    await chain.fill(5)
    await chain.archive.checkpoint()
    ids = await chain.ids()

    # The head moved back, the entries left in place.
    await chain.superuser(
        "UPDATE audit_chain_head h SET seq = l.seq, mac = l.mac FROM audit_log l "
        "WHERE h.chain = $1 AND l.chain = $1 AND l.seq = 3"
    )
    brk = (await chain.archive.verify_chain()).report.first_break
    assert brk is not None and brk.kind == "head_reset"
    assert "head was reset" in brk.problem

    # The head row removed.
    await chain.superuser("DELETE FROM audit_chain_head WHERE chain = $1")
    brk = (await chain.archive.verify_chain()).report.first_break
    assert brk is not None and brk.kind == "head_missing"

    # Everything removed: the chain is gone back to its genesis.
    await chain.superuser("DELETE FROM audit_log WHERE chain = $1")
    assert (await chain.audit.verify()).ok  # an empty chain, as far as the database knows
    report = await chain.archive.verify_chain()
    brk = report.report.first_break
    assert brk is not None and brk.kind == "truncated"
    assert brk.last_trusted_seq == 0 and brk.missing_range == "seq 1..5"
    assert ids[5] in brk.problem
    result = await asyncio.to_thread(cli_verify, chain.name)
    assert result.exit_code == 2 and "last trusted entry none" in result.output


@pytest.mark.parametrize(
    ("tamper", "kind", "seq", "trusted", "missing"),
    [
        ("DELETE FROM audit_log WHERE chain = $1 AND seq = 3", "missing", 3, 2, "seq 3..3"),
        (
            "UPDATE audit_log SET reason = 'edited' WHERE chain = $1 AND seq = 4",
            "altered",
            4,
            3,
            None,
        ),
        (
            "UPDATE audit_log SET seq = -2 WHERE chain = $1 AND seq = 2;"
            "UPDATE audit_log SET seq = 2 WHERE chain = $1 AND seq = 3;"
            "UPDATE audit_log SET seq = 3 WHERE chain = $1 AND seq = -2",
            "reordered",
            2,
            1,
            None,
        ),
    ],
)
async def test_middle_tampering_is_still_named(
    chain: Chain, tamper: str, kind: str, seq: int, trusted: int, missing: str | None
) -> None:
    await chain.fill(5)
    await chain.archive.checkpoint()
    ids = await chain.ids()
    await chain.superuser(*tamper.split(";"))
    report = await chain.archive.verify_chain()
    brk = report.report.first_break
    assert brk is not None
    assert (brk.kind, brk.seq, brk.last_trusted_seq) == (kind, seq, trusted)
    assert brk.last_trusted_entry_id == ids[trusted]
    assert brk.missing_range == missing
    result = await asyncio.to_thread(cli_verify, chain.name)
    assert result.exit_code == 2 and f"is broken at entry {seq}" in result.output


def _forge(body: dict[str, Any], key: Ed25519PrivateKey, key_id: str | None = None) -> bytes:
    body = {**body, "signing_key_id": key_id or archive_key_id(key.public_key())}
    payload = (
        CHECKPOINT_CONTEXT
        + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    signature = base64.b64encode(key.sign(payload)).decode()
    return json.dumps({**body, "signature": signature}).encode()


async def test_forged_checkpoints_are_refused(
    chain: Chain, store: ObjectStore, keyring: Keyring
) -> None:
    await chain.fill(3)
    real = (await chain.archive.checkpoint()).checkpoint
    assert real is not None
    bucket, client = chain.archive.bucket, store.client
    mallory = Ed25519PrivateKey.generate()
    claim = {
        **real.model_dump(mode="json", exclude={"signature", "signing_key_id"}),
        "seq": 9,
        "entry_id": "never-written",
        "mac": "ab" * 32,
        "checkpointed_at": datetime.now(UTC).isoformat(),
    }
    # A checkpoint 'ahead' of the chain, signed by another key: a false truncation alarm.
    await client.put_object(
        Bucket=bucket, Key=chain.archive.checkpoint_key(9), Body=_forge(claim, mallory)
    )
    # One naming the archive's key id with a signature that is not the archive's.
    await client.put_object(
        Bucket=bucket,
        Key=chain.archive.checkpoint_key(8),
        Body=_forge({**claim, "seq": 8}, mallory, key_id=real.signing_key_id),
    )
    # An overwrite of the real checkpoint (a new version of its key) claiming another MAC.
    await client.put_object(
        Bucket=bucket,
        Key=chain.archive.checkpoint_key(3),
        Body=_forge({**claim, "seq": 3, "mac": "cd" * 32}, mallory),
    )

    report = await chain.archive.verify_chain()
    assert report.report.ok, report.report.first_break  # still anchored by the real one
    assert report.checkpoint is not None and report.checkpoint.checkpoint == real
    problems = sorted(r.problem or "" for r in report.refused)
    assert len(problems) == 3
    assert sum("unknown key" in p for p in problems) == 2
    assert sum("signature does not verify" in p for p in problems) == 1
    assert not report.ok  # forged objects in the archive are themselves evidence

    result = await asyncio.to_thread(cli_verify, chain.name)
    assert result.exit_code == 2
    assert "refused checkpoint" in result.output and "verified" in result.output

    # The checkpointer is not fooled either: it still extends the real checkpoint.
    await chain.fill(1)
    nxt = await chain.archive.checkpoint()
    assert nxt.written and nxt.checkpoint and nxt.checkpoint.prev_seq == 3


async def test_delete_marker_does_not_hide_a_checkpoint(chain: Chain, store: ObjectStore) -> None:
    await chain.fill(4)
    await chain.archive.checkpoint()
    await chain.cut_tail(keep=2)
    # Hide the checkpoint: a plain DELETE on a versioned bucket only adds a delete marker.
    await store.client.delete_object(
        Bucket=chain.archive.bucket, Key=chain.archive.checkpoint_key(4)
    )
    report = await chain.archive.verify_chain()
    brk = report.report.first_break
    assert brk is not None and brk.kind == "truncated" and brk.missing_range == "seq 3..4"
    assert any("delete marker" in (r.problem or "") for r in report.refused)


async def test_public_keys_alone_verify_and_pinning_refuses_other_keys(
    stack: Settings,
    app_pool: Any,
    keyring: Keyring,
    store: ObjectStore,
    chain: Chain,
    tmp_path: Any,
) -> None:
    await chain.fill(2)
    await chain.archive.seal()
    pinned = ArchiveKeys.from_pem(ArchiveKeys.from_keyring(keyring).to_pem())
    assert set(pinned.keys) == {ArchiveSigner.from_keyring(keyring).key_id}
    public_only = AuditArchive(stack, app_pool, keyring, store, chain.name, trusted_keys=pinned)
    assert (await public_only.verify_chain()).ok
    assert (await public_only.verify_archive()).ok

    other = ArchiveKeys([Ed25519PrivateKey.generate().public_key()])
    wrong = AuditArchive(stack, app_pool, keyring, store, chain.name, trusted_keys=other)
    report = await wrong.verify_chain()
    assert not report.ok and report.checkpoint is None
    assert all("unknown key" in (r.problem or "") for r in report.refused)
    archive_report = await wrong.verify_archive()
    assert not archive_report.ok and archive_report.first_discrepancy is not None
    assert "unknown key" in archive_report.first_discrepancy.problem

    pem = tmp_path / "other.pem"
    pem.write_text(other.to_pem())
    result = await asyncio.to_thread(cli_verify, chain.name, "--public-key", str(pem))
    assert result.exit_code == 2 and "refused checkpoint" in result.output
    good = tmp_path / "archive.pem"
    good.write_text(pinned.to_pem())
    result = await asyncio.to_thread(cli_verify, chain.name, "--public-key", str(good))
    assert result.exit_code == 0, result.output
    assert "anchored by the signed checkpoint" in result.output


async def test_checkpoint_is_idempotent_and_chained(chain: Chain) -> None:
    assert not (await chain.archive.checkpoint()).written  # an empty chain: nothing to sign
    await chain.fill(2)
    first = await chain.archive.checkpoint()
    again = await chain.archive.checkpoint()
    assert first.written and not again.written
    assert again.checkpoint == first.checkpoint
    await chain.fill(1)
    second = await chain.archive.checkpoint()
    assert second.checkpoint and first.checkpoint
    assert (second.checkpoint.seq, second.checkpoint.prev_seq) == (3, 2)
    assert second.checkpoint.prev_mac == first.checkpoint.mac
    # Concurrent checkpointers serialise and converge.
    await chain.fill(2)
    results = await asyncio.gather(*(chain.archive.checkpoint() for _ in range(4)))
    assert sum(r.written for r in results) == 1
    assert {r.checkpoint.seq for r in results if r.checkpoint} == {5}
    report = await chain.archive.verify_chain()
    assert report.ok and report.unanchored_entries == 0


async def test_cli_reports_unanchored_chains(chain: Chain, admin_pool: asyncpg.Pool) -> None:
    await chain.fill(2)
    result = await asyncio.to_thread(cli_verify, chain.name)
    assert result.exit_code == 0, result.output
    assert "no signed checkpoint" in result.output
    await chain.archive.checkpoint()
    await chain.fill(1)
    result = await asyncio.to_thread(cli_verify, chain.name)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "3 entries intact" in out and "at entry 2" in out
    assert "1 newer entry is not yet checkpointed" in out
