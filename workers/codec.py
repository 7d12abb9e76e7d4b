"""Payload encryption for everything Temporal stores: inputs, results, signals, memos.

Each payload is serialised whole and sealed with AES-256-GCM under the keyring's
active ``payload`` key; the key id rides in the payload metadata so a rotated
key keeps opening old histories. Temporal (and anyone reading its database)
sees only ``binary/encrypted`` blobs; the codec server uses the same codec to
show them to authorised operators.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from clinflow.errors import FatalSchemaMismatch
from clinflow.keyring import Keyring, KeyringError

ENCODING: Final = b"binary/encrypted"
KEY_ID_METADATA: Final = "encryption-key-id"
NONCE_BYTES: Final = 12
KEY_PURPOSE: Final = "payload"


class PayloadDecryptionError(FatalSchemaMismatch):
    """An encrypted payload cannot be opened.

    ``code`` is ``payload_unknown_key`` (the key id is not in the keyring: load
    the keyring that wrote it), ``payload_missing_key_id`` or
    ``payload_tampered`` (authentication failed). ``details["key_id"]`` names the key.
    """


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM payload codec keyed by a keyring's ``payload`` purpose.

    encode: always seals with the active key (associated data = key id).
    decode: opens ``binary/encrypted`` payloads with the key their metadata names;
    any other payload passes through unchanged. Raises PayloadDecryptionError.
    """

    def __init__(self, keyring: Keyring) -> None:
        super().__init__()
        self._keyring = keyring
        self._ciphers: dict[str, AESGCM] = {}

    def _cipher(self, key_id: str) -> AESGCM:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            try:
                key = self._keyring.get(KEY_PURPOSE, key_id)
            except KeyringError:
                raise PayloadDecryptionError(
                    "payload_unknown_key",
                    f"payload key id {key_id!r} is not in the keyring",
                    details={"key_id": key_id},
                ) from None
            cipher = self._ciphers[key_id] = AESGCM(key)
        return cipher

    def _seal(self, payload: Payload) -> Payload:
        key_id, _ = self._keyring.active(KEY_PURPOSE)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher(key_id).encrypt(nonce, payload.SerializeToString(), key_id.encode())
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
            data=nonce + sealed,
        )

    def _open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        raw_id = payload.metadata.get(KEY_ID_METADATA)
        if not raw_id:
            raise PayloadDecryptionError(
                "payload_missing_key_id", f"encrypted payload lacks {KEY_ID_METADATA!r}"
            )
        key_id = raw_id.decode(errors="replace")
        data = payload.data
        if len(data) < NONCE_BYTES + 16:
            raise PayloadDecryptionError(
                "payload_tampered",
                f"payload sealed under key {key_id!r} is too short",
                details={"key_id": key_id},
            )
        try:
            plain = self._cipher(key_id).decrypt(
                data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode()
            )
        except InvalidTag:
            raise PayloadDecryptionError(
                "payload_tampered",
                f"payload sealed under key {key_id!r} failed authentication",
                details={"key_id": key_id},
            ) from None
        return Payload.FromString(plain)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._open(p) for p in payloads]


def build_data_converter(keyring: Keyring) -> DataConverter:
    """The converter every client and worker uses: pydantic JSON + payload encryption."""
    return dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec(keyring))
