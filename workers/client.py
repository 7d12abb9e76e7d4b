"""The one way to build a Temporal client: pydantic data converter + payload encryption."""

from __future__ import annotations

from temporalio.client import Client

from clinflow.keyring import Keyring
from clinflow.settings import Settings, get_settings
from workers.codec import build_data_converter


async def connect_client(
    settings: Settings | None = None, keyring: Keyring | None = None
) -> Client:
    """Connect to the configured Temporal namespace.

    Every payload the client sends is encrypted with the keyring's active payload
    key; every payload it receives is decrypted with the key its metadata names.
    """
    settings = settings or get_settings()
    keyring = keyring or Keyring.load(settings)
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=build_data_converter(keyring),
        tls=settings.temporal_tls,
    )
