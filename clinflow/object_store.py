"""Encrypted, streaming object storage on any S3-compatible server.

Objects are envelope-encrypted in this process before they leave it (see
``clinflow.envelope``); the server only ever holds ciphertext. Uploads stream:
the plaintext SHA-256 and size are computed on the way through, and parts go up
with bounded concurrency, so memory stays near ``s3_part_size x
s3_max_concurrency`` whatever the object size. Downloads decrypt as they stream
and can verify the plaintext SHA-256 at the end.

User metadata on every object written here (``x-amz-meta-*``):
``clinflow-sha256``, ``clinflow-size`` (plaintext), ``clinflow-content-type``,
``clinflow-encryption`` (``aes-256-gcm-envelope-v1`` or ``none``) and
``clinflow-kek-id`` (encrypted objects only), and ``clinflow-escrow-key-id`` for
objects whose data key is escrowed (``aes-256-gcm-envelope-v2-escrowed``; see
``clinflow.key_escrow``: such objects can be crypto-shredded).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from collections.abc import AsyncIterable, AsyncIterator, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from clinflow.envelope import (
    DEFAULT_SEGMENT_SIZE,
    EnvelopeDecryptor,
    EnvelopeEncryptor,
    EnvelopeError,
    EnvelopeSegmentReader,
)
from clinflow.errors import FatalSchemaMismatch, RecoverableTimeout
from clinflow.key_escrow import KeyEscrow, LazyPool, new_escrow_id
from clinflow.keyring import Keyring
from clinflow.settings import Settings

ENCRYPTION_ENVELOPE: Final = "aes-256-gcm-envelope-v1"
ENCRYPTION_ESCROWED: Final = "aes-256-gcm-envelope-v2-escrowed"
ENCRYPTION_NONE: Final = "none"
META_SHA256: Final = "clinflow-sha256"
META_SIZE: Final = "clinflow-size"
META_CONTENT_TYPE: Final = "clinflow-content-type"
META_ENCRYPTION: Final = "clinflow-encryption"
META_KEK_ID: Final = "clinflow-kek-id"
META_ESCROW_ID: Final = "clinflow-escrow-key-id"
DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"
READ_CHUNK: Final = 1024 * 1024
SMALL_OBJECT_LIMIT: Final = 64 * 1024 * 1024

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})
_TRANSIENT_CODES = frozenset(
    {"RequestTimeout", "SlowDown", "ServiceUnavailable", "InternalError", "Throttling"}
)


class ObjectNotFound(FatalSchemaMismatch):
    """The bucket or key does not exist (code ``object_not_found``)."""


class ObjectIntegrityError(FatalSchemaMismatch):
    """The object's content is not what was expected.

    Codes: ``object_sha256_mismatch`` (``details`` has expected/actual digests),
    ``object_size_mismatch``, ``object_metadata_missing`` (not written by
    ObjectStore), ``object_too_large`` (get_bytes limit).
    """


class ObjectStoreUnavailable(RecoverableTimeout):
    """The store could not be reached or answered with a transient error; retry later."""


class ObjectStoreRequestError(FatalSchemaMismatch):
    """The store refused the request (permissions, bad name...); retrying will not help."""


class StoredObject(BaseModel):
    """Claim-check reference to a stored object: what workflow histories carry.

    ``sha256`` and ``size`` describe the plaintext; ``stored_size`` the bytes on
    the server; ``kek_id`` is None for objects stored unencrypted.
    """

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    sha256: str = Field(pattern=_SHA256_RE.pattern)
    size: int = Field(ge=0)
    stored_size: int = Field(ge=0)
    kek_id: str | None
    etag: str
    content_type: str = DEFAULT_CONTENT_TYPE
    escrow_key_id: str | None = None

    @property
    def encrypted(self) -> bool:
        return self.kek_id is not None


def _etag(raw: object) -> str:
    return str(raw).strip('"')


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


@asynccontextmanager
async def _translated(operation: str, bucket: str, key: str = "") -> AsyncIterator[None]:
    """Map botocore failures onto the error taxonomy."""
    subject = f"s3://{bucket}/{key}"
    try:
        yield
    except ClientError as exc:
        code, status = _error_code(exc), _status(exc)
        details = {"operation": operation, "s3_code": code, "status": status}
        if code in _NOT_FOUND_CODES or status == 404:
            raise ObjectNotFound(
                "object_not_found", f"{subject} does not exist", subject=subject, details=details
            ) from exc
        if code in _TRANSIENT_CODES or status >= 500 or status in (408, 429):
            raise ObjectStoreUnavailable(
                "object_store_unavailable",
                f"{operation} {subject}: transient store error {code or status}",
                subject=subject,
                details=details,
            ) from exc
        raise ObjectStoreRequestError(
            "object_store_rejected",
            f"{operation} {subject}: store refused the request ({code or status})",
            subject=subject,
            details=details,
        ) from exc
    except BotoCoreError as exc:
        raise ObjectStoreUnavailable(
            "object_store_unavailable",
            f"{operation} {subject}: {type(exc).__name__}",
            subject=subject,
            details={"operation": operation},
        ) from exc


async def _file_chunks(path: Path, chunk_size: int = READ_CHUNK) -> AsyncIterator[bytes]:
    fh = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(fh.read, chunk_size):
            yield chunk
    finally:
        await asyncio.to_thread(fh.close)


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


class _PartPool:
    """At most ``limit`` part uploads in flight; the first failure surfaces at once."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pending: set[asyncio.Task[dict[str, Any]]] = set()
        self.parts: list[dict[str, Any]] = []

    def _collect(self, done: set[asyncio.Task[dict[str, Any]]]) -> None:
        for task in done:
            self._pending.discard(task)
            self.parts.append(task.result())

    async def reserve(self) -> None:
        """Wait until fewer than ``limit`` jobs run; raises the error of any failed job."""
        while len(self._pending) >= self._limit:
            done, _ = await asyncio.wait(self._pending, return_when=asyncio.FIRST_COMPLETED)
            self._collect(done)

    def start(self, job: Coroutine[Any, Any, dict[str, Any]]) -> None:
        self._pending.add(asyncio.create_task(job))

    async def submit(self, job: Coroutine[Any, Any, dict[str, Any]]) -> None:
        """``reserve`` then ``start``."""
        try:
            await self.reserve()
        except BaseException:
            job.close()
            raise
        self.start(job)

    async def drain(self) -> list[dict[str, Any]]:
        while self._pending:
            done, _ = await asyncio.wait(self._pending, return_when=asyncio.FIRST_COMPLETED)
            self._collect(done)
        return sorted(self.parts, key=lambda p: int(p["PartNumber"]))

    async def cancel(self) -> None:
        for task in self._pending:
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        self._pending.clear()


class _PartWriter:
    """Cuts a byte stream into parts and uploads them, holding one part being filled.

    Stays a single PUT while the stream fits in one part; switches to a multipart
    upload once a full part is followed by more data. Memory: the part being
    filled plus at most ``concurrency`` parts in flight.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        content_type: str,
        part_size: int,
        concurrency: int,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._content_type = content_type
        self._part_size = part_size
        self._pool = _PartPool(concurrency)
        self._part = io.BytesIO()
        self._part_no = 0
        self._upload_id: str | None = None
        self.stored = 0

    async def write(self, data: bytes, meta: dict[str, str]) -> None:
        """Append ``data``; a full part is sent only once more data follows it."""
        with memoryview(data) as view:
            pos = 0
            while pos < len(view):
                filled = self._part.tell()
                if filled == self._part_size:
                    await self._flush(meta)
                    filled = 0
                n = min(self._part_size - filled, len(view) - pos)
                self._part.write(view[pos : pos + n])
                pos += n
        self.stored += len(data)

    async def _flush(self, meta: dict[str, str]) -> None:
        if self._upload_id is None:
            async with _translated("create_multipart_upload", self._bucket, self._key):
                resp = await self._client.create_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._key,
                    ContentType=self._content_type,
                    Metadata=meta,
                )
            self._upload_id = str(resp["UploadId"])
        await self._pool.reserve()
        self._part_no += 1
        body, self._part = self._part, io.BytesIO()
        body.seek(0)
        self._pool.start(self._send(self._upload_id, self._part_no, body))

    async def _send(self, upload_id: str, number: int, body: io.BytesIO) -> dict[str, Any]:
        # A BytesIO that owns its buffer goes out without another copy (a bytes
        # body would be wrapped in a BytesIO and copied again by the HTTP layer).
        async with _translated("upload_part", self._bucket, self._key):
            resp = await self._client.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
            )
        return {"PartNumber": number, "ETag": resp["ETag"]}

    async def finish(self, meta: dict[str, str]) -> str:
        """Send what remains; returns the ETag of the finished object."""
        self._part.seek(0)
        if self._upload_id is None:
            async with _translated("put_object", self._bucket, self._key):
                resp = await self._client.put_object(
                    Bucket=self._bucket,
                    Key=self._key,
                    Body=self._part,
                    ContentType=self._content_type,
                    Metadata=meta,
                )
            return _etag(resp["ETag"])
        await self._pool.reserve()
        self._part_no += 1
        self._pool.start(self._send(self._upload_id, self._part_no, self._part))
        parts = await self._pool.drain()
        async with _translated("complete_multipart_upload", self._bucket, self._key):
            await self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        self._upload_id = None
        # The digest is known only after the last part; a self-copy with REPLACE
        # rewrites the metadata without moving the data (S3 limit: 5 GB objects).
        async with _translated("copy_object", self._bucket, self._key):
            resp = await self._client.copy_object(
                Bucket=self._bucket,
                Key=self._key,
                CopySource={"Bucket": self._bucket, "Key": self._key},
                MetadataDirective="REPLACE",
                ContentType=self._content_type,
                Metadata=meta,
            )
        return _etag(resp["CopyObjectResult"]["ETag"])

    async def abort(self) -> None:
        """Cancel parts in flight and abort an unfinished multipart upload (best effort)."""
        await self._pool.cancel()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                await asyncio.shield(
                    self._client.abort_multipart_upload(
                        Bucket=self._bucket, Key=self._key, UploadId=upload_id
                    )
                )
            except (ClientError, BotoCoreError):
                pass  # the original failure matters more; lifecycle rules sweep leftovers


class ObjectStore:
    """Async S3 client for clinflow's buckets, encrypting by default.

    Use as ``async with ObjectStore(settings, keyring) as store: ...``. Every
    method raises ObjectNotFound, ObjectStoreUnavailable (retryable) or
    ObjectStoreRequestError rather than botocore exceptions.
    """

    def __init__(
        self,
        settings: Settings,
        keyring: Keyring,
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        escrow: KeyEscrow | None = None,
    ) -> None:
        """``escrow``: when given, encrypted uploads escrow their data key (envelope v2,
        crypto-shreddable) and escrowed objects can be read. Without it, a store whose
        settings say ``retention_key_escrow`` escrows through a lazily opened pool of its
        own; otherwise uploads embed the wrapped key (envelope v1) and reading an escrowed
        object raises EnvelopeError (``envelope_key_unavailable``)."""
        self._settings = settings
        self._keyring = keyring
        self._segment_size = segment_size
        self._escrow = escrow
        self._own_escrow = False
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    async def __aenter__(self) -> Self:
        s = self._settings
        config = AioConfig(
            max_pool_connections=max(10, 2 * s.s3_max_concurrency),
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        stack = AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(
                get_session().create_client(
                    "s3",
                    endpoint_url=s.s3_endpoint_url,
                    region_name=s.s3_region,
                    aws_access_key_id=s.s3_access_key,
                    aws_secret_access_key=s.s3_secret_key.get_secret_value(),
                    config=config,
                )
            )
        except BaseException:
            await stack.aclose()
            raise
        if self._escrow is None and s.retention_key_escrow:
            # Escrow every data key (crypto-shreddable objects); connect only when needed.
            lazy = LazyPool(s.app_dsn())
            stack.push_async_callback(lazy.close)
            self._escrow = KeyEscrow(lazy, self._keyring)
            self._own_escrow = True
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = None
        self._client = None
        if self._own_escrow:
            self._escrow = None
            self._own_escrow = False

    @property
    def client(self) -> Any:
        """The underlying aiobotocore S3 client (for operations not wrapped here)."""
        if self._client is None:
            raise RuntimeError("ObjectStore used outside 'async with'")
        return self._client

    # -- buckets -----------------------------------------------------------

    async def ensure_buckets(self, buckets: tuple[str, ...] | None = None) -> list[str]:
        """Create the project's buckets (``settings.all_buckets`` by default) if missing.

        Idempotent and safe to race; returns the names it actually created.
        """
        created: list[str] = []
        for bucket in buckets or self._settings.all_buckets:
            try:
                async with _translated("create_bucket", bucket):
                    await self.client.create_bucket(Bucket=bucket)
                created.append(bucket)
            except ObjectStoreRequestError as exc:
                if exc.details.get("s3_code") not in (
                    "BucketAlreadyOwnedByYou",
                    "BucketAlreadyExists",
                ):
                    raise
        return created

    # -- upload ------------------------------------------------------------

    async def upload(
        self,
        bucket: str,
        key: str,
        source: AsyncIterable[bytes] | Path,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        plain: bool = False,
    ) -> StoredObject:
        """Stream ``source`` (async byte chunks or a file path) into ``bucket/key``.

        Encrypted unless ``plain``. Objects larger than one part go up as a
        multipart upload of ``s3_part_size`` parts, ``s3_max_concurrency`` at a
        time; a failed multipart upload is aborted. Overwrites an existing key
        (so a retried upload of the same content is idempotent).
        """
        chunks = _file_chunks(source) if isinstance(source, Path) else source
        escrow_id = new_escrow_id() if self._escrow is not None and not plain else None
        encryptor = (
            None
            if plain
            else EnvelopeEncryptor(
                self._keyring, segment_size=self._segment_size, escrow_key_id=escrow_id
            )
        )
        kek_id = encryptor.kek_id if encryptor else None
        meta = {
            META_CONTENT_TYPE: content_type,
            META_ENCRYPTION: ENCRYPTION_NONE
            if plain
            else (ENCRYPTION_ESCROWED if escrow_id else ENCRYPTION_ENVELOPE),
        }
        if kek_id is not None:
            meta[META_KEK_ID] = kek_id
        if escrow_id is not None and encryptor is not None and encryptor.escrow_deposit:
            # The key is on record before any byte of the object exists.
            assert self._escrow is not None
            await self._escrow.deposit(encryptor.escrow_deposit, bucket, key)
            meta[META_ESCROW_ID] = escrow_id
        writer = _PartWriter(
            self.client,
            bucket,
            key,
            content_type=content_type if plain else DEFAULT_CONTENT_TYPE,
            part_size=self._settings.s3_part_size,
            concurrency=self._settings.s3_max_concurrency,
        )
        hasher = hashlib.sha256()
        size = 0
        try:
            async for chunk in chunks:
                hasher.update(chunk)
                size += len(chunk)
                await writer.write(encryptor.update(chunk) if encryptor else chunk, meta)
            if encryptor is not None:
                await writer.write(encryptor.finish(), meta)
            sha256 = hasher.hexdigest()
            etag = await writer.finish(meta | {META_SHA256: sha256, META_SIZE: str(size)})
        except BaseException:
            await writer.abort()
            raise
        return StoredObject(
            bucket=bucket,
            key=key,
            sha256=sha256,
            size=size,
            stored_size=writer.stored,
            kek_id=kek_id,
            etag=etag,
            content_type=content_type,
            escrow_key_id=escrow_id,
        )

    async def put_bytes(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        plain: bool = False,
    ) -> StoredObject:
        """Store a small in-memory object (encrypted unless ``plain``)."""
        return await self.upload(
            bucket, key, _one_chunk(data), content_type=content_type, plain=plain
        )

    # -- download ----------------------------------------------------------

    async def download(
        self,
        bucket: str,
        key: str,
        *,
        expected_sha256: str | None = None,
        chunk_size: int = READ_CHUNK,
    ) -> AsyncIterator[bytes]:
        """Stream the plaintext of ``bucket/key``, decrypting as it arrives.

        At the end the plaintext SHA-256 is checked against ``expected_sha256``
        (or, when not given, the digest recorded at upload) and the size against
        the recorded size; a mismatch raises ObjectIntegrityError after the last
        chunk. Tampered or truncated ciphertext raises EnvelopeError. Consumers
        that must not act on unverified bytes should buffer or stage until the
        iterator completes.
        """
        async with _translated("get_object", bucket, key):
            resp = await self.client.get_object(Bucket=bucket, Key=key)
        meta: dict[str, str] = resp.get("Metadata", {})
        encrypted = meta.get(META_ENCRYPTION) in (ENCRYPTION_ENVELOPE, ENCRYPTION_ESCROWED)
        data_keys: dict[str, bytes] = {}
        escrow_id = meta.get(META_ESCROW_ID)
        decryptor = EnvelopeDecryptor(self._keyring, data_keys=data_keys) if encrypted else None
        hasher = hashlib.sha256()
        size = 0
        subject = f"s3://{bucket}/{key}"
        async with resp["Body"] as body:
            if encrypted and escrow_id is not None and self._escrow is not None:
                data_keys[escrow_id] = await self._escrow.data_key(escrow_id)
            while True:
                async with _translated("get_object", bucket, key):
                    raw = await body.read(chunk_size)
                if not raw:
                    break
                plain = decryptor.update(raw) if decryptor else raw
                if plain:
                    hasher.update(plain)
                    size += len(plain)
                    yield plain
        if decryptor is not None:
            tail = decryptor.finish()
            if tail:
                hasher.update(tail)
                size += len(tail)
                yield tail
        want = expected_sha256 or meta.get(META_SHA256)
        actual = hasher.hexdigest()
        if want is not None and actual != want.lower():
            raise ObjectIntegrityError(
                "object_sha256_mismatch",
                f"{subject}: plaintext SHA-256 differs from the expected digest",
                subject=subject,
                details={"expected": want, "actual": actual, "size": size},
            )
        recorded = meta.get(META_SIZE)
        if recorded is not None and recorded != str(size):
            raise ObjectIntegrityError(
                "object_size_mismatch",
                f"{subject}: plaintext is {size} bytes, {recorded} recorded",
                subject=subject,
                details={"expected": recorded, "actual": size},
            )

    async def get_bytes(
        self,
        bucket: str,
        key: str,
        *,
        expected_sha256: str | None = None,
        max_bytes: int = SMALL_OBJECT_LIMIT,
    ) -> bytes:
        """The whole verified plaintext of a small object (refuses above ``max_bytes``)."""
        out = bytearray()
        async for chunk in self.download(bucket, key, expected_sha256=expected_sha256):
            out += chunk
            if len(out) > max_bytes:
                raise ObjectIntegrityError(
                    "object_too_large",
                    f"s3://{bucket}/{key} exceeds {max_bytes} bytes; stream it with download()",
                    subject=f"s3://{bucket}/{key}",
                    details={"max_bytes": max_bytes},
                )
        return bytes(out)

    async def download_range(
        self,
        bucket: str,
        key: str,
        start: int,
        end: int | None = None,
        *,
        chunk_size: int = READ_CHUNK,
    ) -> AsyncIterator[bytes]:
        """Stream the plaintext bytes ``[start, end)`` of ``bucket/key`` with ranged GETs.

        Never reads the whole object: for an envelope-encrypted object only the header and the
        segments overlapping the range are fetched and each is authenticated before release
        (EnvelopeError on tampering); objects without clinflow metadata are read as plain bytes.
        ``end`` None (or past the end) means the end of the object. The whole-object SHA-256 is
        not checked (callers verify ranges by other means, e.g. signed chunks).
        """
        async with _translated("head_object", bucket, key):
            head = await self.client.head_object(Bucket=bucket, Key=key)
        meta: dict[str, str] = head.get("Metadata", {})
        stored = int(head["ContentLength"])
        encryption = meta.get(META_ENCRYPTION)
        if encryption not in (ENCRYPTION_ENVELOPE, ENCRYPTION_ESCROWED):
            stop = stored if end is None else min(end, stored)
            if start < stop:
                async for chunk in self._ranged(bucket, key, start, stop, chunk_size):
                    yield chunk
            return
        size = int(meta[META_SIZE]) if META_SIZE in meta else None
        prefix = bytearray()
        async for chunk in self._ranged(bucket, key, 0, min(stored, 1024), 1024):
            prefix += chunk
        data_key = None
        if encryption == ENCRYPTION_ESCROWED:
            escrow_id = meta.get(META_ESCROW_ID)
            if self._escrow is None or escrow_id is None:
                raise EnvelopeError(
                    "envelope_key_unavailable",
                    f"{bucket}/{key} has an escrowed data key and this store has no escrow",
                    details={"escrow_key_id": escrow_id},
                )
            data_key = await self._escrow.data_key(escrow_id)
        reader = EnvelopeSegmentReader.from_prefix(self._keyring, bytes(prefix), data_key=data_key)
        if size is None:
            full, rest = divmod(stored - reader.header_length, reader.sealed_size)
            size = full * reader.segment_size + max(rest - 16, 0)
        stop = size if end is None else min(end, size)
        if start >= stop:
            return
        seg = reader.segment_size
        first, last = start // seg, (stop - 1) // seg
        final_index = reader.segment_count(size) - 1
        c_start = reader.segment_offset(first)
        c_end = min(reader.segment_offset(last + 1), stored)
        buf = bytearray()
        index = first

        def release(sealed: bytes | bytearray, i: int) -> bytes:
            plain = reader.open_segment(i, bytes(sealed), final=i == final_index)
            lo = max(start - i * seg, 0)
            hi = min(stop - i * seg, len(plain))
            return plain[lo:hi]

        async for chunk in self._ranged(bucket, key, c_start, c_end, reader.sealed_size):
            buf += chunk
            while len(buf) >= reader.sealed_size and index <= last:
                out = release(buf[: reader.sealed_size], index)
                del buf[: reader.sealed_size]
                index += 1
                if out:
                    yield out
        if buf and index <= last:
            out = release(buf, index)
            if out:
                yield out

    async def _ranged(
        self, bucket: str, key: str, start: int, stop: int, chunk_size: int
    ) -> AsyncIterator[bytes]:
        """Raw stored bytes ``[start, stop)`` from one ranged GET."""
        async with _translated("get_object", bucket, key):
            resp = await self.client.get_object(
                Bucket=bucket, Key=key, Range=f"bytes={start}-{stop - 1}"
            )
        async with resp["Body"] as body:
            while True:
                async with _translated("get_object", bucket, key):
                    raw = await body.read(chunk_size)
                if not raw:
                    break
                yield raw

    # -- metadata and housekeeping ----------------------------------------

    async def head(self, bucket: str, key: str) -> StoredObject:
        """The reference of an object written by ObjectStore.

        Raises ObjectNotFound, or ObjectIntegrityError (``object_metadata_missing``)
        for objects that lack clinflow metadata.
        """
        async with _translated("head_object", bucket, key):
            resp = await self.client.head_object(Bucket=bucket, Key=key)
        meta: dict[str, str] = resp.get("Metadata", {})
        try:
            return StoredObject(
                bucket=bucket,
                key=key,
                sha256=meta[META_SHA256],
                size=int(meta[META_SIZE]),
                stored_size=int(resp["ContentLength"]),
                kek_id=meta.get(META_KEK_ID),
                etag=_etag(resp["ETag"]),
                content_type=meta.get(META_CONTENT_TYPE, DEFAULT_CONTENT_TYPE),
                escrow_key_id=meta.get(META_ESCROW_ID),
            )
        except (KeyError, ValueError) as exc:
            raise ObjectIntegrityError(
                "object_metadata_missing",
                f"s3://{bucket}/{key} was not written by ObjectStore (metadata incomplete)",
                subject=f"s3://{bucket}/{key}",
            ) from exc

    async def exists(self, bucket: str, key: str) -> bool:
        """Whether ``bucket/key`` exists (any object, clinflow-written or not)."""
        try:
            async with _translated("head_object", bucket, key):
                await self.client.head_object(Bucket=bucket, Key=key)
        except ObjectNotFound:
            return False
        return True

    async def delete(self, bucket: str, key: str) -> None:
        """Delete ``bucket/key``; idempotent (deleting a missing key succeeds)."""
        async with _translated("delete_object", bucket, key):
            await self.client.delete_object(Bucket=bucket, Key=key)

    async def list_keys(self, bucket: str, prefix: str = "") -> AsyncIterator[str]:
        """Every key under ``prefix`` in lexicographic order, paging as needed."""
        paginator = self.client.get_paginator("list_objects_v2")
        async with _translated("list_objects_v2", bucket, prefix):
            async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield str(item["Key"])

    async def presigned_get_url(self, bucket: str, key: str, *, expires_in: int = 3600) -> str:
        """A time-limited GET URL. It serves the stored bytes: ciphertext unless ``plain``."""
        async with _translated("generate_presigned_url", bucket, key):
            url = await self.client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
            )
        return str(url)
