"""Payload codec: what Temporal stores is sealed, rotation-safe, and fails loudly."""

from __future__ import annotations

import copy

import pytest
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload

from clinflow.keyring import Keyring
from workers.codec import (
    ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    PayloadDecryptionError,
    build_data_converter,
)


class DocumentRef(BaseModel):
    site_id: str
    sha256: str
    pages: int


MARKER = b"SITE-0042-DELEGATION-LOG"


def json_payload(data: bytes = b'{"note": "' + MARKER + b'"}') -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


@pytest.fixture
def ring() -> Keyring:
    return Keyring.generate()


async def test_round_trip_preserves_payload(ring: Keyring) -> None:
    codec = EncryptionCodec(ring)
    original = [json_payload(), Payload(metadata={"encoding": b"binary/null"}, data=b"")]
    encoded = await codec.encode(original)
    assert len(encoded) == 2
    assert all(p.metadata["encoding"] == ENCODING for p in encoded)
    assert all(p.metadata[KEY_ID_METADATA] == ring.active("payload")[0].encode() for p in encoded)
    assert await codec.decode(encoded) == original


async def test_ciphertext_does_not_contain_plaintext(ring: Keyring) -> None:
    encoded = (await EncryptionCodec(ring).encode([json_payload()]))[0]
    assert MARKER not in encoded.SerializeToString()


async def test_same_payload_encrypts_differently_each_time(ring: Keyring) -> None:
    codec = EncryptionCodec(ring)
    a, b = await codec.encode([json_payload(), json_payload()])
    assert a.data != b.data


async def test_rotation_old_payloads_still_decode(ring: Keyring) -> None:
    codec = EncryptionCodec(ring)
    old_kid = ring.active("payload")[0]
    old = await codec.encode([json_payload()])
    new_kid = ring.rotate("payload")
    new = await codec.encode([json_payload()])
    assert old[0].metadata[KEY_ID_METADATA] == old_kid.encode()
    assert new[0].metadata[KEY_ID_METADATA] == new_kid.encode()
    assert await codec.decode(old + new) == [json_payload(), json_payload()]


async def test_unknown_key_id_is_a_clear_error(ring: Keyring) -> None:
    encoded = await EncryptionCodec(ring).encode([json_payload()])
    with pytest.raises(PayloadDecryptionError) as err:
        await EncryptionCodec(Keyring.generate()).decode(encoded)
    assert err.value.code == "payload_unknown_key"
    assert err.value.details["key_id"] == ring.active("payload")[0]
    assert not err.value.retryable


async def test_tampered_payload_is_rejected(ring: Keyring) -> None:
    codec = EncryptionCodec(ring)
    encoded = (await codec.encode([json_payload()]))[0]
    flipped = bytearray(encoded.data)
    flipped[-5] ^= 0x01
    bad = Payload(metadata=dict(encoded.metadata), data=bytes(flipped))
    with pytest.raises(PayloadDecryptionError) as err:
        await codec.decode([bad])
    assert err.value.code == "payload_tampered"


async def test_relabelled_key_id_is_rejected(ring: Keyring) -> None:
    codec = EncryptionCodec(ring)
    encoded = (await codec.encode([json_payload()]))[0]
    other_kid = ring.rotate("payload")
    # Same key material under another id must not open: the id is bound as associated data.
    clone = copy.deepcopy(ring)
    clone.sets["payload"].keys[other_kid] = ring.get(
        "payload", encoded.metadata[KEY_ID_METADATA].decode()
    )
    relabelled = Payload(
        metadata={"encoding": ENCODING, KEY_ID_METADATA: other_kid.encode()}, data=encoded.data
    )
    with pytest.raises(PayloadDecryptionError):
        await EncryptionCodec(clone).decode([relabelled])


async def test_missing_key_id_and_short_data(ring: Keyring) -> None:
    codec = EncryptionCodec(ring)
    with pytest.raises(PayloadDecryptionError) as err:
        await codec.decode([Payload(metadata={"encoding": ENCODING}, data=b"x" * 40)])
    assert err.value.code == "payload_missing_key_id"
    kid = ring.active("payload")[0].encode()
    with pytest.raises(PayloadDecryptionError) as err:
        await codec.decode([Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: kid})])
    assert err.value.code == "payload_tampered"


async def test_unencrypted_payloads_pass_through(ring: Keyring) -> None:
    codec = EncryptionCodec(ring)
    plain = [json_payload(), Payload(metadata={}, data=b"raw")]
    assert await codec.decode(plain) == plain


async def test_data_converter_round_trips_pydantic_models(ring: Keyring) -> None:
    converter = build_data_converter(ring)
    ref = DocumentRef(site_id="SITE-0042", sha256="ab" * 32, pages=12)
    payloads = await converter.encode([ref, 7])
    assert all(p.metadata["encoding"] == ENCODING for p in payloads)
    assert b"SITE-0042" not in b"".join(p.SerializeToString() for p in payloads)
    decoded = await converter.decode(payloads, [DocumentRef, int])
    assert decoded == [ref, 7]
