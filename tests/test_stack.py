"""The local stack manager against the real server binaries."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clinflow.settings import Settings
from clinflow.stack import (
    MEMBER_ENV,
    LocalStack,
    ProcessRecord,
    StackError,
    find_binary,
    stack_members,
)
from tests.conftest import stack_settings
from tests.test_worker_shutdown import POOL_OWNER, REPO, alive, read_pids

pytestmark = pytest.mark.stack


@pytest.fixture
def own_stack() -> Iterator[LocalStack]:
    """A separate stack this module may kill and restart without disturbing other tests."""
    home = Path(tempfile.mkdtemp(prefix="clinflow-stack-test-"))
    os.chmod(home, 0o755)
    local = LocalStack(stack_settings(home))
    try:
        yield local
    finally:
        local.down()
        shutil.rmtree(home, ignore_errors=True)


def _temporal(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(find_binary("temporal")),
            *args,
            "--address",
            settings.temporal_address,
            "--namespace",
            settings.temporal_namespace,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_up_is_idempotent_and_down_stops_exactly_its_processes(own_stack: LocalStack) -> None:
    first = {s.component: s.pid for s in own_stack.up()}
    assert set(first) == {"temporal", "s3", "postgres", "codec"}
    assert all(s.state == "running" for s in own_stack.status())
    again = {s.component: s.pid for s in own_stack.up()}
    assert again == first, "a running stack is reused, not restarted"
    stopped = own_stack.down()
    assert sorted(stopped) == ["codec", "postgres", "s3", "temporal"]
    for pid in first.values():
        assert pid is not None
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
    assert own_stack.down() == []


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def test_killed_temporal_keeps_histories_after_up(own_stack: LocalStack) -> None:
    settings = own_stack.settings
    own_stack.up()
    wf_id = f"survivor-{uuid.uuid4()}"
    started = _temporal(
        settings,
        "workflow",
        "start",
        "--type",
        "NoSuchWorkflowType",
        "--task-queue",
        "nobody-polls-this",
        "--workflow-id",
        wf_id,
    )
    assert started.returncode == 0, started.stderr
    own_stack.kill("temporal")
    assert {s.component: s.state for s in own_stack.status()}["temporal"] == "stale"
    own_stack.up()
    shown = _temporal(settings, "workflow", "describe", "--workflow-id", wf_id)
    assert shown.returncode == 0, shown.stderr
    assert wf_id in shown.stdout


def test_port_taken_by_a_stranger_is_a_clear_error(own_stack: LocalStack) -> None:
    settings = own_stack.settings
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.temporal_port))
        squatter.listen()
        with pytest.raises(StackError, match=rf"temporal: port {settings.temporal_port}.*in use"):
            own_stack.up()


async def test_buckets_are_bootstrapped(stack: Settings, keyring: object) -> None:
    from clinflow.object_store import ObjectStore

    async with ObjectStore(stack, keyring) as store:  # type: ignore[arg-type]
        for bucket in stack.all_buckets:
            await store.client.head_bucket(Bucket=bucket)


async def test_migrations_recorded_and_idempotent(stack: Settings) -> None:
    import asyncpg

    from clinflow.db import apply_migrations, load_migrations

    assert await apply_migrations(stack.admin_dsn()) == [], "second apply changes nothing"
    conn = await asyncpg.connect(stack.admin_dsn())
    try:
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    assert [r["version"] for r in rows] == [m.version for m in load_migrations()]


def test_relative_home_is_made_absolute_for_child_processes(tmp_path: Path) -> None:
    relative = Path(os.path.relpath(tmp_path / "state", Path.cwd()))
    local = LocalStack(Settings(home=relative))
    assert local.settings.home.is_absolute()
    assert local.settings.to_env()["CLINFLOW_HOME"] == str((tmp_path / "state").resolve())


@pytest.mark.parametrize("how", ["spawned by the stack", "recorded before the marker existed"])
def test_down_stops_what_a_killed_worker_left_behind(how: str, tmp_path: Path) -> None:
    """A SIGKILLed worker's pool processes (re-parented to init) do not survive ``down``."""
    local = LocalStack(stack_settings(tmp_path / "home"))  # no servers needed
    pids_file = tmp_path / "pids"
    argv = [sys.executable, "-c", POOL_OWNER, "plain", str(pids_file)]
    if how == "spawned by the stack":
        owner = local.spawn("worker", argv, REPO, env=dict(os.environ)).pid
    else:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLINFLOW_")}
        env["CLINFLOW_HOME"] = str(local.home)  # what a worker gets from settings.to_env()
        owner = subprocess.Popen(argv, cwd=REPO, env=env, start_new_session=True).pid
        local.logs.mkdir(parents=True)
        log = str(local.logs / "worker.log")
        local._record(ProcessRecord("worker", owner, Path(sys.executable).name, 0, log, 0.0))
    owner_reaped = False
    try:
        children = read_pids(pids_file)
        local.kill("worker")  # SIGKILL, and reaped
        owner_reaped = True
        assert all(alive(pid) for pid in children), "the pool processes are orphans now"
        stopped = local.down()
        assert any(item.startswith("leftover processes") for item in stopped), stopped
        assert not [pid for pid in children if alive(pid)]
        assert stack_members(local.home, frozenset()) == []
        assert local.down() == []
    finally:
        leftovers = stack_members(local.home, frozenset({owner}))
        if not owner_reaped:
            leftovers.append(owner)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not owner_reaped:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(owner, 0)


def test_stack_members_never_include_the_caller(tmp_path: Path) -> None:
    env = {**os.environ, MEMBER_ENV: str(tmp_path)}
    code = "import sys, time; sys.stdout.write('up\\n'); sys.stdout.flush(); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"up\n"
        assert stack_members(tmp_path) == [child.pid]
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 10
    while stack_members(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stack_members(tmp_path) == []
