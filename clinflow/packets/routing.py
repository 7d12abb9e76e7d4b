"""Routing: from all findings and gaps of a packet to the next action (the decision tree).

1. any FATAL_SCHEMA_MISMATCH  -> DEAD_LETTER      (outcome DEAD_LETTERED)
2. any COMPLIANCE_BLOCK       -> AWAIT_REVIEW     (outcome BLOCKED), unless already approved
3. any gap                    -> AWAIT_DOCUMENTS  (outcome INCOMPLETE if the deadline passes)
4. any WARNING_DEVIATION      -> COMPLETE         (VALIDATED_WITH_WARNINGS)
5. otherwise                  -> COMPLETE         (VALIDATED; APPROVED after a reviewer's approval)

RECOVERABLE_TIMEOUT findings (retries exhausted) are dead-lettered like FATAL ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from clinflow.errors import ErrorCategory
from clinflow.packets.models import Decision, DecisionAction, Finding, GapReport, PacketOutcome


def route(
    findings: Sequence[Finding],
    gaps: GapReport | None = None,
    *,
    review_approved: bool = False,
) -> Decision:
    """The decision for a packet. Pure: same inputs, same decision.

    ``gaps``' warnings count as findings. ``review_approved`` is True once a Regulatory Affairs
    reviewer approved the packet's compliance blocks: the packet then continues to the gap and
    completion steps, and completes as APPROVED.
    """
    everything = [*findings, *(gaps.warnings if gaps else [])]
    counts = Counter(str(f.category) for f in everything)

    def codes(*categories: ErrorCategory) -> list[str]:
        return sorted({f.code for f in everything if f.category in categories})

    fatal = codes(ErrorCategory.FATAL_SCHEMA_MISMATCH, ErrorCategory.RECOVERABLE_TIMEOUT)
    if fatal:
        return Decision(
            action=DecisionAction.DEAD_LETTER,
            outcome=PacketOutcome.DEAD_LETTERED,
            reasons=fatal,
            counts=dict(counts),
        )
    blocks = codes(ErrorCategory.COMPLIANCE_BLOCK)
    if blocks and not review_approved:
        return Decision(
            action=DecisionAction.AWAIT_REVIEW,
            outcome=PacketOutcome.BLOCKED,
            reasons=blocks,
            counts=dict(counts),
        )
    if gaps is not None and gaps.has_gaps:
        counts["GAP"] = len(gaps.items)
        return Decision(
            action=DecisionAction.AWAIT_DOCUMENTS,
            outcome=PacketOutcome.INCOMPLETE,
            reasons=sorted({g.code for g in gaps.items}),
            counts=dict(counts),
        )
    if review_approved and blocks:
        return Decision(
            action=DecisionAction.COMPLETE,
            outcome=PacketOutcome.APPROVED,
            reasons=blocks,
            counts=dict(counts),
        )
    warnings = codes(ErrorCategory.WARNING_DEVIATION)
    if warnings:
        return Decision(
            action=DecisionAction.COMPLETE,
            outcome=PacketOutcome.VALIDATED_WITH_WARNINGS,
            reasons=warnings,
            counts=dict(counts),
        )
    return Decision(
        action=DecisionAction.COMPLETE, outcome=PacketOutcome.VALIDATED, counts=dict(counts)
    )
