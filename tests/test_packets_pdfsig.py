"""Digital signatures inside submitted PDFs, through SitePacketWorkflow on the real stack.

A packet whose IRB approval letter carries a valid PAdES signature (chained to the approved CA
bundle of ``pdfsig_trust_bundle``) passes the signature check; the same letter changed after
signing blocks the packet with PDF_SIGNATURE_MODIFIED. Certificates and signed PDFs are made
at test time by :mod:`tests.pdf_signing_kit` (all fictional).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.packets_models import PacketStatusName
from clinflow.keyring import Keyring
from clinflow.packets.sample_data import generate_demo_packets
from clinflow.settings import Settings
from tests.pdf_signing_kit import Kit, rotate_first_page, sign, write_bundle
from tests.test_packets_support import PacketEnv, packet_workers

pytestmark = pytest.mark.stack

SIGNED_FILE = "irb_approval.pdf"


@pytest.fixture(scope="module")
def kit() -> Kit:
    return Kit.create()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (packet,) = generate_demo_packets(tmp_path_factory.mktemp("pdfsig"), only=["us-101-complete"])
    return Path(packet.path)


@pytest.fixture(scope="module")
async def env(
    stack: Settings,
    keyring: Keyring,
    temporal_client: Client,
    kit: Kit,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[PacketEnv]:
    bundle = write_bundle(tmp_path_factory.mktemp("trust"), kit.ca)
    async with packet_workers(stack, keyring, temporal_client, pdfsig_trust_bundle=bundle) as e:
        yield e


def packet_with(base: Path, target: Path, pdf: bytes) -> Path:
    """A copy of the demo packet at ``base`` whose IRB approval letter is ``pdf``."""
    shutil.copytree(base, target)
    (target / SIGNED_FILE).write_bytes(pdf)
    return target


async def test_validly_signed_pdf_passes_the_signature_check(
    env: PacketEnv, base: Path, kit: Kit, tmp_path: Path
) -> None:
    signed = await asyncio.to_thread(sign, (base / SIGNED_FILE).read_bytes(), kit.signer, kit.ca)
    inp = await env.make_input(packet_with(base, tmp_path / "signed", signed))
    result = await (await env.start(inp)).result()
    codes = {f.code for f in result.findings}
    assert not {c for c in codes if c.startswith("PDF_SIGNATURE_")}, codes
    assert result.status is PacketStatusName.VALIDATED, result.reasons


async def test_pdf_modified_after_signing_blocks_the_packet(
    env: PacketEnv, base: Path, kit: Kit, tmp_path: Path
) -> None:
    signed = await asyncio.to_thread(sign, (base / SIGNED_FILE).read_bytes(), kit.signer, kit.ca)
    inp = await env.make_input(
        packet_with(base, tmp_path / "modified", await asyncio.to_thread(rotate_first_page, signed))
    )
    handle = await env.start(inp)
    blocked = await env.wait_status(handle, {PacketStatusName.BLOCKED})
    assert "PDF_SIGNATURE_MODIFIED" in blocked.reasons
    finding = next(f for f in blocked.findings if f.code == "PDF_SIGNATURE_MODIFIED")
    assert finding.document == SIGNED_FILE
    assert finding.category.value == "COMPLIANCE_BLOCK"
