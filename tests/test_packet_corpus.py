"""The benchmark's packet generator (bench.packet_corpus): deterministic, with truth that matches
its files, and varied enough to be a yardstick (every type, format, style and outcome)."""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from bench.packet_corpus.doc import SIGNED_STYLES, UNSIGNED_STYLES
from bench.packet_corpus.scenarios import EXPECTED, SLOTS, generate, scenarios_for
from clinflow.packets.manifest import load_manifest
from tests.conftest import corpus_path

DOC_TYPES = {
    "FDA_1572",
    "INVESTIGATOR_CV",
    "MEDICAL_LICENSE",
    "GCP_CERTIFICATE",
    "IRB_APPROVAL",
    "ICF_APPROVAL",
    "DELEGATION_LOG",
    "FINANCIAL_DISCLOSURE",
    "CTA_BUDGET",
    "PROTOCOL_SIGNATURE_PAGE",
    "LAB_CERTIFICATION",
}


@pytest.fixture(scope="module")
def seed_101(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    corpus_path("pdf", "clinical")
    out = tmp_path_factory.mktemp("corpus") / "101"
    return out, generate(101, 30, out)


def _docs(truth: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for p in truth["packets"] for d in p["documents"]]


def test_the_scenarios_of_a_seed_cover_every_outcome() -> None:
    chosen = scenarios_for(101, 30)
    assert len(chosen) == len(SLOTS) == 30
    assert Counter(EXPECTED[s][0] for s in chosen) == {
        "VALIDATED": 8,
        "BLOCKED": 10,
        "INCOMPLETE": 3,
        "DEAD_LETTERED": 4,
        "VALIDATED_WITH_WARNINGS": 5,
    }
    assert scenarios_for(101, 30) == chosen
    assert any(scenarios_for(s, 30) != chosen for s in (102, 103, 104))


def test_generation_is_deterministic_per_seed(tmp_path: Path) -> None:
    corpus_path("pdf", "clinical")
    first = generate(7, 3, tmp_path / "a")
    second = generate(7, 3, tmp_path / "b")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    other = generate(8, 3, tmp_path / "c")
    assert json.dumps(first, sort_keys=True) != json.dumps(other, sort_keys=True)


def test_truth_matches_the_files(seed_101: tuple[Path, dict[str, Any]]) -> None:
    out, truth = seed_101
    assert json.loads((out / "truth.json").read_text()) == truth
    for packet in truth["packets"]:
        folder = out / packet["packet"]
        manifest = load_manifest(folder / "manifest.yaml")
        assert [f.path for f in manifest.files] == [d["path"] for d in packet["documents"]]
        if packet["scenario"] != "unknown_region":
            assert manifest.region == packet["region"]
        for doc, entry in zip(packet["documents"], manifest.files, strict=True):
            path = folder / doc["path"]
            assert path.is_file()
            if doc["format"] == "pdf_text":
                text = "".join(p.extract_text() or "" for p in PdfReader(path).pages)
                assert len(text) > 100, doc["path"]
            elif doc["format"] == "pdf_scan":
                reader = PdfReader(path)
                assert all(not (p.extract_text() or "").strip() for p in reader.pages)
                assert doc["dpi"] in (200, 300)
            elif doc["format"] == "docx":
                assert "word/document.xml" in zipfile.ZipFile(path).namelist()
            if doc["doc_type"] == "UNKNOWN":
                assert entry.doc_type is None
            else:
                assert entry.doc_type is not None and entry.doc_type.value == doc["doc_type"]


def test_a_seed_is_varied(seed_101: tuple[Path, dict[str, Any]]) -> None:
    _, truth = seed_101
    docs = _docs(truth)
    assert {d["doc_type"] for d in docs} >= DOC_TYPES
    formats = Counter(d["format"] for d in docs)
    assert 0.2 <= formats["pdf_scan"] / len(docs) <= 0.3, formats
    assert 0.07 <= formats["docx"] / len(docs) <= 0.16, formats
    styles = {b["style"] for d in docs for b in d["signature_blocks"]}
    assert styles >= set(SIGNED_STYLES) | set(UNSIGNED_STYLES), styles
    layouts: dict[str, set[str]] = {}
    for d in docs:
        layouts.setdefault(d["doc_type"], set()).add(d["layout"])
    assert all(len(layouts[t]) >= 2 for t in DOC_TYPES), layouts
    assert {p["region"] for p in truth["packets"]} >= {"us", "eu", "latam"}
    assert len({p["country"] for p in truth["packets"]}) >= 6


def test_clean_packets_are_complete_and_signed(seed_101: tuple[Path, dict[str, Any]]) -> None:
    _, truth = seed_101
    for packet in truth["packets"]:
        if packet["scenario"] != "clean":
            continue
        types = Counter(d["doc_type"] for d in packet["documents"])
        required = DOC_TYPES - {"FDA_1572"} if packet["region"] != "us" else DOC_TYPES
        assert set(types) >= required, packet["packet"]
        assert all(d["signed"] for d in packet["documents"] if d["signature_required"])
