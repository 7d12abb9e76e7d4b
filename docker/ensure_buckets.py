"""Create the object-store buckets named by the CLINFLOW_* settings (idempotent).

Run once per deployment by the compose ``buckets`` service, before any worker
starts. Exits non-zero, with the reason on stderr, when the store refuses.
"""

from __future__ import annotations

import asyncio
import sys

from clinflow.keyring import Keyring
from clinflow.log_config import configure_logging, get_logger
from clinflow.object_store import ObjectStore
from clinflow.settings import Settings


async def ensure(settings: Settings) -> list[str]:
    async with ObjectStore(settings, Keyring.load(settings)) as store:
        return await store.ensure_buckets()


def main() -> int:
    settings = Settings()
    configure_logging(settings)
    log = get_logger("clinflow.ensure_buckets")
    created = asyncio.run(ensure(settings))
    log.info("buckets ready", created=created, buckets=list(settings.all_buckets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
