"""The docker-compose deployment: structure, wiring, and agreement with Settings.

The structural checks always run (pyyaml). Compose's own validation runs when the
``docker-compose`` binary is installed (Debian package ``docker-compose``); it
needs no daemon and no network.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr

from clinflow.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
REQUIRED_SERVICES = {
    "temporal-db",
    "temporal-schema",
    "temporal",
    "temporal-namespace",
    "temporal-ui",
    "app-db",
    "s3",
    "s3-security",
    "buckets",
    "migrate",
    "worker",
}
SERVERS = {"temporal-db", "temporal", "app-db", "s3"}
APP_SERVICES = {"worker", "migrate", "buckets"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def settings_env_names() -> set[str]:
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose-style ``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}`` substitution."""

    def sub(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if name in env and (env[name] or not (op or "").startswith(":")):
            return env[name]
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise KeyError(f"required variable {name} unset: {arg}")
        return ""

    return INTERPOLATION.sub(sub, text).replace("$$", "$")


def env_block(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {name: "service_started" for name in raw}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def required_variables(text: str) -> dict[str, str]:
    """A distinct dummy value for every ``${VAR:?...}`` in the file."""
    return {
        m["name"]: f"value-of-{m['name'].lower().replace('_', '-')}"
        for m in INTERPOLATION.finditer(text)
        if m["op"] in (":?", "?")
    }


@pytest.fixture(scope="module")
def compose_text() -> str:
    if not COMPOSE_FILE.exists():
        pytest.fail(f"{COMPOSE_FILE} is missing")
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    doc = yaml.safe_load(compose_text)
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for key in [k for k in os.environ if k.upper().startswith("CLINFLOW_")]:
        monkeypatch.delenv(key)
    yield monkeypatch


# ----------------------------------------------------------------------------- structure


def test_required_services_are_present(services: dict[str, Any]) -> None:
    missing = REQUIRED_SERVICES - set(services)
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"


def test_worker_can_be_scaled(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed container name blocks --scale worker=N"
    assert "hostname" not in worker
    assert not worker.get("ports"), "host ports on the worker collide when scaled"
    for volume in worker.get("volumes") or []:
        source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
        assert not source.startswith(("./", "/")), f"worker replicas would share {source}"


def test_worker_image_is_built_from_the_project(services: dict[str, Any]) -> None:
    build = services["worker"]["build"]
    assert (ROOT / build.get("context", ".")).resolve() == ROOT
    dockerfile = ROOT / build["dockerfile"]
    assert dockerfile == ROOT / "docker" / "worker.Dockerfile"
    text = dockerfile.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "tesseract-ocr" in text
    assert re.search(r"pip install \.(\s|$)", text)
    assert services["worker"]["command"] == ["clinflow", "worker"]
    assert services["migrate"]["command"] == ["clinflow", "db", "migrate"]
    for line in re.findall(r"^COPY (?!--)(.+)$", text, re.M):
        for source in line.split()[:-1]:
            assert (ROOT / source).exists(), f"worker.Dockerfile copies missing {source}"


def test_dependencies_exist_and_conditions_are_meaningful(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert condition in CONDITIONS, f"{name} -> {target}: bad condition {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            if condition == "service_completed_successfully":
                assert str(services[target].get("restart", "no")) == "no", (
                    f"{target} is a one-shot and must not restart"
                )


def test_dependency_graph_has_no_cycles(services: dict[str, Any]) -> None:
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for target in depends_on(services[name]):
            visit(target, (*path, name))
        done.add(name)

    for name in services:
        visit(name, ())


def test_servers_have_healthchecks(services: dict[str, Any]) -> None:
    for name in SERVERS:
        check = services[name].get("healthcheck")
        assert check and check.get("test"), f"{name} needs a healthcheck"
        assert not check.get("disable", False)


def test_worker_waits_for_setup(services: dict[str, Any]) -> None:
    deps = depends_on(services["worker"])
    assert deps.get("temporal") == "service_healthy"
    for one_shot in ("migrate", "buckets", "temporal-namespace"):
        assert deps.get(one_shot) == "service_completed_successfully"


def test_bind_mounted_files_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


# ----------------------------------------------------------------------------- configuration


def test_app_services_share_the_clinflow_env_anchor(
    compose_text: str, compose: dict[str, Any], services: dict[str, Any]
) -> None:
    assert re.search(r"^x-clinflow-env: &clinflow-env\s*$", compose_text, re.M)
    shared = compose["x-clinflow-env"]
    assert shared["CLINFLOW_ENVIRONMENT"] == "compose"
    for name in APP_SERVICES:
        env = env_block(services[name])
        assert {k: env.get(k) for k in shared} == {k: str(v) for k, v in shared.items()}, name


def test_every_clinflow_variable_is_a_settings_field(compose_text: str) -> None:
    used = set(re.findall(r"\bCLINFLOW_[A-Z0-9_]*[A-Z0-9]\b", compose_text))
    assert used, "the compose file sets no CLINFLOW_* variables"
    unknown = used - settings_env_names()
    assert not unknown, f"not fields of clinflow.settings.Settings: {sorted(unknown)}"


def test_secret_settings_are_never_literal(compose: dict[str, Any]) -> None:
    secret_fields = {
        f"CLINFLOW_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if SecretStr in (getattr(field.annotation, "__args__", None) or (field.annotation,))
    }
    assert "CLINFLOW_S3_SECRET_KEY" in secret_fields
    for key, value in compose["x-clinflow-env"].items():
        if key in secret_fields:
            assert re.search(r"\$\{\w+:\?", str(value)), f"{key} must come from a required variable"


def test_worker_environment_builds_valid_settings(
    compose_text: str, clean_env: pytest.MonkeyPatch
) -> None:
    variables = required_variables(compose_text)
    doc = yaml.safe_load(interpolate(compose_text, variables))
    for key, value in env_block(doc["services"]["worker"]).items():
        clean_env.setenv(key, value)
    settings = Settings()
    assert settings.environment == "compose"
    assert settings.temporal_address == "temporal:7233"
    assert settings.keyring_path == Path("/run/secrets/clinflow_keyring")
    assert urlsplit(settings.s3_endpoint_url).hostname == "s3"
    app, admin = urlsplit(settings.app_dsn()), urlsplit(settings.admin_dsn())
    assert app.hostname == admin.hostname == "app-db"
    assert app.username != admin.username, "the app must not connect as the schema owner"
    assert settings.s3_secret_key.get_secret_value() == variables["S3_SECRET_KEY"]


def test_servers_agree_with_the_application(compose_text: str, compose: dict[str, Any]) -> None:
    variables = required_variables(compose_text)
    doc = yaml.safe_load(interpolate(compose_text, variables))
    services = doc["services"]
    app_env = doc["x-clinflow-env"]

    s3 = env_block(services["s3"])
    assert s3["AWS_ACCESS_KEY_ID"] == app_env["CLINFLOW_S3_ACCESS_KEY"]
    assert s3["AWS_SECRET_ACCESS_KEY"] == app_env["CLINFLOW_S3_SECRET_KEY"]

    db = env_block(services["app-db"])
    admin = urlsplit(app_env["CLINFLOW_DATABASE_ADMIN_URL"])
    app = urlsplit(app_env["CLINFLOW_DATABASE_URL"])
    assert (admin.username, admin.password) == (db["POSTGRES_USER"], db["POSTGRES_PASSWORD"])
    assert (app.username, app.password) == (db["APP_ROLE"], db["APP_ROLE_PASSWORD"])
    assert admin.path.lstrip("/") == app.path.lstrip("/") == db["POSTGRES_DB"]
    assert db["POSTGRES_DB"] == app_env["CLINFLOW_PG_DATABASE"]

    namespace = app_env["CLINFLOW_TEMPORAL_NAMESPACE"]
    assert env_block(services["temporal-namespace"])["NAMESPACE"] == namespace
    assert env_block(services["temporal-ui"])["TEMPORAL_DEFAULT_NAMESPACE"] == namespace
    host, port = app_env["CLINFLOW_TEMPORAL_ADDRESS"].rsplit(":", 1)
    assert host == "temporal" and port == "7233"


def test_namespace_search_attributes_match_the_local_stack(services: dict[str, Any]) -> None:
    stack = pytest.importorskip("clinflow.stack")
    declared = dict(
        pair.split("=", 1)
        for pair in env_block(services["temporal-namespace"])["SEARCH_ATTRIBUTES"].split()
    )
    assert declared == dict(stack.SEARCH_ATTRIBUTES)


# ----------------------------------------------------------------------------- object store


def _flags(service: Mapping[str, Any]) -> dict[str, str]:
    """``-name=value`` (or bare ``-name``: "true") arguments of a service's command."""
    out: dict[str, str] = {}
    for arg in service.get("command") or []:
        if str(arg).startswith("-"):
            name, _, value = str(arg).lstrip("-").partition("=")
            out[name] = value or "true"
    return out


def test_s3_gateway_is_the_only_way_into_the_object_store(services: dict[str, Any]) -> None:
    s3 = services["s3"]
    flags = _flags(s3)
    assert s3["command"][0] == "server"
    # Master, volume server and filer listen on the container's loopback only.
    assert flags.get("ip") == "127.0.0.1" and flags.get("ip.bind") == "127.0.0.1"
    assert flags.get("s3.ip.bind") == "0.0.0.0"
    assert flags.get("disableHttp") == "true", "master and filer HTTP APIs must be off"
    assert flags.get("s3.allowDeleteBucketNotEmpty") == "false"
    for other in ("webdav", "sftp"):
        assert flags.get(other, "false") == "false", f"{other} gateway must stay off"
    published = [str(p).rsplit(":", 1)[-1] for p in s3.get("ports") or []]
    assert published == ["8333"], "only the S3 port may be published"
    # security.toml comes from the one-shot, through a volume no application service mounts.
    mounts = {str(v).split(":")[0]: str(v).split(":")[1] for v in s3["volumes"]}
    assert mounts.get("s3-security") == s3["working_dir"], "weed reads ./security.toml"
    assert f"s3-security:{s3['working_dir']}:ro" in s3["volumes"]
    assert depends_on(s3).get("s3-security") == "service_completed_successfully"
    one_shot = services["s3-security"]
    assert one_shot["entrypoint"][-1] == s3["working_dir"]
    assert f"s3-security:{s3['working_dir']}" in one_shot["volumes"]
    for name, service in services.items():
        if name not in ("s3", "s3-security"):
            sources = [str(v).split(":")[0] for v in service.get("volumes") or []]
            assert "s3-security" not in sources, f"{name} must not see SeaweedFS's keys"
    # Healthy only when locked down: the volume server demands a JWT.
    assert "401" in " ".join(s3["healthcheck"]["test"])


def test_s3_security_one_shot_writes_private_keys_once(
    services: dict[str, Any], tmp_path: Path
) -> None:
    """Runs the one-shot's own command (into a temporary directory instead of the volume)."""
    entrypoint = list(services["s3-security"]["entrypoint"])
    assert entrypoint[:2] == ["python", "-c"]
    argv = [sys.executable, *entrypoint[1:-1], str(tmp_path / "security")]

    def run() -> dict[str, bytes]:
        subprocess.run(argv, cwd=ROOT, check=True, timeout=60, capture_output=True)
        files = [p for p in (tmp_path / "security").rglob("*") if p.is_file()]
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        return {str(p.relative_to(tmp_path)): p.read_bytes() for p in files}

    first = run()
    toml = first["security/security.toml"].decode()
    for section in ("[jwt.signing]", "[jwt.filer_signing]", "[grpc]", "[grpc.client]"):
        assert section in toml
    assert f'ca = "{tmp_path}/security/security/ca.crt"' in toml
    assert run() == first, "a second run keeps the keys the servers already use"


# ----------------------------------------------------------------------------- docker-compose


def _docker_compose_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CLINFLOW_")}
    env.update(extra)
    return env


def test_docker_compose_accepts_the_file(compose_text: str) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip(
            "docker-compose binary not installed (Debian: apt-get install docker-compose); "
            "the structural checks above still ran"
        )
    variables = required_variables(compose_text)
    ok = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        env=_docker_compose_env(variables),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr

    missing = dict(variables)
    missing.pop("S3_SECRET_KEY")
    refused = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        env=_docker_compose_env(missing),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0 and "S3_SECRET_KEY" in refused.stderr
