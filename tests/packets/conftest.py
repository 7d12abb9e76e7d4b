"""Fixtures of the site-packet domain tests: generated demo packets and the public corpus."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clinflow.packets.sample_data import DemoPacket, generate_demo_packets

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "pdf"


@pytest.fixture(scope="session")
def demo_packets(tmp_path_factory: pytest.TempPathFactory) -> list[DemoPacket]:
    return generate_demo_packets(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def corpus_pdf() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"public PDF corpus not found at {CORPUS} (shared/ absent)")
    return CORPUS


@pytest.fixture(scope="session")
def tesseract() -> None:
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract is not installed (apt-get install tesseract-ocr)")
