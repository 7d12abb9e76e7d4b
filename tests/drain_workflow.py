"""One slow activity and its workflow, for the graceful-shutdown test.

Kept out of the worker's ``__main__`` module so the workflow sandbox can import it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow


@activity.defn(name="test.slow_step")
async def slow_step(marker: str) -> str:
    """Writes ``marker`` when it starts, then takes a few seconds to finish."""
    await asyncio.to_thread(Path(marker).write_text, "started")
    await asyncio.sleep(3)
    await asyncio.to_thread(Path(marker).write_text, "finished")
    return f"attempt-{activity.info().attempt}"


@workflow.defn(name="DrainTestWorkflow")
class DrainTestWorkflow:
    @workflow.run
    async def run(self, marker: str) -> str:
        return await workflow.execute_activity(
            slow_step, marker, start_to_close_timeout=timedelta(seconds=60)
        )
