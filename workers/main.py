"""The worker process: every workflow and activity, on the configured task queues.

``clinflow worker`` runs this. Scaling out means starting more of these
processes against the same Temporal cluster; the server balances the queues.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities.deps import Deps
from activities.intake import IntakeActivities
from clinflow.db import apply_migrations
from clinflow.keyring import Keyring
from clinflow.log_config import configure_logging
from clinflow.packets import data_files
from clinflow.settings import Settings, get_settings
from workers.client import connect_client
from workers.clinical_plan import clinical_plan
from workers.factory import QueuePlan, build_worker, run_until_signalled
from workers.governance_plan import governance_plan
from workers.packets_plan import packets_plan
from workflows.intake import IntakeWorkflow

log = structlog.get_logger(__name__)


def worker_plan(settings: Settings, deps: Deps) -> dict[str, QueuePlan]:
    """Every task queue this code base serves, with its workflows, activities and limits."""
    intake = IntakeActivities(deps)
    plan: dict[str, QueuePlan] = {
        settings.task_queue: QueuePlan(
            workflows=[IntakeWorkflow],
            activities=[intake.store_file, intake.verify_object, intake.append_audit],
        ),
    }
    # Each capability adds its task queues here (one line each).
    # >>> capability plans
    plan.update(clinical_plan(settings, deps))
    plan.update(packets_plan(settings, deps))
    plan.update(governance_plan(settings, deps))
    # <<< capability plans
    return plan


def build_workers(
    client: Client, settings: Settings, deps: Deps, queues: Sequence[str] | None = None
) -> list[Worker]:
    """One Worker per task queue this process serves."""
    plan = worker_plan(settings, deps)
    selected = list(queues) if queues else list(plan)
    unknown = [q for q in selected if q not in plan]
    if unknown:
        raise SystemExit(f"unknown task queue(s) {unknown}; known: {sorted(plan)}")
    return [build_worker(client, settings, task_queue=q, plan=plan[q]) for q in selected]


async def serve(settings: Settings | None = None, queues: Sequence[str] | None = None) -> None:
    """Apply migrations, connect, and serve until SIGTERM/SIGINT (then drain)."""
    settings = settings or get_settings()
    configure_logging(settings)
    # the study configuration of these settings, for this process and the ones it spawns
    data_files.configure(settings.packets_config_dir, export=True)
    keyring = Keyring.load(settings)
    await apply_migrations(settings.admin_dsn())
    client = await connect_client(settings, keyring)
    deps = await Deps.open(settings, keyring)
    try:
        await run_until_signalled(build_workers(client, settings, deps, queues))
    finally:
        await deps.close()


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
