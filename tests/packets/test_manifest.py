from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from clinflow.errors import FatalSchemaMismatch
from clinflow.packets import (
    DocumentType,
    document_key,
    infer_manifest,
    load_manifest,
    manifest_for,
    packet_key,
    parse_manifest,
)

MANIFEST = {
    "site_id": "SITE-US-0101",
    "site_number": 101,
    "protocol_number": "CFX-301",
    "protocol_version": 3.0,
    "region": "us",
    "country": "US",
    "target_activation_date": "2026-06-15",
    "files": [{"path": "a.pdf", "doc_type": "FDA_1572"}, {"path": "b.docx"}],
}


def test_json_and_yaml_manifests_load_to_the_same_model(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps(MANIFEST))
    yaml_text = "\n".join(
        [
            "site_id: SITE-US-0101",
            "site_number: 101",
            "protocol_number: CFX-301",
            "protocol_version: 3.0",
            "region: us",
            "country: US",
            "target_activation_date: 2026-06-15",
            "files:",
            "  - {path: a.pdf, doc_type: FDA_1572}",
            "  - path: b.docx",
        ]
    )
    (tmp_path / "m.yaml").write_text(yaml_text)
    from_json = load_manifest(tmp_path / "manifest.json")
    from_yaml = load_manifest(tmp_path / "m.yaml")
    assert from_json == from_yaml
    assert from_json.protocol_version == "3.0"
    assert from_json.site_number == "101"
    assert from_json.target_activation_date == date(2026, 6, 15)
    assert from_json.files[0].doc_type is DocumentType.FDA_1572
    assert from_json.packet_id == "packet-SITE-US-0101-CFX-301-v3.0"


@pytest.mark.parametrize(
    "change",
    [
        {"region": "!!"},
        {"files": [{"path": "a.pdf", "doc_type": "Form FDA 9999"}]},
        {"files": [{"path": "../outside.pdf"}]},
        {"files": [{"path": "/etc/passwd"}]},
        {"files": [{"path": "a.pdf", "sha256": "not-a-hash"}]},
        {"unexpected": 1},
    ],
)
def test_invalid_manifests_are_fatal_with_manifest_invalid(change: dict[str, object]) -> None:
    with pytest.raises(FatalSchemaMismatch) as info:
        parse_manifest(json.dumps({**MANIFEST, **change}), fmt="json")
    assert info.value.code == "MANIFEST_INVALID"


def test_folder_layout_is_inferred_without_a_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "eu" / "SITE-DE-0201__NVX-210__v1.1__2026-07-01"
    folder.mkdir(parents=True)
    for name in ("cv.docx", "irb.pdf", ".hidden", "upload.pdf.part"):
        (folder / name).write_bytes(b"x")
    manifest, found_folder = manifest_for(folder)
    assert found_folder == folder
    assert (manifest.site_id, manifest.protocol_number, manifest.protocol_version) == (
        "SITE-DE-0201",
        "NVX-210",
        "1.1",
    )
    assert manifest.region == "eu"
    assert manifest.target_activation_date == date(2026, 7, 1)
    assert [f.path for f in manifest.files] == ["cv.docx", "irb.pdf"]


def test_a_folder_that_does_not_follow_the_layout_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "us" / "random-folder"
    folder.mkdir(parents=True)
    with pytest.raises(FatalSchemaMismatch) as info:
        infer_manifest(folder)
    assert info.value.code == "MANIFEST_INVALID"


def test_document_key_is_deterministic_and_temporal_safe() -> None:
    digest = "a" * 64
    key = document_key(digest, "SITE US/01", "3.0")
    assert key == f"doc-{digest}-SITE_US_01-v3.0"
    assert key == document_key(digest, "SITE US/01", "3.0")
    assert document_key(digest, "SITE US/01", "3.1") != key
    assert packet_key("S 1", "CFX-301", "3.0") == "packet-S_1-CFX-301-v3.0"
    with pytest.raises(ValueError):
        document_key("ABC", "s", "1")


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("Form FDA 1572", "FDA_1572"),
        (1572, "FDA_1572"),
        ("fda-1572", "FDA_1572"),
        ("irb_approval", "IRB_APPROVAL"),
        ("GCP", "GCP_CERTIFICATE"),
        ("DOA log", "DELEGATION_LOG"),
        ("gcp_certificate", "GCP_CERTIFICATE"),
        ("Licence", "MEDICAL_LICENSE"),
    ],
)
def test_declared_types_are_case_insensitive_with_aliases(written: object, canonical: str) -> None:
    from clinflow.packets.manifest import PacketManifest

    m = PacketManifest(
        site_id="S",
        protocol_number="CFX-301",
        protocol_version="3.0",
        region="us",
        files=[{"path": "a.pdf", "doc_type": written}],  # type: ignore[list-item]
    )
    assert m.files[0].doc_type == canonical


@pytest.mark.parametrize(
    ("region", "country", "order"),
    [
        ("US", "US", "MDY"),
        ("Eu", "de", "DMY"),
        ("APAC", "JP", "YMD"),
        ("apac", "KR", "YMD"),
        ("Asia-Pacific", "SG", "DMY"),
        ("eu", None, "DMY"),
        ("us", None, "MDY"),
    ],
)
def test_region_aliases_and_country_date_order(
    region: str, country: str | None, order: str
) -> None:
    from clinflow.packets.manifest import PacketManifest

    m = PacketManifest(
        site_id="S",
        protocol_number="CFX-301",
        protocol_version="3.0",
        region=region,
        country=country,
    )
    assert m.region in {"us", "eu", "apac"} and m.date_order == order
