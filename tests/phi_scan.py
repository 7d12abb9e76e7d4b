"""Tools for the PHI scanner test: what PHI an input holds, and where it must not appear."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from temporalio.client import Client

MIN_LEN = 4


def fhir_patient_phi(path: Path) -> set[str]:
    """Names, birth dates, MRNs, addresses and phone numbers of the Patients in an NDJSON file."""
    found: set[str] = set()
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        patient: dict[str, Any] = orjson.loads(line)
        for name in patient.get("name", []):
            found.update(name.get("given", []))
            if name.get("family"):
                found.add(name["family"])
        if patient.get("birthDate"):
            found.add(patient["birthDate"])
        for address in patient.get("address", []):
            found.update(address.get("line", []))
            # Postal codes are left out: five digits occur by chance in ids and timestamps.
            if address.get("city"):
                found.add(address["city"])
        for ident in patient.get("identifier", []):
            codes = {c.get("code") for c in ident.get("type", {}).get("coding", [])}
            if codes & {"MR", "SS", "DL", "PPN"} and ident.get("value"):
                found.add(ident["value"])
        for telecom in patient.get("telecom", []):
            if telecom.get("value"):
                found.add(telecom["value"])
    return {s for s in found if len(s) >= MIN_LEN}


_DATA = re.compile(r'"data":\s*"([A-Za-z0-9+/=]*)"')


def history_texts(history_json: str) -> list[bytes]:
    """The history's JSON plus every payload's decoded bytes (data is base64 in the JSON).

    The base64 text itself is cut out of the JSON before it is searched: encrypted payloads
    are random, and a four-letter name turns up inside megabytes of base64 by chance.
    Their decoded bytes are searched instead, where plaintext PHI would show.
    """
    texts = [_DATA.sub('"data": ""', history_json).encode()]
    texts.extend(base64.b64decode(m) for m in _DATA.findall(history_json))
    return texts


async def raw_histories(client: Client, query: str | None = None) -> dict[str, list[bytes]]:
    """Every workflow's raw history (fetched with no codec), as searchable byte strings."""
    out: dict[str, list[bytes]] = {}
    async for wf in client.list_workflows(query):
        history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
        out[f"{wf.id}/{wf.run_id}"] = history_texts(history.to_json())
        attrs = orjson.dumps({k: [str(v) for v in vs] for k, vs in wf.search_attributes.items()})
        out[f"{wf.id}/{wf.run_id}"].append(attrs)
    return out


def hits(phi: Iterable[str], haystacks: dict[str, list[bytes]]) -> list[tuple[str, str]]:
    """(where, which value) for every PHI value found in any haystack."""
    needles = [(value, value.encode()) for value in sorted(set(phi))]
    found: list[tuple[str, str]] = []
    for where, texts in haystacks.items():
        for text in texts:
            for value, needle in needles:
                if needle in text:
                    found.append((where, value))
    return found
