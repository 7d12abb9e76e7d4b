from __future__ import annotations

import pytest

from clinflow.packets import DecisionAction, DocumentType, GapReport, PacketOutcome, route
from clinflow.packets.rules import make_finding, make_gap

FATAL = make_finding("PDF_TRUNCATED", "a.pdf", problem="x")
BLOCK = make_finding("SIGNATURE_MISSING", "b.pdf", doc_type="FDA_1572")
WARN = make_finding("DOC_TYPE_UNKNOWN", "c.pdf")
RETRY_EXHAUSTED = make_finding("OCR_UNAVAILABLE", "d.pdf", problem="x")
GAPS = GapReport(
    region="us",
    checklist="us",
    missing=[make_gap("GAP_DOCUMENT_MISSING", DocumentType.FDA_1572, required=1, present=0)],
)
NO_GAPS = GapReport(region="us", checklist="us")
WARN_GAPS = GapReport(
    region="us",
    checklist="us",
    warnings=[make_finding("GAP_RECOMMENDED_MISSING", None, doc_type="LAB_CERTIFICATION")],
)


@pytest.mark.parametrize(
    ("findings", "gaps", "action", "outcome"),
    [
        ([FATAL, BLOCK, WARN], GAPS, DecisionAction.DEAD_LETTER, PacketOutcome.DEAD_LETTERED),
        ([RETRY_EXHAUSTED], NO_GAPS, DecisionAction.DEAD_LETTER, PacketOutcome.DEAD_LETTERED),
        ([BLOCK, WARN], GAPS, DecisionAction.AWAIT_REVIEW, PacketOutcome.BLOCKED),
        ([WARN], GAPS, DecisionAction.AWAIT_DOCUMENTS, PacketOutcome.INCOMPLETE),
        ([WARN], NO_GAPS, DecisionAction.COMPLETE, PacketOutcome.VALIDATED_WITH_WARNINGS),
        ([], WARN_GAPS, DecisionAction.COMPLETE, PacketOutcome.VALIDATED_WITH_WARNINGS),
        ([], NO_GAPS, DecisionAction.COMPLETE, PacketOutcome.VALIDATED),
        ([], None, DecisionAction.COMPLETE, PacketOutcome.VALIDATED),
    ],
)
def test_decision_tree(findings, gaps, action, outcome) -> None:  # type: ignore[no-untyped-def]
    decision = route(findings, gaps)
    assert (decision.action, decision.outcome) == (action, outcome)


def test_reasons_name_the_codes_that_decided() -> None:
    assert route([FATAL, BLOCK]).reasons == ["PDF_TRUNCATED"]
    assert route([BLOCK, WARN]).reasons == ["SIGNATURE_MISSING"]
    assert route([WARN], GAPS).reasons == ["GAP_DOCUMENT_MISSING"]
    assert route([BLOCK, WARN, WARN]).counts == {"COMPLIANCE_BLOCK": 1, "WARNING_DEVIATION": 2}


def test_an_approved_block_continues_to_gaps_then_completes_as_approved() -> None:
    assert route([BLOCK], GAPS, review_approved=True).action is DecisionAction.AWAIT_DOCUMENTS
    decision = route([BLOCK, WARN], NO_GAPS, review_approved=True)
    assert (decision.action, decision.outcome) == (DecisionAction.COMPLETE, PacketOutcome.APPROVED)
    assert route([FATAL], NO_GAPS, review_approved=True).outcome is PacketOutcome.DEAD_LETTERED
