"""Envelope encryption: round trips, chunking independence, and every way to break a stream."""

from __future__ import annotations

import copy
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinflow.envelope import (
    TAG_BYTES,
    EnvelopeDecryptor,
    EnvelopeEncryptor,
    EnvelopeError,
    EnvelopeHeader,
    decrypt_bytes,
    encrypt_bytes,
    envelope_size,
)
from clinflow.keyring import Keyring

SEG = 64


@pytest.fixture
def ring() -> Keyring:
    return Keyring.generate()


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def encrypt_chunks(ring: Keyring, chunks: list[bytes], segment_size: int = SEG) -> bytes:
    enc = EnvelopeEncryptor(ring, segment_size=segment_size)
    return b"".join(enc.update(c) for c in chunks) + enc.finish()


def decrypt_chunks(ring: Keyring, chunks: list[bytes]) -> bytes:
    dec = EnvelopeDecryptor(ring)
    return b"".join(dec.update(c) for c in chunks) + dec.finish()


def split(blob: bytes, segment_size: int = SEG) -> tuple[bytes, list[bytes]]:
    """(header, sealed segments) of an envelope."""
    n = EnvelopeHeader.needed(blob)
    body = blob[n:]
    sealed = segment_size + TAG_BYTES
    return blob[:n], [body[i : i + sealed] for i in range(0, len(body), sealed)]


@pytest.mark.parametrize(
    "size", [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 3 * SEG - 1, 10 * SEG, 10 * SEG + 7]
)
def test_round_trip_sizes(ring: Keyring, size: int) -> None:
    data = os.urandom(size)
    blob = encrypt_bytes(ring, data, segment_size=SEG)
    assert len(blob) == envelope_size(size, ring.active("object")[0], SEG)
    assert decrypt_bytes(ring, blob) == data


def test_exact_multiple_has_no_extra_segment(ring: Keyring) -> None:
    blob = encrypt_bytes(ring, os.urandom(4 * SEG), segment_size=SEG)
    _, segments = split(blob)
    assert [len(s) for s in segments] == [SEG + TAG_BYTES] * 4


def test_empty_object_is_one_empty_final_segment(ring: Keyring) -> None:
    blob = encrypt_bytes(ring, b"", segment_size=SEG)
    _, segments = split(blob)
    assert [len(s) for s in segments] == [TAG_BYTES]
    assert decrypt_bytes(ring, blob) == b""


def test_default_segment_size_round_trip(ring: Keyring) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    assert decrypt_bytes(ring, encrypt_bytes(ring, data)) == data


@pytest.mark.parametrize("enc_chunk,dec_chunk", [(1, 1), (7, 3), (SEG, SEG + TAG_BYTES), (1000, 5)])
def test_chunking_does_not_change_result(ring: Keyring, enc_chunk: int, dec_chunk: int) -> None:
    data = os.urandom(5 * SEG + 11)
    blob = encrypt_chunks(ring, chunked(data, enc_chunk))
    assert len(blob) == len(encrypt_bytes(ring, data, segment_size=SEG))
    assert decrypt_chunks(ring, chunked(blob, dec_chunk)) == data


def test_ciphertext_hides_plaintext(ring: Keyring) -> None:
    data = b"CONFIDENTIAL-SITE-PACKET " * 50
    blob = encrypt_bytes(ring, data, segment_size=SEG)
    assert b"CONFIDENTIAL" not in blob


def test_each_object_gets_its_own_data_key(ring: Keyring) -> None:
    data = os.urandom(3 * SEG)
    a, b = (encrypt_bytes(ring, data, segment_size=SEG) for _ in range(2))
    assert split(a)[1] != split(b)[1]


def test_decryptor_output_is_bounded_by_segment(ring: Keyring) -> None:
    data = os.urandom(20 * SEG)
    blob = encrypt_bytes(ring, data, segment_size=SEG)
    dec = EnvelopeDecryptor(ring)
    for piece in chunked(blob, 10):
        assert len(dec.update(piece)) <= SEG
    assert len(dec.finish()) <= SEG


def test_tampered_byte_is_detected(ring: Keyring) -> None:
    blob = bytearray(encrypt_bytes(ring, os.urandom(5 * SEG), segment_size=SEG))
    header, _ = split(bytes(blob))
    blob[len(header) + SEG + TAG_BYTES + 3] ^= 0x01  # inside segment 1
    with pytest.raises(EnvelopeError) as err:
        decrypt_bytes(ring, bytes(blob))
    assert err.value.code == "envelope_tampered"
    assert err.value.details["segment"] == 1


def test_tampered_header_is_detected(ring: Keyring) -> None:
    blob = bytearray(encrypt_bytes(ring, os.urandom(2 * SEG), segment_size=SEG))
    blob[12] ^= 0x01  # inside the nonce prefix
    with pytest.raises(EnvelopeError) as err:
        decrypt_bytes(ring, bytes(blob))
    assert err.value.code == "envelope_tampered"


def test_tag_only_tamper_in_final_segment(ring: Keyring) -> None:
    blob = bytearray(encrypt_bytes(ring, os.urandom(2 * SEG + 3), segment_size=SEG))
    blob[-1] ^= 0x80
    with pytest.raises(EnvelopeError) as err:
        decrypt_bytes(ring, bytes(blob))
    assert err.value.code == "envelope_tampered"


@pytest.mark.parametrize("keep_segments", [0, 1, 2])
def test_truncation_at_segment_boundary(ring: Keyring, keep_segments: int) -> None:
    blob = encrypt_bytes(ring, os.urandom(3 * SEG + 5), segment_size=SEG)
    header, segments = split(blob)
    cut = header + b"".join(segments[:keep_segments])
    with pytest.raises(EnvelopeError) as err:
        decrypt_bytes(ring, cut)
    assert err.value.code == "envelope_truncated"


def test_truncation_inside_segment(ring: Keyring) -> None:
    blob = encrypt_bytes(ring, os.urandom(3 * SEG + 5), segment_size=SEG)
    with pytest.raises(EnvelopeError) as err:
        decrypt_bytes(ring, blob[:-9])
    assert err.value.code in ("envelope_truncated", "envelope_tampered")


def test_truncation_inside_header(ring: Keyring) -> None:
    blob = encrypt_bytes(ring, b"abc", segment_size=SEG)
    with pytest.raises(EnvelopeError) as err:
        decrypt_bytes(ring, blob[:20])
    assert err.value.code == "envelope_truncated"


def test_reordered_segments_are_detected(ring: Keyring) -> None:
    blob = encrypt_bytes(ring, os.urandom(4 * SEG + 1), segment_size=SEG)
    header, segments = split(blob)
    segments[0], segments[1] = segments[1], segments[0]
    with pytest.raises(EnvelopeError) as err:
        decrypt_bytes(ring, header + b"".join(segments))
    assert err.value.code == "envelope_tampered"
    assert err.value.details["segment"] == 0


def test_appended_data_is_detected(ring: Keyring) -> None:
    blob = encrypt_bytes(ring, os.urandom(2 * SEG + 1), segment_size=SEG)
    other = encrypt_bytes(ring, os.urandom(SEG), segment_size=SEG)
    with pytest.raises(EnvelopeError) as err:
        decrypt_bytes(ring, blob + split(other)[1][0])
    assert err.value.code in ("envelope_trailing_data", "envelope_tampered")


def test_appended_segment_after_full_final_is_trailing_data(ring: Keyring) -> None:
    blob = encrypt_bytes(ring, os.urandom(2 * SEG), segment_size=SEG)
    with pytest.raises(EnvelopeError) as err:
        decrypt_bytes(ring, blob + os.urandom(TAG_BYTES + 1))
    assert err.value.code == "envelope_trailing_data"


def test_segment_spliced_from_other_object_is_detected(ring: Keyring) -> None:
    a = encrypt_bytes(ring, os.urandom(3 * SEG), segment_size=SEG)
    b = encrypt_bytes(ring, os.urandom(3 * SEG), segment_size=SEG)
    header, segs_a = split(a)
    _, segs_b = split(b)
    with pytest.raises(EnvelopeError):
        decrypt_bytes(ring, header + segs_a[0] + segs_b[1] + segs_a[2])


def test_rotated_kek_still_decrypts_old_objects(ring: Keyring) -> None:
    old_kid = ring.active("object")[0]
    data = os.urandom(3 * SEG)
    old_blob = encrypt_bytes(ring, data, segment_size=SEG)
    new_kid = ring.rotate("object")
    new_blob = encrypt_bytes(ring, data, segment_size=SEG)
    dec = EnvelopeDecryptor(ring)
    assert dec.update(old_blob) + dec.finish() == data
    assert dec.kek_id == old_kid
    assert EnvelopeHeader.parse(new_blob[: EnvelopeHeader.needed(new_blob)]).kek_id == new_kid
    assert decrypt_bytes(ring, new_blob) == data


def test_unknown_kek_id_is_named(ring: Keyring) -> None:
    blob = encrypt_bytes(ring, b"payload", segment_size=SEG)
    stranger = Keyring.generate()
    with pytest.raises(EnvelopeError) as err:
        decrypt_bytes(stranger, blob)
    assert err.value.code == "envelope_unknown_kek"
    assert err.value.details["kek_id"] == ring.active("object")[0]


def test_wrong_key_under_same_id_fails_unwrap(ring: Keyring) -> None:
    blob = encrypt_bytes(ring, b"payload", segment_size=SEG)
    impostor = copy.deepcopy(ring)
    kid = impostor.active("object")[0]
    impostor.sets["object"].keys[kid] = os.urandom(32)
    with pytest.raises(EnvelopeError) as err:
        decrypt_bytes(impostor, blob)
    assert err.value.code == "envelope_unwrap_failed"


def test_not_an_envelope(ring: Keyring) -> None:
    with pytest.raises(EnvelopeError) as err:
        decrypt_bytes(ring, b"%PDF-1.7 not encrypted at all")
    assert err.value.code == "envelope_bad_header"


def test_unsupported_version(ring: Keyring) -> None:
    blob = bytearray(encrypt_bytes(ring, b"x", segment_size=SEG))
    blob[4] = 99
    with pytest.raises(EnvelopeError) as err:
        decrypt_bytes(ring, bytes(blob))
    assert err.value.code == "envelope_bad_header"


def test_errors_are_non_retryable(ring: Keyring) -> None:
    with pytest.raises(EnvelopeError) as err:
        decrypt_bytes(ring, b"nope")
    assert err.value.retryable is False


def test_misuse_after_finish(ring: Keyring) -> None:
    enc = EnvelopeEncryptor(ring, segment_size=SEG)
    enc.finish()
    with pytest.raises(EnvelopeError):
        enc.update(b"more")
    with pytest.raises(EnvelopeError):
        EnvelopeEncryptor(ring, segment_size=0)


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=1500),
    segment_size=st.integers(min_value=1, max_value=200),
    enc_chunk=st.integers(min_value=1, max_value=300),
    dec_chunk=st.integers(min_value=1, max_value=300),
)
def test_property_round_trip(
    data: bytes, segment_size: int, enc_chunk: int, dec_chunk: int
) -> None:
    ring = Keyring.generate()
    blob = encrypt_chunks(ring, chunked(data, enc_chunk), segment_size)
    assert len(blob) == envelope_size(len(data), ring.active("object")[0], segment_size)
    assert decrypt_chunks(ring, chunked(blob, dec_chunk)) == data


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=600),
    segment_size=st.integers(min_value=1, max_value=100),
    where=st.floats(min_value=0, max_value=1, exclude_max=True),
    bit=st.integers(min_value=0, max_value=7),
)
def test_property_any_bit_flip_is_rejected(
    data: bytes, segment_size: int, where: float, bit: int
) -> None:
    ring = Keyring.generate()
    blob = bytearray(encrypt_bytes(ring, data, segment_size=segment_size))
    blob[int(where * len(blob))] ^= 1 << bit
    with pytest.raises(EnvelopeError):
        decrypt_bytes(ring, bytes(blob))


@settings(max_examples=100, deadline=None)
@given(
    data=st.binary(max_size=600),
    segment_size=st.integers(min_value=1, max_value=100),
    cut=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_property_any_truncation_is_rejected(data: bytes, segment_size: int, cut: float) -> None:
    ring = Keyring.generate()
    blob = encrypt_bytes(ring, data, segment_size=segment_size)
    with pytest.raises(EnvelopeError):
        decrypt_bytes(ring, blob[: int(cut * len(blob))])
