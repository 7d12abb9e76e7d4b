"""``clinflow packets config`` and the ``--json`` renderings of the packet commands (no stack)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from activities.packets_models import (
    BatchSummary,
    DocumentSummary,
    PacketSettled,
    PacketStatus,
    PacketStatusName,
)
from clinflow.errors import ErrorCategory
from clinflow.packets import data_files
from clinflow.packets.checklists import available_regions, load_checklist
from clinflow.packets.models import DocumentType, Finding, GapItem, GapReport
from starters import packets_cli
from starters.packets_config_cli import config_app, init_config, shipped_files, validate_config

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from the shipped defaults and the default served regions."""
    monkeypatch.delenv(data_files.ENV, raising=False)
    monkeypatch.delenv("CLINFLOW_PACKETS_REGIONS", raising=False)
    data_files.configure(None)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "study"
    init_config(target)
    return target


def _validate(path: Path) -> tuple[int, str]:
    result = runner.invoke(config_app, ["validate", str(path)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


# --------------------------------------------------------------------------- init / validate
def test_init_copies_every_shipped_file_and_validates(folder: Path) -> None:
    for rel in shipped_files():
        assert (folder / rel).is_file(), rel
    assert {"aliases.yaml", "checklists/us.yaml", "rules/validation_rules.yaml"} <= set(
        shipped_files()
    )
    code, out = _validate(folder)
    assert code == 0, out
    assert "valid" in out and "4 regions" in out


def test_init_creates_missing_parents(tmp_path: Path) -> None:
    result = runner.invoke(config_app, ["init", str(tmp_path / "a" / "b")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "b" / "checklists" / "eu.yaml").is_file()


def test_init_refuses_to_overwrite_and_names_the_file(folder: Path) -> None:
    (folder / "checklists" / "us.yaml").write_text("# mine\n")
    for rel in shipped_files():
        if rel != "checklists/us.yaml":
            (folder / rel).unlink()
    result = runner.invoke(config_app, ["init", str(folder)])
    assert result.exit_code == 1
    assert "us.yaml" in result.output and "not overwriting" in result.output
    assert (folder / "checklists" / "us.yaml").read_text() == "# mine\n"
    assert not (folder / "aliases.yaml").exists(), "nothing written when refusing"


def test_validate_reports_unknown_key_with_file_and_key(folder: Path) -> None:
    _edit(
        folder / "checklists" / "us.yaml",
        "GCP_CERTIFICATE: {required: true}",
        "GCP_CERTIFICATE: {requried: true}",
    )
    code, out = _validate(folder)
    assert code == 1
    assert "checklists/us.yaml: documents.GCP_CERTIFICATE.requried: unknown key" in out


def test_validate_reports_wrong_type(folder: Path) -> None:
    _edit(
        folder / "checklists" / "eu.yaml",
        "GCP_CERTIFICATE: {required: true}",
        "GCP_CERTIFICATE: {required: true, min_count: many}",
    )
    code, out = _validate(folder)
    assert code == 1
    assert "checklists/eu.yaml: documents.GCP_CERTIFICATE.min_count:" in out
    assert "integer" in out


def test_validate_reports_unknown_doc_type_in_checklist(folder: Path) -> None:
    _edit(folder / "checklists" / "uk.yaml", "MEDICAL_LICENSE:", "MEDICAL_LICENCE_UK:")
    code, out = _validate(folder)
    assert code == 1
    assert "checklists/uk.yaml: documents.MEDICAL_LICENCE_UK: unknown key" in out


def test_validate_reports_yaml_syntax_error_with_line(folder: Path) -> None:
    path = folder / "rules" / "classification.yaml"
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("min_score:"))
    lines.insert(index + 1, "  broken: [")
    path.write_text("\n".join(lines) + "\n")
    code, out = _validate(folder)
    assert code == 1
    assert f"rules/classification.yaml: line {index + 2}" in out
    assert "YAML syntax error" in out


def test_validate_names_the_rule_row_and_param(folder: Path) -> None:
    _edit(folder / "rules" / "validation_rules.yaml", "params: {days: 90}", "params: {days: [90]}")
    code, out = _validate(folder)
    assert code == 1
    assert "rules/validation_rules.yaml: rules[" in out and "].params.days:" in out


def test_validate_cross_checks_regions_and_aliases(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _edit(
        folder / "rules" / "protocol_versions.yaml",
        "regions: [us]}",
        "regions: [us, latam]}",
    )
    _edit(folder / "aliases.yaml", "cv: INVESTIGATOR_CV", "cv: CURRICULUM")
    monkeypatch.setenv("CLINFLOW_PACKETS_REGIONS", "us,eu,uk,apac,mena")
    code, out = _validate(folder)
    assert code == 1
    assert "checklists/mena.yaml: missing: region 'mena' is served" in out
    assert "rules/protocol_versions.yaml: protocols.NVX-210.versions.2.0.regions:" in out
    assert "'latam' has no checklist" in out
    assert "aliases.yaml: doc_types.cv: 'CURRICULUM' is not a document type" in out


def test_a_new_region_checklist_is_used(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    latam = (
        (folder / "checklists" / "apac.yaml").read_text().replace("region: apac", "region: latam")
    )
    (folder / "checklists" / "latam.yaml").write_text(latam)
    monkeypatch.setenv("CLINFLOW_PACKETS_REGIONS", "us,eu,uk,apac,latam")
    code, out = _validate(folder)
    assert code == 0, out
    assert "latam" in out


def test_symlink_escaping_the_folder_is_an_error(folder: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text((folder / "checklists" / "us.yaml").read_text())
    (folder / "checklists" / "us.yaml").unlink()
    (folder / "checklists" / "us.yaml").symlink_to(outside)
    code, out = _validate(folder)
    assert code == 1
    assert "checklists/us.yaml: symbolic link leading outside the configuration folder" in out
    assert "Traceback" not in out


def test_validate_restores_the_previous_configuration(folder: Path) -> None:
    _edit(folder / "checklists" / "us.yaml", "name:", "name: Study X  #")
    assert validate_config(folder).valid
    assert data_files.config_dir() is None
    assert "Study X" not in load_checklist("us").name
    assert "latam" not in available_regions()


def test_validate_defaults_to_the_configured_folder(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _edit(folder / "checklists" / "us.yaml", "GCP_CERTIFICATE: {", "GCP_CERTIFICATE: {bad: 1, ")
    monkeypatch.setenv(data_files.ENV, str(folder))
    result = runner.invoke(config_app, ["validate"])
    assert result.exit_code == 1
    assert "checklists/us.yaml: documents.GCP_CERTIFICATE.bad: unknown key" in result.output
    shipped = runner.invoke(config_app, ["validate", "--json"], env={data_files.ENV: ""})
    assert shipped.exit_code == 0, shipped.output
    assert json.loads(shipped.output)["valid"] is True


def test_validate_json_lists_problems(folder: Path) -> None:
    _edit(folder / "checklists" / "us.yaml", "GCP_CERTIFICATE: {", "GCP_CERTIFICATE: {bad: 1, ")
    result = runner.invoke(config_app, ["validate", str(folder), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["valid"] is False
    assert report["problems"][0]["file"] == "checklists/us.yaml"
    assert report["problems"][0]["key"] == "documents.GCP_CERTIFICATE.bad"


# --------------------------------------------------------------------------- show
def test_show_json_names_the_source_of_an_overridden_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = tmp_path / "study"
    (study / "rules").mkdir(parents=True)
    shipped = Path(data_files.__file__).parent.parent / "data" / "rules" / "validation_rules.yaml"
    text = shipped.read_text().replace("params: {days: 90}", "params: {days: 60}")
    (study / "rules" / "validation_rules.yaml").write_text(text)
    monkeypatch.setenv(data_files.ENV, str(study))
    result = runner.invoke(config_app, ["show", "--json"])
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)
    by_file = {f["file"]: f for f in config["files"]}
    rules = by_file["rules/validation_rules.yaml"]
    assert rules["source"] == "config"
    assert rules["path"] == str((study / "rules" / "validation_rules.yaml").resolve())
    assert by_file["checklists/us.yaml"]["source"] == "shipped"
    assert "FDA_1572" in by_file["checklists/us.yaml"]["summary"]["documents"]
    assert "CFX-301" in by_file["rules/protocol_versions.yaml"]["summary"]["protocols"]
    changed = [o for o in config["rule_overrides"] if o["change"] == "param"]
    assert changed and changed[0]["shipped"] == 90 and changed[0]["effective"] == 60
    text_out = runner.invoke(config_app, ["show"])
    assert text_out.exit_code == 0, text_out.output
    assert "rule overrides" in text_out.output


def test_show_reports_an_escaping_link_instead_of_failing(folder: Path, tmp_path: Path) -> None:
    outside = tmp_path / "x.yaml"
    outside.write_text("{}\n")
    (folder / "aliases.yaml").unlink()
    (folder / "aliases.yaml").symlink_to(outside)
    result = runner.invoke(config_app, ["show", "--json", "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    entry = next(f for f in json.loads(result.output)["files"] if f["file"] == "aliases.yaml")
    assert entry["source"] == "error" and "outside" in entry["error"]


def test_config_is_a_packets_subcommand() -> None:
    result = runner.invoke(packets_cli.packets_app, ["config", "validate", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["valid"] is True


# --------------------------------------------------------------------------- --json renderings
def _status() -> PacketStatus:
    return PacketStatus(
        packet_id="pkt-1",
        workflow_id="pkt-1",
        status=PacketStatusName.AWAITING_DOCUMENTS,
        region="eu",
        site_id="0142",
        protocol_version="3.0",
        reasons=["GAP_MISSING"],
        findings=[
            Finding(
                code="SIGNATURE_UNCERTAIN",
                category=ErrorCategory.COMPLIANCE_BLOCK,
                message="check page 2",
                document="cv.pdf",
                details={"page": "2", "region": "0.5,0.8,0.9,0.9"},
            )
        ],
        gaps=GapReport(
            region="eu",
            checklist="European Union site activation",
            missing=[
                GapItem(code="GAP_MISSING", doc_type=DocumentType.IRB_APPROVAL, message="missing")
            ],
        ),
        documents=[
            DocumentSummary(
                name="icf.pdf",
                document_key="k1",
                doc_type=DocumentType.ICF_APPROVAL,
                classified_as=DocumentType.ICF_APPROVAL,
                classification_confidence=0.93,
                signature="signed",
                signature_evidence=["signed typed page 1 'Signature'"],
                codes=["SIGNATURE_UNCERTAIN"],
            )
        ],
        gap_deadline=datetime(2026, 5, 1, tzinfo=UTC),
    )


def test_status_json_carries_documents_findings_and_evidence() -> None:
    data = json.loads(json.dumps(packets_cli.status_json(_status())))
    assert data["status"] == "AWAITING_DOCUMENTS" and data["has_gaps"] is True
    doc = data["documents"][0]
    assert doc["classified_as"] == "ICF_APPROVAL"
    assert doc["classification_confidence"] == 0.93
    assert doc["signature"] == "signed" and doc["signature_evidence"]
    assert doc["codes"] == ["SIGNATURE_UNCERTAIN"]
    assert data["findings"][0]["details"]["page"] == "2"
    assert data["findings"][0]["category"] == "COMPLIANCE_BLOCK"


def test_gaps_json() -> None:
    data = packets_cli.gaps_json(_status())
    assert json.loads(json.dumps(data)) == data
    assert data["has_gaps"] is True
    assert data["missing"][0]["doc_type"] == "IRB_APPROVAL"
    assert data["documents"][0]["classified_as"] == "ICF_APPROVAL"
    assert data["gap_deadline"].startswith("2026-05-01")


def test_list_json_from_visibility_rows() -> None:
    def attr(name: str, value: str) -> SimpleNamespace:
        return SimpleNamespace(key=SimpleNamespace(name=name), value=value)

    wf = SimpleNamespace(
        id="pkt-apac",
        start_time=datetime(2026, 4, 1, 9, 30, tzinfo=UTC),
        typed_search_attributes=[
            attr("ClinflowStatus", "DEAD_LETTERED"),
            attr("ClinflowRegion", "apac"),
            attr("ClinflowErrorCategory", "FATAL_SCHEMA_MISMATCH"),
        ],
    )
    rows = [packets_cli.packet_row(wf)]
    data = json.loads(json.dumps(packets_cli.list_json(rows, "ClinflowKind = 'packet'")))
    assert data["count"] == 1
    assert data["packets"][0]["status"] == "DEAD_LETTERED"
    assert data["packets"][0]["region"] == "apac"
    assert data["packets"][0]["started"].startswith("2026-04-01T09:30")


def test_summary_json() -> None:
    summary = BatchSummary(
        batch_id="b1",
        total=2,
        settled=2,
        outcomes={"VALIDATED": 1, "DEAD_LETTERED": 1},
        packets=[
            PacketSettled(packet_id="a", status="VALIDATED"),
            PacketSettled(
                packet_id="b", status="DEAD_LETTERED", reasons=["MANIFEST_INVALID"], note="x"
            ),
        ],
    )
    data = json.loads(json.dumps(packets_cli.summary_json(summary)))
    assert data["outcomes"] == {"VALIDATED": 1, "DEAD_LETTERED": 1}
    assert data["packets"][1]["reasons"] == ["MANIFEST_INVALID"]


def test_tables_are_not_truncated_in_a_pipe(capsys: pytest.CaptureFixture[str]) -> None:
    st = _status()
    long_message = "A very long finding message " * 12 + "END-OF-MESSAGE"
    st = st.model_copy(
        update={
            "findings": [st.findings[0].model_copy(update={"message": long_message})],
            "packet_id": "packet-" + "x" * 90,
        }
    )
    packets_cli.print_status(st)
    out = capsys.readouterr().out
    assert "…" not in out
    assert "END-OF-MESSAGE" in out
    assert "x" * 90 in "".join(out.replace("│", " ").split())


def test_configure_export_reaches_spawned_processes(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker configures its study folder from its settings and exports it, so the parse and
    OCR processes it spawns (which read the environment) use the same files."""
    import subprocess
    import sys

    monkeypatch.setenv(data_files.ENV, "")  # restored by monkeypatch after the test
    _edit(folder / "checklists" / "us.yaml", "min_pages: 2", "min_pages: 3")
    data_files.configure(folder, export=True)
    try:
        assert load_checklist("us").documents[DocumentType.FDA_1572].min_pages == 3
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "from clinflow.packets.checklists import load_checklist as l;"
                "from clinflow.packets.models import DocumentType as T;"
                "print(l('us').documents[T.FDA_1572].min_pages)",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert child.stdout.strip() == "3"
    finally:
        data_files.configure(None, export=True)
    assert load_checklist("us").documents[DocumentType.FDA_1572].min_pages == 2
