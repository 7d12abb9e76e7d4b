"""A worker process for the graceful-shutdown test.

Run as ``python -m tests.drain_worker_app QUEUE``; it serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import sys

from clinflow.settings import get_settings
from tests.drain_workflow import DrainTestWorkflow, slow_step
from workers.client import connect_client
from workers.factory import build_worker, run_until_signalled


async def main(queue: str) -> None:
    settings = get_settings()
    client = await connect_client(settings)
    worker = build_worker(
        client,
        settings,
        task_queue=queue,
        workflows=[DrainTestWorkflow],
        activities=[slow_step],
    )
    await run_until_signalled([worker])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
