"""The operator commands of the foundation against the running test stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clinflow.keyring import Keyring
from clinflow.settings import Settings
from starters.cli import app

pytestmark = pytest.mark.stack
runner = CliRunner()


def test_status_reports_running_components(stack: Settings) -> None:
    result = runner.invoke(app, ["stack", "status", "--json"])
    assert result.exit_code == 0, result.output
    states = {row["component"]: row["state"] for row in json.loads(result.output)}
    assert states == {
        "temporal": "running",
        "s3": "running",
        "postgres": "running",
        "codec": "running",
    }


def test_storage_init_and_migrate_are_idempotent(stack: Settings) -> None:
    storage = runner.invoke(app, ["storage", "init"])
    assert storage.exit_code == 0, storage.output
    assert "nothing (all present)" in storage.output
    migrate = runner.invoke(app, ["db", "migrate"])
    assert migrate.exit_code == 0, migrate.output
    assert "up to date" in migrate.output


def test_keys_rotate_keeps_old_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keyring.json"
    monkeypatch.setenv("CLINFLOW_KEYRING_FILE", str(path))
    before = Keyring.load_or_create(path)
    old_kid, old_key = before.active("payload")
    result = runner.invoke(app, ["keys", "rotate", "payload"])
    assert result.exit_code == 0, result.output
    after = Keyring.load_or_create(path)
    assert after.active("payload")[0] != old_kid
    assert after.get("payload", old_kid) == old_key
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_unknown_log_component_is_a_clear_error(stack: Settings) -> None:
    result = runner.invoke(app, ["stack", "logs", "nosuch"])
    assert result.exit_code == 1
    assert "unknown component" in result.output
