"""Task queues of the site-packet flow and what each serves.

- ``<prefix>-<region>`` for each configured region (data residency: a region's packets are
  processed by that region's workers): SitePacketWorkflow and the packet activities;
- ``<prefix>-<region>-urgent`` for each region: the same, for that region's packets activating
  soon, with its own activity slots so a backlog of routine packets never delays them (urgent
  packets keep their residency);
- ``<prefix>-batch``: PacketBatchWorkflow (orchestration only: references, no documents);
- ``<prefix>-external``: the external IRB-portal check alone, rate-limited for the whole task
  queue by the server (``max_task_queue_activities_per_second``), never with sleeps.

Parsing (pypdf, python-docx) runs in the activities' thread pool, OCR in tesseract processes
(``OMP_THREAD_LIMIT=1``), so the event loop stays free.
"""

from __future__ import annotations

from activities.deps import Deps
from activities.packets import PacketActivities
from clinflow.settings import Settings
from workers.factory import QueuePlan
from workflows.packets import SitePacketWorkflow
from workflows.packets_batch import PacketBatchWorkflow


def packet_queues(settings: Settings) -> dict[str, str]:
    """Role -> task queue name (``us``/``eu``/..., ``us-urgent``/..., ``batch``, ``external``)."""
    prefix = settings.packets_queue_prefix
    regions = settings.packets_region_list
    roles = [*regions, *(f"{r}-urgent" for r in regions), "batch", "external"]
    return {role: f"{prefix}-{role}" for role in roles}


def packets_plan(settings: Settings, deps: Deps) -> dict[str, QueuePlan]:
    """The packet flow's task queues with their workflows, activities and limits."""
    acts = PacketActivities(deps)
    queues = packet_queues(settings)
    plan: dict[str, QueuePlan] = {}
    for region in settings.packets_region_list:
        plan[queues[region]] = QueuePlan(
            workflows=[SitePacketWorkflow], activities=acts.workflow_activities()
        )
        plan[queues[f"{region}-urgent"]] = QueuePlan(
            workflows=[SitePacketWorkflow],
            activities=acts.workflow_activities(),
            max_concurrent_activities=settings.packets_urgent_max_concurrent_activities,
        )
    plan[queues["batch"]] = QueuePlan(
        workflows=[PacketBatchWorkflow], activities=acts.batch_activities()
    )
    plan[queues["external"]] = QueuePlan(
        activities=[acts.external_check],
        max_task_queue_activities_per_second=settings.packets_external_rate_per_second,
    )
    return plan


__all__ = ["packet_queues", "packets_plan"]
