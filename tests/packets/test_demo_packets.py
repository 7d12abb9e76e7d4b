"""Every generated demo packet evaluates, in-process, to the outcome it was made for."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinflow.packets import PacketEvaluation, PacketOutcome, evaluate_packet, load_manifest
from clinflow.packets.sample_data import DEMO_AS_OF, PACKETS, DemoPacket, generate_demo_packets

PAYLOAD_LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def evaluations(demo_packets: list[DemoPacket], tesseract: None) -> dict[str, PacketEvaluation]:
    return {p.name: evaluate_packet(Path(p.path), as_of=DEMO_AS_OF) for p in demo_packets}


@pytest.mark.parametrize("name", [spec.name for spec in PACKETS])
def test_demo_packet_reaches_its_expected_outcome(
    name: str, demo_packets: list[DemoPacket], evaluations: dict[str, PacketEvaluation]
) -> None:
    [packet] = [p for p in demo_packets if p.name == name]
    evaluation = evaluations[name]
    assert evaluation.decision.outcome is packet.expected_outcome, evaluation.decision
    codes = {f.code for f in evaluation.findings}
    if evaluation.gaps is not None:
        codes |= {g.code for g in evaluation.gaps.items} | {
            w.code for w in evaluation.gaps.warnings
        }
    assert set(packet.expected_codes) <= codes
    if packet.expected_outcome is PacketOutcome.VALIDATED:
        assert codes == set()


def test_demo_set_covers_both_regions_and_every_format(demo_packets: list[DemoPacket]) -> None:
    assert {p.region for p in demo_packets} >= {"us", "eu"}
    outcomes = {p.expected_outcome for p in demo_packets}
    assert outcomes >= {
        PacketOutcome.VALIDATED,
        PacketOutcome.VALIDATED_WITH_WARNINGS,
        PacketOutcome.BLOCKED,
        PacketOutcome.INCOMPLETE,
        PacketOutcome.DEAD_LETTERED,
    }
    suffixes = {f.suffix for p in demo_packets for f in Path(p.path).iterdir()}
    assert {".pdf", ".docx", ".yaml"} <= suffixes


def test_scanned_documents_were_ocrd(evaluations: dict[str, PacketEvaluation]) -> None:
    complete = evaluations["us-101-complete"]
    [scan] = [d for d in complete.documents if d.name == "medical_license_scan.pdf"]
    assert scan.ocr_pages == [0]
    assert scan.extraction is not None and scan.extraction.doc_type == "MEDICAL_LICENSE"


def test_evaluations_fit_in_a_workflow_payload(evaluations: dict[str, PacketEvaluation]) -> None:
    for evaluation in evaluations.values():
        data = evaluation.model_dump_json()
        assert len(data) < PAYLOAD_LIMIT
        assert PacketEvaluation.model_validate_json(data) == evaluation


def test_generation_is_deterministic(tmp_path: Path, demo_packets: list[DemoPacket]) -> None:
    again = generate_demo_packets(tmp_path, only=["eu-201-complete"])
    [first] = [p for p in demo_packets if p.name == "eu-201-complete"]
    for file in Path(first.path).iterdir():
        assert (Path(again[0].path) / file.name).read_bytes() == file.read_bytes(), file.name
    assert load_manifest(Path(first.path) / "manifest.yaml").region == "eu"
