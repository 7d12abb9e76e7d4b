"""Part 11 e-signatures: sign, verify, tamper; registry; re-verification from the audit chain."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from clinflow.audit_chain import AuditChain, AuditEntry
from clinflow.esign import (
    Decision,
    ESignatureError,
    SignatureMeaning,
    SignedDecision,
    generate_private_key,
    key_id,
    load_private_key,
    load_public_key,
    register_reviewer_key,
    reviewer_keys,
    sign_decision,
    verify_against_registry,
    verify_audit_signatures,
    verify_signed_decision,
    write_key_pair,
)
from clinflow.keyring import Keyring
from clinflow.settings import Settings

DOC_SHA = hashlib.sha256(b"site packet bytes").hexdigest()


def _decision(signer: str = "ra.lead", **changes: object) -> Decision:
    base: dict[str, object] = {
        "signer": signer,
        "printed_name": "R. Lead",
        "role": "regulatory_affairs",
        "meaning": SignatureMeaning.APPROVAL,
        "signed_at": datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
        "record_ref": "packet-site01-P123-v2",
        "record_sha256": DOC_SHA,
        "reason": "all documents present and valid",
    }
    base.update(changes)
    return Decision.model_validate(base)


def test_signed_decision_verifies_with_the_signers_key() -> None:
    key = generate_private_key()
    signed = sign_decision(key, _decision())
    verify_signed_decision(signed, key.public_key())
    assert signed.key_id == key_id(key.public_key())
    shown = signed.manifestation()
    assert "R. Lead" in shown and "approval" in shown and "2026-11-20 09:30:00 UTC" in shown


@pytest.mark.parametrize(
    "field,value",
    [
        ("meaning", "rejection"),
        ("record_sha256", hashlib.sha256(b"another document").hexdigest()),
        ("printed_name", "Someone Else"),
        ("signed_at", "2026-11-21T09:30:00+00:00"),
        ("reason", "changed after signing"),
        ("record_ref", "packet-site02-P123-v2"),
    ],
)
def test_any_change_after_signing_fails(field: str, value: str) -> None:
    key = generate_private_key()
    signed = sign_decision(key, _decision())
    raw = signed.model_dump(mode="json")
    raw["decision"][field] = value
    tampered = SignedDecision.model_validate(raw)
    with pytest.raises(ESignatureError) as caught:
        verify_signed_decision(tampered, key.public_key())
    assert caught.value.code == "esign_bad_signature"


def test_another_key_fails() -> None:
    signed = sign_decision(generate_private_key(), _decision())
    with pytest.raises(ESignatureError) as caught:
        verify_signed_decision(signed, generate_private_key().public_key())
    assert caught.value.code == "esign_bad_signature"
    # another signature pasted onto the decision (key id kept) fails too
    key = generate_private_key()
    mine = sign_decision(key, _decision())
    other = sign_decision(generate_private_key(), _decision())
    mixed = mine.model_copy(update={"signature": other.signature})
    with pytest.raises(ESignatureError) as swapped:
        verify_signed_decision(mixed, key.public_key())
    assert swapped.value.code == "esign_bad_signature"


def test_decision_validation() -> None:
    with pytest.raises(ValueError):
        _decision(signed_at=datetime(2026, 1, 1))  # naive time
    with pytest.raises(ValueError):
        _decision(record_sha256="not-a-hash")
    with pytest.raises(ValueError):
        _decision(meaning="maybe")
    local = _decision(signed_at=datetime(2026, 1, 1, 10, tzinfo=UTC) + timedelta(0))
    assert local.signed_at.tzinfo is UTC


def test_key_files(tmp_path: Path) -> None:
    key = generate_private_key()
    path = tmp_path / "keys" / "ra.lead.pem"
    pub = write_key_pair(key, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = load_private_key(path)
    assert key_id(again.public_key()) == key_id(load_public_key(pub.read_text()))
    with pytest.raises(FileExistsError):
        write_key_pair(key, path)
    with pytest.raises(ESignatureError) as caught:
        load_public_key("not a key")
    assert caught.value.code == "esign_bad_key"


# --------------------------------------------------------------------------- database
@pytest.mark.stack
async def test_registry_verifies_received_decisions(app_pool: asyncpg.Pool) -> None:
    user = f"ra-{uuid.uuid4().hex[:6]}"
    key = generate_private_key()
    first = await register_reviewer_key(app_pool, user, key.public_key(), registered_by="t")
    again = await register_reviewer_key(app_pool, user, key.public_key(), registered_by="t")
    assert first.created and not again.created
    assert [k.key_id for k in await reviewer_keys(app_pool, user)] == [first.key_id]
    with pytest.raises(ESignatureError) as taken:
        await register_reviewer_key(app_pool, "thief", key.public_key(), registered_by="t")
    assert taken.value.code == "esign_signer_mismatch"

    signed = sign_decision(key, _decision(signer=user))
    found = await verify_against_registry(app_pool, signed, record_sha256=DOC_SHA, signer=user)
    assert found.key_id == first.key_id

    cases: list[tuple[SignedDecision, dict[str, str], str]] = [
        (sign_decision(generate_private_key(), _decision(signer=user)), {}, "esign_unknown_key"),
        (sign_decision(key, _decision(signer="impostor")), {}, "esign_signer_mismatch"),
        (signed, {"record_sha256": "0" * 64}, "esign_record_mismatch"),
        (signed, {"signer": "someone"}, "esign_signer_mismatch"),
    ]
    for candidate, kwargs, code in cases:
        with pytest.raises(ESignatureError) as caught:
            await verify_against_registry(app_pool, candidate, **kwargs)
        assert caught.value.code == code


@pytest.mark.stack
async def test_audit_reverification_flags_a_tampered_decision(
    app_pool: asyncpg.Pool, keyring: Keyring
) -> None:
    user = f"ra-{uuid.uuid4().hex[:6]}"
    key = generate_private_key()
    await register_reviewer_key(app_pool, user, key.public_key(), registered_by="t")
    chain = f"esign-{uuid.uuid4().hex[:8]}"
    audit = AuditChain(app_pool, keyring, chain)
    good = sign_decision(key, _decision(signer=user))
    await audit.append(
        AuditEntry(
            actor=user,
            action="packet.review.approved",
            subject_ref=good.decision.record_ref,
            payload_sha256=DOC_SHA,
            details=good.audit_details(),
        )
    )
    clean = await verify_audit_signatures(app_pool, chain=chain)
    assert clean.ok and clean.checked == 1

    tampered = good.model_dump(mode="json")
    tampered["decision"]["meaning"] = "rejection"
    await audit.append(
        AuditEntry(
            actor=user,
            action="packet.review.rejected",
            subject_ref=good.decision.record_ref,
            payload_sha256=DOC_SHA,
            details={"signed_decision": tampered},
        )
    )
    other_record = sign_decision(key, _decision(signer=user))
    await audit.append(
        AuditEntry(
            actor=user,
            action="packet.review.approved",
            subject_ref="packet-elsewhere",
            payload_sha256=hashlib.sha256(b"other").hexdigest(),
            details=other_record.audit_details(),
        )
    )
    await audit.append(AuditEntry(actor="svc", action="packet.parsed", details={}))
    report = await verify_audit_signatures(app_pool, chain=chain)
    assert (report.checked, report.failed) == (3, 2)
    by_seq = {i.seq: i for i in report.items}
    assert by_seq[1].ok
    assert by_seq[2].code == "esign_bad_signature"
    assert by_seq[3].code == "esign_record_mismatch"
    assert (await audit.verify()).ok, "the HMAC chain itself is intact; the signature is not"


@pytest.mark.stack
def test_cli_keygen_register_and_verify_signatures(
    stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starters.cli import app

    runner = CliRunner()
    user = f"ra-{uuid.uuid4().hex[:6]}"
    out = tmp_path / f"{user}.pem"
    made = runner.invoke(app, ["auth", "keygen", "--user", user, "--out", str(out)])
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    pub = out.with_name(out.name + ".pub")
    reg = runner.invoke(app, ["auth", "register-key", "--user", user, "--public-key", str(pub)])
    assert reg.exit_code == 0, reg.output
    assert "registered" in reg.output
    chain = f"cli-{uuid.uuid4().hex[:8]}"
    ok = runner.invoke(app, ["audit", "verify-signatures", "--chain", chain, "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["checked"] == 0

    import asyncio

    from clinflow.db import create_pool

    async def append_tampered() -> None:
        pool = await create_pool(stack)
        try:
            signed = sign_decision(load_private_key(out), _decision(signer=user))
            raw = signed.model_dump(mode="json")
            raw["decision"]["reason"] = "edited"
            await AuditChain(pool, Keyring.load(stack), chain).append(
                AuditEntry(
                    actor=user,
                    action="packet.review.approved",
                    details={"signed_decision": raw},
                )
            )
        finally:
            await pool.close()

    asyncio.run(append_tampered())
    bad = runner.invoke(app, ["audit", "verify-signatures", "--chain", chain])
    assert bad.exit_code == 2, bad.output
