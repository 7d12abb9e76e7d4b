"""The drop-folder watcher (an SFTP landing zone): complete packet folders, submitted once.

A packet folder under the watched directory is *complete* when it holds a manifest and either
a ``.done`` marker, or the same listing (names, sizes, modification times) on two consecutive
polls with no partial-upload file (``*.part``, ``*.tmp``, ...). Each submitted folder is
recorded, with a fingerprint of its listing, in a ledger file
(``<home>/watch/<hash of the directory>.jsonl``) so a restarted watcher never submits it again;
the workflow id (the packet key) makes a resubmission return the existing run anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client

from clinflow.object_store import ObjectStore
from clinflow.packets.manifest import PARTIAL_SUFFIXES, find_manifest
from clinflow.settings import Settings
from starters.packets_submit import SubmitError, submit_path

DONE_MARKER = ".done"
Listing = tuple[tuple[str, int, int], ...]


def listing(folder: Path) -> Listing:
    """(name, size, mtime_ns) of every regular file in ``folder``, sorted."""
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_file():
            st = p.stat()
            out.append((p.name, st.st_size, st.st_mtime_ns))
    return tuple(out)


def has_partial(entries: Listing) -> bool:
    return any(name.lower().endswith(PARTIAL_SUFFIXES) for name, _, _ in entries)


class DropFolderWatcher:
    """Polls ``directory`` and submits each complete packet folder exactly once."""

    def __init__(
        self,
        directory: Path,
        settings: Settings,
        client: Client,
        store: ObjectStore,
        *,
        echo: Callable[[str], object] = print,
    ) -> None:
        self.directory = directory.resolve()
        self.settings = settings
        self.client = client
        self.store = store
        self.echo = echo
        digest = hashlib.sha256(str(self.directory).encode()).hexdigest()[:16]
        self.ledger = settings.home / "watch" / f"{digest}.jsonl"
        self._seen: dict[str, Listing] = {}
        self.done: set[str] = self._load_ledger()

    def _load_ledger(self) -> set[str]:
        if not self.ledger.exists():
            return set()
        names = set()
        for line in self.ledger.read_text().splitlines():
            if line.strip():
                names.add(json.loads(line)["folder"])
        return names

    def _record(self, folder: Path, packet_id: str, entries: Listing) -> None:
        self.ledger.parent.mkdir(parents=True, exist_ok=True)
        fingerprint = hashlib.sha256(json.dumps(entries).encode()).hexdigest()
        with self.ledger.open("a") as fh:
            fh.write(
                json.dumps(
                    {
                        "folder": folder.name,
                        "packet_id": packet_id,
                        "fingerprint": fingerprint,
                        "at": datetime.now(UTC).isoformat(),
                    }
                )
                + "\n"
            )
        self.done.add(folder.name)

    def ready(self, folder: Path) -> Listing | None:
        """The folder's listing when it is complete now, else None (remembers this poll)."""
        if find_manifest(folder) is None:
            return None
        entries = listing(folder)
        if has_partial(entries):
            self._seen.pop(folder.name, None)
            return None
        if (folder / DONE_MARKER).exists():
            return entries
        previous = self._seen.get(folder.name)
        self._seen[folder.name] = entries
        return entries if previous == entries else None

    async def poll(self) -> list[str]:
        """One pass: submit every folder that became complete; returns their packet ids."""
        submitted: list[str] = []
        if not self.directory.is_dir():
            return submitted
        for folder in sorted(p for p in self.directory.iterdir() if p.is_dir()):
            if folder.name in self.done:
                continue
            entries = await asyncio.to_thread(self.ready, folder)
            if entries is None:
                continue
            try:
                _, sub = await submit_path(
                    self.client, self.settings, self.store, folder, source="watch"
                )
            except SubmitError as exc:
                self.echo(f"skipped {folder.name}: {exc}")
                self._record(folder, "", entries)
                continue
            self._record(folder, sub.packet_id, entries)
            state = "already known" if sub.existing else "started"
            self.echo(f"{folder.name}: {sub.packet_id} {state} on {sub.queue}")
            submitted.append(sub.packet_id)
        return submitted

    async def run(self) -> None:
        """Poll forever at ``packets_watch_interval_seconds``."""
        self.echo(f"watching {self.directory} (ledger {self.ledger})")
        while True:
            await self.poll()
            await asyncio.sleep(self.settings.packets_watch_interval_seconds)


__all__ = ["DONE_MARKER", "DropFolderWatcher", "listing"]
