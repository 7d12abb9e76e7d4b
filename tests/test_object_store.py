"""ObjectStore against a real SeaweedFS: multipart, encryption at rest, verification."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session

from clinflow.envelope import EnvelopeError, envelope_size
from clinflow.keyring import Keyring
from clinflow.object_store import (
    ObjectIntegrityError,
    ObjectNotFound,
    ObjectStore,
    StoredObject,
    _PartPool,
)
from clinflow.settings import Settings

MiB = 1024 * 1024


@pytest.fixture
def v1(stack: Settings) -> Settings:
    """Settings whose stores embed wrapped data keys (envelope v1); escrow has its own tests."""
    return stack.model_copy(update={"retention_key_escrow": False})


@pytest.fixture
async def store(v1: Settings, keyring: Keyring) -> AsyncIterator[ObjectStore]:
    async with ObjectStore(v1, keyring) as s:
        yield s


async def test_default_store_escrows_data_keys(stack: Settings, keyring: Keyring) -> None:
    assert stack.retention_key_escrow
    async with ObjectStore(stack, keyring) as store:
        ref = await store.put_bytes(stack.s3_bucket_documents, new_key("escrowed"), b"x" * 100)
        assert ref.escrow_key_id is not None
        assert await store.get_bytes(ref.bucket, ref.key) == b"x" * 100


@pytest.fixture
async def raw_client(stack: Settings) -> AsyncIterator[Any]:
    async with get_session().create_client(
        "s3",
        endpoint_url=stack.s3_endpoint_url,
        region_name=stack.s3_region,
        aws_access_key_id=stack.s3_access_key,
        aws_secret_access_key=stack.s3_secret_key.get_secret_value(),
    ) as client:
        yield client


def new_key(label: str) -> str:
    return f"test/{label}/{uuid.uuid4().hex}"


def pseudo_random(size: int, seed: int = 7) -> bytes:
    """Deterministic incompressible bytes (SHAKE-256 stream)."""
    return hashlib.shake_256(seed.to_bytes(8, "big")).digest(size)


async def stream(data: bytes, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), chunk):
        yield data[i : i + chunk]


async def raw_bytes(raw_client: Any, bucket: str, key: str) -> tuple[bytes, dict[str, str]]:
    resp = await raw_client.get_object(Bucket=bucket, Key=key)
    async with resp["Body"] as body:
        return await body.read(), resp["Metadata"]


async def collect(it: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in it])


@pytest.mark.stack
async def test_ensure_buckets_is_idempotent(store: ObjectStore, stack: Settings) -> None:
    first = await store.ensure_buckets()
    assert set(first) <= set(stack.all_buckets)
    assert await store.ensure_buckets() == []
    extra = f"clinflow-test-{uuid.uuid4().hex[:8]}"
    assert await store.ensure_buckets((extra,)) == [extra]
    assert await store.ensure_buckets((extra,)) == []


@pytest.mark.stack
async def test_multipart_upload_encrypted_round_trip(
    store: ObjectStore, raw_client: Any, stack: Settings
) -> None:
    assert stack.s3_part_size == 5 * MiB
    data = pseudo_random(20_000_000)
    bucket, key = stack.s3_bucket_documents, new_key("multipart")

    ref = await store.upload(bucket, key, stream(data), content_type="application/pdf")

    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.size == len(data)
    assert ref.kek_id == store._keyring.active("object")[0]
    assert ref.stored_size == envelope_size(len(data), ref.kek_id, 1024 * 1024)
    assert ref.etag.endswith("-4")  # 20 MB + envelope overhead in 5 MiB parts

    stored, meta = await raw_bytes(raw_client, bucket, key)
    assert len(stored) == ref.stored_size
    assert data[:4096] not in stored and data[-4096:] not in stored
    assert meta["clinflow-sha256"] == ref.sha256
    assert meta["clinflow-size"] == str(len(data))
    assert meta["clinflow-kek-id"] == ref.kek_id
    assert meta["clinflow-content-type"] == "application/pdf"

    assert await store.head(bucket, key) == ref
    assert await collect(store.download(bucket, key, expected_sha256=ref.sha256)) == data


@pytest.mark.stack
async def test_small_object_text_is_not_stored_in_clear(
    store: ObjectStore, raw_client: Any, stack: Settings
) -> None:
    text = b"Protocol CF-101 site 0042 investigator brochure v3 " * 100
    bucket, key = stack.s3_bucket_documents, new_key("small")
    ref = await store.put_bytes(bucket, key, text, content_type="text/plain")
    stored, _ = await raw_bytes(raw_client, bucket, key)
    assert b"investigator brochure" not in stored
    assert not ref.etag.endswith("-1")
    assert await store.get_bytes(bucket, key, expected_sha256=ref.sha256) == text


@pytest.mark.stack
@pytest.mark.parametrize("size", [0, 1, 5 * MiB - 500, 5 * MiB, 5 * MiB + 1])
async def test_sizes_around_the_part_boundary(
    store: ObjectStore, stack: Settings, size: int
) -> None:
    data = pseudo_random(size, seed=size)
    bucket, key = stack.s3_bucket_batches, new_key(f"edge-{size}")
    ref = await store.upload(bucket, key, stream(data, chunk=777_777))
    assert (ref.size, ref.sha256) == (size, hashlib.sha256(data).hexdigest())
    assert await collect(store.download(bucket, key)) == data


@pytest.mark.stack
async def test_upload_from_file_path(store: ObjectStore, stack: Settings, tmp_path: Path) -> None:
    data = pseudo_random(6 * MiB + 3, seed=3)
    path = tmp_path / "packet.bin"
    path.write_bytes(data)
    bucket, key = stack.s3_bucket_documents, new_key("file")
    ref = await store.upload(bucket, key, path)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert await collect(store.download(bucket, key)) == data


@pytest.mark.stack
async def test_sha_mismatch_is_detected(store: ObjectStore, stack: Settings) -> None:
    bucket, key = stack.s3_bucket_documents, new_key("mismatch")
    ref = await store.put_bytes(bucket, key, b"approved consent form v2")
    wrong = hashlib.sha256(b"approved consent form v1").hexdigest()
    with pytest.raises(ObjectIntegrityError) as err:
        await collect(store.download(bucket, key, expected_sha256=wrong))
    assert err.value.code == "object_sha256_mismatch"
    assert err.value.details == {"expected": wrong, "actual": ref.sha256, "size": ref.size}


@pytest.mark.stack
async def test_tampered_stored_bytes_are_detected(
    store: ObjectStore, raw_client: Any, stack: Settings
) -> None:
    bucket, key = stack.s3_bucket_documents, new_key("tamper")
    await store.put_bytes(bucket, key, pseudo_random(3 * MiB))
    stored, meta = await raw_bytes(raw_client, bucket, key)
    flipped = bytearray(stored)
    flipped[len(flipped) // 2] ^= 0x01
    await raw_client.put_object(Bucket=bucket, Key=key, Body=bytes(flipped), Metadata=meta)
    with pytest.raises(EnvelopeError) as err:
        await collect(store.download(bucket, key))
    assert err.value.code == "envelope_tampered"


@pytest.mark.stack
async def test_rotated_object_key_still_reads(stack: Settings, keyring: Keyring) -> None:
    ring = Keyring.from_json(keyring.to_json())
    bucket = stack.s3_bucket_documents
    async with ObjectStore(stack.model_copy(update={"retention_key_escrow": False}), ring) as store:
        old = await store.put_bytes(bucket, new_key("rot-old"), b"before rotation")
        ring.rotate("object")
        new = await store.put_bytes(bucket, new_key("rot-new"), b"after rotation")
        assert old.kek_id != new.kek_id
        assert await store.get_bytes(bucket, old.key) == b"before rotation"
        assert await store.get_bytes(bucket, new.key) == b"after rotation"
    async with ObjectStore(
        stack.model_copy(update={"retention_key_escrow": False}), Keyring.generate()
    ) as stranger:
        with pytest.raises(EnvelopeError) as err:
            await stranger.get_bytes(bucket, new.key)
        assert err.value.code == "envelope_unknown_kek"


@pytest.mark.stack
async def test_plain_objects_are_stored_as_is(
    store: ObjectStore, raw_client: Any, stack: Settings
) -> None:
    manifest = b'{"checklist": "EU-CTR", "version": 3}'
    bucket, key = stack.s3_bucket_documents, new_key("plain")
    ref = await store.put_bytes(bucket, key, manifest, content_type="application/json", plain=True)
    assert ref.kek_id is None and not ref.encrypted
    stored, _ = await raw_bytes(raw_client, bucket, key)
    assert stored == manifest
    url = await store.presigned_get_url(bucket, key, expires_in=300)
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        assert await resp.read() == manifest
    assert await store.get_bytes(bucket, key) == manifest


@pytest.mark.stack
async def test_failed_multipart_upload_is_aborted(
    store: ObjectStore, raw_client: Any, stack: Settings
) -> None:
    bucket, key = stack.s3_bucket_batches, new_key("abort")

    async def failing() -> AsyncIterator[bytes]:
        for _ in range(12):
            yield pseudo_random(MiB)
        raise RuntimeError("source went away")

    with pytest.raises(RuntimeError, match="source went away"):
        await store.upload(bucket, key, failing())
    assert not await store.exists(bucket, key)
    uploads = await raw_client.list_multipart_uploads(Bucket=bucket, Prefix=key)
    assert uploads.get("Uploads", []) == []


@pytest.mark.stack
async def test_head_exists_delete_list(store: ObjectStore, stack: Settings) -> None:
    bucket, prefix = stack.s3_bucket_quarantine, new_key("listing")
    keys = [f"{prefix}/{name}" for name in ("b", "a", "c/d")]
    for k in keys:
        await store.put_bytes(bucket, k, k.encode())
    await store.put_bytes(bucket, f"{prefix}-sibling", b"outside")
    assert [k async for k in store.list_keys(bucket, prefix + "/")] == sorted(keys)

    assert await store.exists(bucket, keys[0])
    await store.delete(bucket, keys[0])
    await store.delete(bucket, keys[0])  # idempotent
    assert not await store.exists(bucket, keys[0])
    with pytest.raises(ObjectNotFound):
        await store.head(bucket, keys[0])
    with pytest.raises(ObjectNotFound):
        await collect(store.download(bucket, keys[0]))


@pytest.mark.stack
async def test_get_bytes_refuses_large_objects(store: ObjectStore, stack: Settings) -> None:
    bucket, key = stack.s3_bucket_documents, new_key("large")
    await store.put_bytes(bucket, key, b"x" * 5000)
    with pytest.raises(ObjectIntegrityError) as err:
        await store.get_bytes(bucket, key, max_bytes=1000)
    assert err.value.code == "object_too_large"


async def test_stored_object_is_a_small_serialisable_reference() -> None:
    ref = StoredObject(
        bucket="b", key="k", sha256="0" * 64, size=1, stored_size=2, kek_id=None, etag="e"
    )
    assert StoredObject.model_validate_json(ref.model_dump_json()) == ref
    with pytest.raises(ValueError):
        StoredObject(
            bucket="b", key="k", sha256="xyz", size=1, stored_size=2, kek_id=None, etag="e"
        )


async def test_part_pool_bounds_concurrency() -> None:
    pool = _PartPool(limit=2)
    running = 0
    peak = 0

    async def job(n: int) -> dict[str, Any]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return {"PartNumber": n, "ETag": str(n)}

    for n in (3, 1, 2, 5, 4):
        await pool.submit(job(n))
    parts = await pool.drain()
    assert peak == 2
    assert [p["PartNumber"] for p in parts] == [1, 2, 3, 4, 5]


async def test_part_pool_surfaces_first_failure() -> None:
    pool = _PartPool(limit=1)

    async def boom() -> dict[str, Any]:
        raise OSError("connection reset")

    async def fine() -> dict[str, Any]:
        return {"PartNumber": 2, "ETag": "x"}

    await pool.submit(boom())
    with pytest.raises(OSError, match="connection reset"):
        await pool.submit(fine())
    await pool.cancel()
