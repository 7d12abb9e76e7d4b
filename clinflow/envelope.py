"""Streaming AES-256-GCM envelope encryption for stored objects.

Every object gets a fresh random 256-bit data key. The data key is wrapped
(AES-256-GCM) with the key-encryption key (KEK): the keyring's active ``object``
key. The KEK id travels in the header, so objects written before a rotation
still open as long as the keyring keeps the old key.

Wire format (version 1)::

    header   magic "CFEV" | version u8 | header length u16 | segment size u32
             | nonce prefix (8) | KEK id length u8 | KEK id | wrap nonce (12)
             | wrapped data key (32 + 16 tag)
    segments ciphertext of each plaintext segment + 16-byte tag

Plaintext is cut into segments of ``segment size`` bytes; the last segment holds
0..segment size bytes and is always present (an empty object has one empty
final segment). Segment ``i`` is sealed with nonce ``prefix || u32(i)`` and
associated data ``header || u64(i) || final flag``, so a changed header, a
reordered, dropped or appended segment, or a stream cut at any point fails
authentication instead of yielding wrong plaintext.

Version 2 (escrowed data key) replaces the key section by a reference::

    header   magic "CFEV" | version u8 = 2 | header length u16 | segment size u32
             | nonce prefix (8) | KEK id length u8 | KEK id | escrow id length u8 | escrow id

The wrapped data key then lives outside the object, in the key escrow
(``clinflow.key_escrow``), under the escrow id. Destroying the escrowed key
makes every copy of the object (replicas, backups) permanently unreadable:
crypto-shredding. Segments are sealed exactly as in version 1. Readers open
both versions; a version 2 envelope needs its data key supplied by the caller
(``EnvelopeDecryptor(..., data_keys=...)``).

Both directions are incremental: feed chunks of any size, receive output as
whole segments complete; memory stays bounded by one segment plus the chunk fed.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from clinflow.errors import FatalSchemaMismatch
from clinflow.keyring import Keyring, KeyringError

MAGIC: Final = b"CFEV"
VERSION: Final = 1
VERSION_ESCROWED: Final = 2
TAG_BYTES: Final = 16
DATA_KEY_BYTES: Final = 32
NONCE_PREFIX_BYTES: Final = 8
WRAP_NONCE_BYTES: Final = 12
DEFAULT_SEGMENT_SIZE: Final = 1024 * 1024
MAX_SEGMENT_SIZE: Final = 64 * 1024 * 1024
MAX_SEGMENTS: Final = 2**32
KEK_PURPOSE: Final = "object"

_PREAMBLE = struct.Struct(">4sBH")  # magic, version, header length
_FIXED = struct.Struct(">I8sB")  # segment size, nonce prefix, KEK id length
_SEGMENT_AAD = struct.Struct(">QB")  # segment index, final flag


class EnvelopeError(FatalSchemaMismatch):
    """An envelope cannot be opened: bad header, unknown KEK, tampering or truncation.

    ``code`` is one of ``envelope_bad_header``, ``envelope_unknown_kek``,
    ``envelope_unwrap_failed``, ``envelope_tampered``, ``envelope_truncated``,
    ``envelope_trailing_data``, ``envelope_misuse``, ``envelope_key_unavailable``
    (a version 2 envelope whose escrowed data key was not supplied) and
    ``envelope_key_destroyed`` (raised by the key escrow: the object was
    crypto-shredded). Never retryable: the same
    bytes fail the same way. ``details`` carries the KEK id and segment index
    where known (no plaintext).
    """


@dataclass(frozen=True)
class EnvelopeHeader:
    """The parsed, self-describing start of an envelope."""

    kek_id: str
    segment_size: int
    nonce_prefix: bytes
    wrap_nonce: bytes
    wrapped_key: bytes
    raw: bytes
    version: int = VERSION
    escrow_key_id: str | None = None

    @classmethod
    def build_escrowed(
        cls, kek_id: str, segment_size: int, nonce_prefix: bytes, escrow_key_id: str
    ) -> EnvelopeHeader:
        """A version 2 header naming the escrowed data key instead of embedding it."""
        kid, eid = kek_id.encode(), escrow_key_id.encode()
        if not 0 < len(kid) < 256 or not 0 < len(eid) < 256:
            raise EnvelopeError("envelope_misuse", "KEK and escrow ids must be 1..255 bytes")
        body = _FIXED.pack(segment_size, nonce_prefix, len(kid)) + kid + bytes([len(eid)]) + eid
        raw = _PREAMBLE.pack(MAGIC, VERSION_ESCROWED, _PREAMBLE.size + len(body)) + body
        return cls(
            kek_id, segment_size, nonce_prefix, b"", b"", raw, VERSION_ESCROWED, escrow_key_id
        )

    @classmethod
    def build(
        cls,
        kek_id: str,
        segment_size: int,
        nonce_prefix: bytes,
        wrap_nonce: bytes,
        wrapped_key: bytes,
    ) -> EnvelopeHeader:
        kid = kek_id.encode()
        if not 0 < len(kid) < 256:
            raise EnvelopeError("envelope_misuse", "KEK id must be 1..255 bytes of UTF-8")
        body = _FIXED.pack(segment_size, nonce_prefix, len(kid)) + kid + wrap_nonce + wrapped_key
        raw = _PREAMBLE.pack(MAGIC, VERSION, _PREAMBLE.size + len(body)) + body
        return cls(kek_id, segment_size, nonce_prefix, wrap_nonce, wrapped_key, raw)

    @staticmethod
    def needed(prefix: bytes | bytearray) -> int:
        """Total header length announced by ``prefix`` (0 if the preamble is incomplete).

        Raises EnvelopeError when the preamble is not an envelope of a known version.
        """
        if len(prefix) < _PREAMBLE.size:
            if not MAGIC.startswith(bytes(prefix[: len(MAGIC)])):
                raise EnvelopeError("envelope_bad_header", "not an envelope (bad magic)")
            return 0
        magic, version, length = _PREAMBLE.unpack_from(prefix)
        if magic != MAGIC:
            raise EnvelopeError("envelope_bad_header", "not an envelope (bad magic)")
        if version not in (VERSION, VERSION_ESCROWED):
            raise EnvelopeError(
                "envelope_bad_header",
                f"unsupported envelope version {version}",
                details={"version": version},
            )
        if version == VERSION:
            minimum = _PREAMBLE.size + _FIXED.size + 1 + WRAP_NONCE_BYTES
            minimum += DATA_KEY_BYTES + TAG_BYTES
        else:
            minimum = _PREAMBLE.size + _FIXED.size + 1 + 1 + 1
        if length < minimum:
            raise EnvelopeError("envelope_bad_header", f"header length {length} too short")
        return int(length)

    @classmethod
    def parse(cls, raw: bytes) -> EnvelopeHeader:
        """Parse a complete header (exactly ``needed(raw)`` bytes)."""
        if cls.needed(raw) != len(raw):
            raise EnvelopeError("envelope_bad_header", "header length does not match")
        segment_size, nonce_prefix, kid_len = _FIXED.unpack_from(raw, _PREAMBLE.size)
        pos = _PREAMBLE.size + _FIXED.size
        kid_raw = raw[pos : pos + kid_len]
        pos += kid_len
        if raw[4] == VERSION_ESCROWED:
            return cls._parse_escrowed(raw, segment_size, nonce_prefix, kid_raw, pos)
        wrap_nonce = raw[pos : pos + WRAP_NONCE_BYTES]
        wrapped_key = raw[pos + WRAP_NONCE_BYTES :]
        if len(wrapped_key) != DATA_KEY_BYTES + TAG_BYTES or not kid_raw:
            raise EnvelopeError("envelope_bad_header", "malformed key section")
        if not 0 < segment_size <= MAX_SEGMENT_SIZE:
            raise EnvelopeError("envelope_bad_header", f"segment size {segment_size} out of range")
        try:
            kek_id = kid_raw.decode()
        except UnicodeDecodeError:
            raise EnvelopeError("envelope_bad_header", "KEK id is not UTF-8") from None
        return cls(kek_id, segment_size, nonce_prefix, wrap_nonce, wrapped_key, raw)

    @classmethod
    def _parse_escrowed(
        cls, raw: bytes, segment_size: int, nonce_prefix: bytes, kid_raw: bytes, pos: int
    ) -> EnvelopeHeader:
        eid_len = raw[pos] if pos < len(raw) else 0
        eid_raw = raw[pos + 1 : pos + 1 + eid_len]
        if not kid_raw or not eid_raw or pos + 1 + eid_len != len(raw):
            raise EnvelopeError("envelope_bad_header", "malformed escrow key section")
        if not 0 < segment_size <= MAX_SEGMENT_SIZE:
            raise EnvelopeError("envelope_bad_header", f"segment size {segment_size} out of range")
        try:
            kek_id, escrow_id = kid_raw.decode(), eid_raw.decode()
        except UnicodeDecodeError:
            raise EnvelopeError("envelope_bad_header", "key ids are not UTF-8") from None
        return cls(kek_id, segment_size, nonce_prefix, b"", b"", raw, VERSION_ESCROWED, escrow_id)


def read_header(prefix: bytes) -> EnvelopeHeader | None:
    """The header at the start of ``prefix``, or None if ``prefix`` is too short to hold it.

    Raises EnvelopeError when ``prefix`` does not start an envelope of a known version.
    """
    needed = EnvelopeHeader.needed(prefix)
    if needed == 0 or len(prefix) < needed:
        return None
    return EnvelopeHeader.parse(bytes(prefix[:needed]))


@dataclass(frozen=True)
class EscrowDeposit:
    """What the key escrow keeps for one version 2 envelope: its data key, wrapped by the KEK."""

    escrow_key_id: str
    kek_id: str
    wrap_nonce: bytes
    wrapped_key: bytes


def _wrap_aad(kek_id: str) -> bytes:
    return MAGIC + bytes([VERSION]) + kek_id.encode()


def escrow_wrap_aad(kek_id: str, escrow_key_id: str) -> bytes:
    """Associated data binding an escrowed wrapped key to its KEK id and escrow id."""
    return MAGIC + bytes([VERSION_ESCROWED]) + kek_id.encode() + b"\x00" + escrow_key_id.encode()


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


class EnvelopeEncryptor:
    """Encrypts one object incrementally with the keyring's active ``object`` key.

    Call ``update`` with plaintext chunks of any size and ``finish`` once; the
    concatenation of everything returned is the envelope. Not reusable.
    """

    def __init__(
        self,
        keyring: Keyring,
        *,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        escrow_key_id: str | None = None,
    ) -> None:
        if not 0 < segment_size <= MAX_SEGMENT_SIZE:
            raise EnvelopeError(
                "envelope_misuse", f"segment size must be 1..{MAX_SEGMENT_SIZE} bytes"
            )
        kek_id, kek = keyring.active(KEK_PURPOSE)
        data_key = AESGCM.generate_key(bit_length=256)
        wrap_nonce = os.urandom(WRAP_NONCE_BYTES)
        self.escrow_deposit: EscrowDeposit | None = None
        if escrow_key_id is None:
            wrapped = AESGCM(kek).encrypt(wrap_nonce, data_key, _wrap_aad(kek_id))
            self.header = EnvelopeHeader.build(
                kek_id, segment_size, os.urandom(NONCE_PREFIX_BYTES), wrap_nonce, wrapped
            )
        else:
            aad = escrow_wrap_aad(kek_id, escrow_key_id)
            wrapped = AESGCM(kek).encrypt(wrap_nonce, data_key, aad)
            self.header = EnvelopeHeader.build_escrowed(
                kek_id, segment_size, os.urandom(NONCE_PREFIX_BYTES), escrow_key_id
            )
            self.escrow_deposit = EscrowDeposit(escrow_key_id, kek_id, wrap_nonce, wrapped)
        self._aead = AESGCM(data_key)
        self._buf = bytearray()
        self._index = 0
        self._header_sent = False
        self._finished = False

    @property
    def kek_id(self) -> str:
        return self.header.kek_id

    @property
    def segment_size(self) -> int:
        return self.header.segment_size

    def _seal(self, plaintext: bytes | bytearray | memoryview, final: bool) -> bytes:
        if self._index >= MAX_SEGMENTS:
            raise EnvelopeError("envelope_misuse", "object too large for one envelope")
        aad = self.header.raw + _SEGMENT_AAD.pack(self._index, final)
        sealed = self._aead.encrypt(_nonce(self.header.nonce_prefix, self._index), plaintext, aad)
        self._index += 1
        return sealed

    def _take_header(self, out: list[bytes]) -> None:
        if not self._header_sent:
            out.append(self.header.raw)
            self._header_sent = True

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Feed plaintext; returns the ciphertext of every segment now complete (maybe b"")."""
        if self._finished:
            raise EnvelopeError("envelope_misuse", "update() after finish()")
        out: list[bytes] = []
        self._take_header(out)
        self._buf += data
        size = self.header.segment_size
        # A full segment is sealed only once more data follows it: the last
        # segment must carry the final flag, and it may be exactly full.
        if len(self._buf) > size:
            view = memoryview(self._buf)
            start = 0
            while len(self._buf) - start > size:
                out.append(self._seal(view[start : start + size], final=False))
                start += size
            view.release()
            del self._buf[:start]
        return b"".join(out)

    def finish(self) -> bytes:
        """Seal the final segment; returns the remaining ciphertext."""
        if self._finished:
            raise EnvelopeError("envelope_misuse", "finish() called twice")
        out: list[bytes] = []
        self._take_header(out)
        out.append(self._seal(bytes(self._buf), final=True))
        self._buf.clear()
        self._finished = True
        return b"".join(out)


def unwrap_data_key(keyring: Keyring, header: EnvelopeHeader) -> bytes:
    """The object's data key, unwrapped with the KEK its header names.

    Raises EnvelopeError: ``envelope_unknown_kek`` (the KEK is not in the keyring) or
    ``envelope_unwrap_failed`` (wrong key or altered header).
    """
    try:
        kek = keyring.get(KEK_PURPOSE, header.kek_id)
    except KeyringError:
        raise EnvelopeError(
            "envelope_unknown_kek",
            f"object key-encryption key {header.kek_id!r} is not in the keyring",
            details={"kek_id": header.kek_id},
        ) from None
    try:
        return AESGCM(kek).decrypt(header.wrap_nonce, header.wrapped_key, _wrap_aad(header.kek_id))
    except InvalidTag:
        raise EnvelopeError(
            "envelope_unwrap_failed",
            f"data key does not open with KEK {header.kek_id!r} (wrong key or altered header)",
            details={"kek_id": header.kek_id},
        ) from None


class EnvelopeDecryptor:
    """Opens one envelope incrementally, authenticating every segment before release.

    ``update`` returns plaintext only for segments that authenticated; ``finish``
    raises EnvelopeError if the stream was cut short, extended or altered.
    Plaintext returned before an error is authentic but incomplete: callers that
    need all-or-nothing must hold it until ``finish`` succeeds.
    """

    def __init__(self, keyring: Keyring, *, data_keys: Mapping[str, bytes] | None = None) -> None:
        self._keyring = keyring
        self._data_keys = data_keys if data_keys is not None else {}
        self._buf = bytearray()
        self.header: EnvelopeHeader | None = None
        self._aead: AESGCM | None = None
        self._index = 0
        self._finished = False

    @property
    def kek_id(self) -> str | None:
        """The KEK id named by the header, once the header has been read."""
        return self.header.kek_id if self.header else None

    def _open_header(self) -> bool:
        needed = EnvelopeHeader.needed(self._buf)
        if needed == 0 or len(self._buf) < needed:
            return False
        header = EnvelopeHeader.parse(bytes(self._buf[:needed]))
        del self._buf[:needed]
        if header.escrow_key_id is not None:
            key = self._data_keys.get(header.escrow_key_id)
            if key is None:
                self._finished = True
                raise EnvelopeError(
                    "envelope_key_unavailable",
                    f"the data key of this envelope is escrowed as {header.escrow_key_id!r} "
                    "and was not supplied (open it through the key escrow)",
                    details={"escrow_key_id": header.escrow_key_id, "kek_id": header.kek_id},
                )
            self.header = header
            self._aead = AESGCM(key)
            return True
        self.header = header
        self._aead = AESGCM(unwrap_data_key(self._keyring, header))
        return True

    def _try_open(self, segment: bytes | memoryview, final: bool) -> bytes | None:
        assert self.header is not None and self._aead is not None
        aad = self.header.raw + _SEGMENT_AAD.pack(self._index, final)
        try:
            return self._aead.decrypt(_nonce(self.header.nonce_prefix, self._index), segment, aad)
        except InvalidTag:
            return None

    def _fail(self, code: str, reason: str) -> EnvelopeError:
        self._finished = True
        return EnvelopeError(
            code,
            reason,
            details={"kek_id": self.kek_id, "segment": self._index},
        )

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Feed ciphertext; returns plaintext of every segment now authenticated (maybe b"")."""
        if self._finished:
            raise EnvelopeError("envelope_misuse", "update() after finish() or an error")
        self._buf += data
        if self.header is None and not self._open_header():
            return b""
        assert self.header is not None
        sealed = self.header.segment_size + TAG_BYTES
        out: list[bytes] = []
        if len(self._buf) > sealed:
            view = memoryview(self._buf)
            start = 0
            try:
                while len(self._buf) - start > sealed:
                    with view[start : start + sealed] as segment:
                        plain = self._try_open(segment, final=False)
                        trailing = plain is None and self._try_open(segment, final=True) is not None
                    if plain is None:
                        if trailing:
                            raise self._fail(
                                "envelope_trailing_data",
                                f"data follows the final segment {self._index}",
                            )
                        raise self._fail(
                            "envelope_tampered", f"segment {self._index} failed authentication"
                        )
                    out.append(plain)
                    self._index += 1
                    start += sealed
            finally:
                view.release()
            del self._buf[:start]
        return b"".join(out)

    def finish(self) -> bytes:
        """Open the final segment; raises EnvelopeError if the stream is incomplete or altered."""
        if self._finished:
            raise EnvelopeError("envelope_misuse", "finish() after finish() or an error")
        if self.header is None:
            self._finished = True
            raise EnvelopeError("envelope_truncated", "stream ends inside the header")
        if len(self._buf) < TAG_BYTES:
            raise self._fail("envelope_truncated", f"stream ends inside segment {self._index}")
        segment = bytes(self._buf)
        plain = self._try_open(segment, final=True)
        if plain is None:
            if self._try_open(segment, final=False) is not None:
                raise self._fail(
                    "envelope_truncated",
                    f"stream ends after segment {self._index} without a final segment",
                )
            raise self._fail(
                "envelope_tampered",
                f"final segment {self._index} failed authentication (altered or cut short)",
            )
        self._buf.clear()
        self._finished = True
        return plain


def encrypt_bytes(
    keyring: Keyring, plaintext: bytes, *, segment_size: int = DEFAULT_SEGMENT_SIZE
) -> bytes:
    """Envelope of a small in-memory object."""
    enc = EnvelopeEncryptor(keyring, segment_size=segment_size)
    return enc.update(plaintext) + enc.finish()


def decrypt_bytes(
    keyring: Keyring, envelope: bytes, *, data_keys: Mapping[str, bytes] | None = None
) -> bytes:
    """Plaintext of a small in-memory envelope; raises EnvelopeError if it does not open.

    ``data_keys`` (escrow id -> data key) opens version 2 envelopes.
    """
    dec = EnvelopeDecryptor(keyring, data_keys=data_keys)
    return dec.update(envelope) + dec.finish()


def envelope_size(plaintext_size: int, kek_id: str, segment_size: int) -> int:
    """Exact stored size of an envelope holding ``plaintext_size`` bytes."""
    header = _PREAMBLE.size + _FIXED.size + len(kek_id.encode())
    header += WRAP_NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES
    segments = max(1, -(-plaintext_size // segment_size))
    return header + plaintext_size + segments * TAG_BYTES


class EnvelopeSegmentReader:
    """Random access to the segments of one envelope, given its header.

    The fixed layout makes a plaintext byte range addressable without reading what precedes
    it: plaintext segment ``i`` covers ``[i * segment_size, (i + 1) * segment_size)`` and its
    sealed bytes sit at ``header_length + i * (segment_size + TAG_BYTES)``. Each segment opened
    here is authenticated exactly like a streamed one (index and final flag in the associated
    data), so a moved, swapped or altered segment raises EnvelopeError (``envelope_tampered``).
    """

    def __init__(
        self, keyring: Keyring, header: EnvelopeHeader, *, data_key: bytes | None = None
    ) -> None:
        """``data_key``: the escrowed data key of a v2 envelope (v1 headers carry theirs)."""
        self.header = header
        self._aead = AESGCM(data_key or unwrap_data_key(keyring, header))

    @classmethod
    def from_prefix(
        cls, keyring: Keyring, prefix: bytes, *, data_key: bytes | None = None
    ) -> EnvelopeSegmentReader:
        """A reader from the first bytes of an envelope (at least the whole header).

        Raises EnvelopeError (``envelope_bad_header`` / ``envelope_truncated``).
        """
        needed = EnvelopeHeader.needed(prefix)
        if needed == 0 or len(prefix) < needed:
            raise EnvelopeError("envelope_truncated", "prefix ends inside the header")
        return cls(keyring, EnvelopeHeader.parse(bytes(prefix[:needed])), data_key=data_key)

    @property
    def header_length(self) -> int:
        return len(self.header.raw)

    @property
    def segment_size(self) -> int:
        return self.header.segment_size

    @property
    def sealed_size(self) -> int:
        """Stored bytes of one full segment (plaintext plus tag)."""
        return self.header.segment_size + TAG_BYTES

    def segment_count(self, plaintext_size: int) -> int:
        """Segments of an envelope holding ``plaintext_size`` bytes (at least one)."""
        return max(1, -(-plaintext_size // self.header.segment_size))

    def segment_offset(self, index: int) -> int:
        """Stored offset of segment ``index``."""
        return self.header_length + index * self.sealed_size

    def open_segment(self, index: int, sealed: bytes | memoryview, *, final: bool) -> bytes:
        """Plaintext of segment ``index``; raises EnvelopeError when it does not authenticate."""
        aad = self.header.raw + _SEGMENT_AAD.pack(index, final)
        try:
            return self._aead.decrypt(_nonce(self.header.nonce_prefix, index), sealed, aad)
        except InvalidTag:
            raise EnvelopeError(
                "envelope_tampered",
                f"segment {index} failed authentication",
                details={"kek_id": self.header.kek_id, "segment": index},
            ) from None
