"""HTTP upload endpoint for packets: the body streams to encrypted storage while hashing.

``POST /packets`` with a ``multipart/form-data`` body: a part named ``manifest`` (JSON or
YAML text, same format as ``manifest.yaml``) followed by one part per file, whose filename
must match a ``files[].path`` of the manifest. Each file part streams straight into the object
store (SHA-256 computed on the way, never whole in memory); then the packet workflow starts,
exactly as ``clinflow packets submit`` would. Answers ``202`` with the packet id and task
queue, ``200`` when the packet already exists, ``400`` for a bad manifest or missing file.
``GET /packets/{id}`` answers the ``status`` query as JSON.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from aiohttp import BodyPartReader, web
from temporalio.client import Client

from activities.packets_models import DocumentInput
from clinflow.object_store import ObjectStore
from clinflow.packets.manifest import parse_manifest
from clinflow.settings import Settings
from starters.packets_submit import (
    SubmitError,
    packet_input,
    queue_for,
    start_packet,
    upload_stream,
    workflow_exists,
)
from workflows.packets import SitePacketWorkflow

CHUNK = 1024 * 1024


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK):
        yield chunk


def make_app(settings: Settings, client: Client, store: ObjectStore) -> web.Application:
    """The aiohttp application (no auth here: put it behind the site's gateway)."""

    async def upload(request: web.Request) -> web.Response:
        reader = await request.multipart()
        first = await reader.next()
        if not isinstance(first, BodyPartReader) or first.name != "manifest":
            return web.json_response({"error": "the first part must be 'manifest'"}, status=400)
        text = await first.text()
        try:
            fmt = "json" if text.lstrip().startswith("{") else "yaml"
            manifest = parse_manifest(text, fmt=fmt, subject="manifest")
            queue = queue_for(settings, manifest)
        except Exception as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if await workflow_exists(client, manifest.packet_id):
            return web.json_response({"packet_id": manifest.packet_id, "existing": True})
        wanted = {f.path: f for f in manifest.files}
        documents: list[DocumentInput] = []
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader) or part.filename not in wanted:
                return web.json_response(
                    {"error": f"unexpected part {getattr(part, 'filename', None)!r}"}, status=400
                )
            entry = wanted[part.filename]
            ref = await upload_stream(
                store,
                settings,
                _chunks(part),
                part.headers.get("Content-Type", "") or "application/octet-stream",
            )
            documents.append(
                DocumentInput(
                    name=entry.path,
                    ref=ref,
                    declared_type=entry.doc_type,
                    declared_sha256=entry.sha256,
                    received_at=datetime.now(UTC),
                )
            )
        missing = sorted(set(wanted) - {d.name for d in documents})
        if missing:
            return web.json_response({"error": f"files missing: {missing}"}, status=400)
        inp = packet_input(
            settings,
            manifest,
            documents,
            source="upload",
            submitted_by=request.headers.get("X-Clinflow-User", "upload"),
        )
        try:
            _, sub = await start_packet(client, settings, inp, queue=queue)
        except SubmitError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(
            {"packet_id": sub.packet_id, "queue": sub.queue, "existing": sub.existing},
            status=200 if sub.existing else 202,
        )

    async def status(request: web.Request) -> web.Response:
        handle = client.get_workflow_handle(request.match_info["packet_id"])
        st = await handle.query(SitePacketWorkflow.status)
        return web.json_response(st.model_dump(mode="json"))

    # The limit applies to whole-part reads (the manifest); file parts stream in chunks.
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/packets", upload)
    app.router.add_get("/packets/{packet_id}", status)
    return app


async def serve(
    settings: Settings,
    client: Client,
    store: ObjectStore,
    *,
    host: str | None = None,
    port: int | None = None,
    echo: Callable[[str], object] = print,
) -> None:
    """Serve until cancelled."""
    import asyncio

    runner = web.AppRunner(make_app(settings, client, store))
    await runner.setup()
    site = web.TCPSite(
        runner, host or settings.packets_upload_host, port or settings.packets_upload_port
    )
    await site.start()
    echo(
        f"packet upload endpoint on http://{host or settings.packets_upload_host}:"
        f"{port or settings.packets_upload_port}/packets"
    )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


__all__ = ["make_app", "serve"]
