"""Raw document contents: decrypted only for authorised roles, every access audited."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from clinflow.auth import AuthError, issue_token
from clinflow.document_access import DocumentNotFound, fetch_document
from clinflow.keyring import Keyring
from clinflow.object_store import ObjectStore
from clinflow.settings import Settings

pytestmark = pytest.mark.stack

CONTENT = b"%PDF-1.7 fictional IRB approval letter\n" * 200


@pytest.fixture
async def document_key(stack: Settings, keyring: Keyring, admin_pool: Any) -> str:
    sha = hashlib.sha256(CONTENT).hexdigest()
    site = f"SITE-T-{uuid.uuid4().hex[:8]}"
    key = f"doc-{sha}-{site}-v1.0"
    async with ObjectStore(stack, keyring) as store:
        ref = await store.put_bytes(stack.s3_bucket_documents, f"test/{key}", CONTENT)
    async with admin_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO packets (packet_id, site_id, protocol_number, protocol_version, region, "
            "manifest) VALUES ($1, $2, 'CFX-T', '1.0', 'us', '{}')",
            f"packet-{site}",
            site,
        )
        await conn.execute(
            "INSERT INTO packet_documents (document_key, packet_id, sha256, site_id, "
            "protocol_version, file_name, s3_bucket, s3_key, size_bytes) "
            "VALUES ($1, $2, $3, $4, '1.0', 'irb.pdf', $5, $6, $7)",
            key,
            f"packet-{site}",
            sha,
            site,
            ref.bucket,
            ref.key,
            len(CONTENT),
        )
    return key


async def _actions(pool: Any, key: str) -> list[tuple[str, str]]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT actor, action FROM audit_log WHERE subject_ref = $1 ORDER BY seq", key
        )
    return [(r["actor"], r["action"]) for r in rows]


async def test_authorised_role_gets_plaintext_and_is_audited(
    stack: Settings, keyring: Keyring, app_pool: Any, document_key: str, tmp_path: Path
) -> None:
    token = issue_token(keyring, "ra.reader", "regulatory_affairs", timedelta(minutes=5))
    out = tmp_path / "copy.pdf"
    copy = await fetch_document(
        stack, keyring, app_pool, document_key, token, out, reason="inspection"
    )
    assert out.read_bytes() == CONTENT
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert copy.sha256 == hashlib.sha256(CONTENT).hexdigest()
    assert await _actions(app_pool, document_key) == [("ra.reader", "document.accessed")]


@pytest.mark.parametrize(
    ("role", "issued_ago", "forge", "code"),
    [
        ("devops", timedelta(0), False, "ROLE_FORBIDDEN"),
        ("qa", timedelta(hours=1), False, "TOKEN_EXPIRED"),
        ("qa", timedelta(0), True, "TOKEN_INVALID"),
    ],
)
async def test_refused_access_writes_nothing_and_is_audited(
    stack: Settings,
    keyring: Keyring,
    app_pool: Any,
    document_key: str,
    tmp_path: Path,
    role: str,
    issued_ago: timedelta,
    forge: bool,
    code: str,
) -> None:
    signer = Keyring.generate() if forge else keyring
    issued = datetime.now(UTC) - issued_ago
    token = issue_token(signer, "someone", role, timedelta(minutes=5), now=issued)
    out = tmp_path / "copy.pdf"
    with pytest.raises(AuthError) as refused:
        await fetch_document(stack, keyring, app_pool, document_key, token, out, reason="x")
    assert refused.value.code == code
    assert not out.exists()
    assert [a for _, a in await _actions(app_pool, document_key)] == ["document.access_refused"]


async def test_unknown_document_is_a_clear_error(
    stack: Settings, keyring: Keyring, app_pool: Any, tmp_path: Path
) -> None:
    token = issue_token(keyring, "qa.reader", "qa", timedelta(minutes=5))
    with pytest.raises(DocumentNotFound, match="no stored document"):
        await fetch_document(
            stack, keyring, app_pool, "doc-nope", token, tmp_path / "x", reason="x"
        )
