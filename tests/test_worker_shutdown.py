"""Worker shutdown: SIGTERM drains a worker (the in-flight activity finishes on its first
attempt); SIGKILL leaves no process behind (pool processes die with their parent)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from temporalio.client import Client

from clinflow.process_hygiene import die_with_parent
from clinflow.settings import Settings

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[1]

#: ``python -c POOL_OWNER MODE PIDS_FILE``: a process owning a spawn-context pool of two
#: processes (MODE: ``die_with_parent``, ``plain`` or ``parse_pool``, the packet activities'
#: pool); it writes the pool processes' pids to PIDS_FILE, then waits to be killed.
POOL_OWNER = """
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor, wait
from clinflow.process_hygiene import die_with_parent
mode, out = sys.argv[1], sys.argv[2]
if mode == "parse_pool":
    from activities.packets import _parse_pool
    pool = _parse_pool(2)
else:
    init = die_with_parent if mode == "die_with_parent" else None
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), initializer=init)
wait([pool.submit(os.getpid) for _ in range(2)])  # two at once: both processes start
pids = sorted(p.pid for p in multiprocessing.active_children())
with open(out + ".tmp", "w") as fh:
    fh.write(" ".join(map(str, pids)))
os.replace(out + ".tmp", out)
time.sleep(3600)
"""


def read_pids(path: Path, timeout: float = 120.0) -> list[int]:
    """The pids a POOL_OWNER wrote (waits for the file)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, "the pool owner never reported its pool"
        time.sleep(0.1)
    return [int(p) for p in path.read_text().split()]


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def carrying(token: str) -> list[int]:
    """Pids of live processes whose environment has ``POOL_OWNER_TOKEN=token``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("POOL_OWNER_TOKEN") == token and alive(proc.pid):
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _parse_pool_dies_with_parent() -> bool:
    from activities.packets import _parse_pool

    pool = _parse_pool(1)  # starts no process until the first task
    try:
        init = getattr(pool, "_initializer", None)
        return die_with_parent in (init, getattr(init, "func", None))
    finally:
        pool.shutdown()


StartOwner = Callable[[str], tuple[subprocess.Popen[bytes], Path]]


@pytest.fixture
def pool_owner(tmp_path: Path) -> Iterator[tuple[StartOwner, str]]:
    """A function starting a POOL_OWNER in a given mode, and the token in the environment of
    everything it starts; whatever is left is killed at the end."""
    token = uuid.uuid4().hex
    started: list[subprocess.Popen[bytes]] = []

    def start(mode: str) -> tuple[subprocess.Popen[bytes], Path]:
        pids_file = tmp_path / f"pids-{mode}"
        proc = subprocess.Popen(
            [sys.executable, "-c", POOL_OWNER, mode, str(pids_file)],
            cwd=REPO,
            env={**os.environ, "POOL_OWNER_TOKEN": token},
        )
        started.append(proc)
        return proc, pids_file

    try:
        yield start, token
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for pid in carrying(token):
            os.kill(pid, signal.SIGKILL)


async def test_sigterm_drains_in_flight_activity(
    stack: Settings, temporal_client: Client, tmp_path: Path
) -> None:
    queue = f"drain-{uuid.uuid4()}"
    marker = tmp_path / "marker"

    def start_worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.drain_worker_app", queue],
            cwd=REPO,
            env={**os.environ, **stack.to_env()},
        )

    proc = await asyncio.to_thread(start_worker)
    successor: subprocess.Popen[bytes] | None = None
    try:
        handle = await temporal_client.start_workflow(
            "DrainTestWorkflow", str(marker), id=f"drain-{uuid.uuid4()}", task_queue=queue
        )
        for _ in range(300):
            if marker.exists():
                break
            await asyncio.sleep(0.1)
        assert marker.read_text() == "started", "the activity never started"
        proc.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(proc.wait, 30)
        assert exit_code == 0
        assert marker.read_text() == "finished", "the in-flight activity was cut short"
        # The activity's result is recorded; a restarted worker finishes the workflow
        # without running the activity again.
        successor = await asyncio.to_thread(start_worker)
        assert await asyncio.wait_for(handle.result(), 60) == "attempt-1"
    finally:
        for p in (proc, successor):
            if p is not None and p.poll() is None:
                p.kill()


@pytest.mark.parametrize("mode", ["die_with_parent", "parse_pool"])
def test_pool_processes_die_with_a_killed_worker(
    mode: str, pool_owner: tuple[StartOwner, str]
) -> None:
    if mode == "parse_pool" and not _parse_pool_dies_with_parent():
        pytest.skip(
            "activities.packets._parse_pool does not pass "
            "clinflow.process_hygiene.die_with_parent as its initializer yet"
        )
    start, token = pool_owner
    owner, pids_file = start(mode)
    children = read_pids(pids_file)
    assert len(children) == 2
    for pid in children:
        assert psutil.Process(pid).ppid() == owner.pid
    owner.kill()
    owner.wait(10)
    assert wait_until(lambda: not any(alive(pid) for pid in children), 30), (
        f"pool processes outlived their parent: {[p for p in children if alive(p)]}"
    )
    # Nothing else of it is left either (the resource tracker, say).
    assert wait_until(lambda: not carrying(token), 30), carrying(token)


def test_without_the_initializer_pool_processes_are_orphaned(
    pool_owner: tuple[StartOwner, str],
) -> None:
    """The control: the test above would see orphans; here they survive their parent."""
    start, _ = pool_owner
    owner, pids_file = start("plain")
    children = read_pids(pids_file)
    owner.kill()
    owner.wait(10)
    time.sleep(2)
    survivors = [pid for pid in children if alive(pid)]
    assert survivors == children
    assert all(psutil.Process(pid).ppid() != owner.pid for pid in survivors)
