"""The governance task queue: audit sealing and retention workflows and their activities."""

from __future__ import annotations

from activities.deps import Deps
from activities.governance import GovernanceActivities
from clinflow.settings import Settings
from workers.factory import QueuePlan
from workflows.governance import AuditSealWorkflow, RetentionWorkflow


def governance_plan(settings: Settings, deps: Deps) -> dict[str, QueuePlan]:
    """One queue (``archive_task_queue``); few slots: these jobs are rare and heavy."""
    acts = GovernanceActivities(deps)
    return {
        settings.archive_task_queue: QueuePlan(
            workflows=[AuditSealWorkflow, RetentionWorkflow],
            activities=[acts.seal_audit, acts.verify_archive, acts.run_retention],
            max_concurrent_activities=4,
        )
    }
