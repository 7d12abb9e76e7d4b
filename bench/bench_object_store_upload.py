"""Streaming encrypted upload: throughput and peak memory for a large object.

Usage::

    python bench/bench_object_store_upload.py [--size-mb 1024]

Uses the S3 server named by ``CLINFLOW_S3_ENDPOINT_URL`` when set (and the
keyring from ``CLINFLOW_KEYRING_*``, or a fresh one); otherwise starts a
throw-away local stack on free ports and stops it afterwards.

Phases, each over the same generated pseudo-random stream (never held whole):
baseline (generate + SHA-256, no upload), plain upload, encrypted upload, and a
verified streaming download of the encrypted object (after an unmeasured warm-up
upload). Prints MB/s per phase, the
ratios to the baseline, and the process's peak RSS after each phase. Exits 1
when the peak RSS reaches ``--max-rss-mb`` (200 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

from clinflow.keyring import Keyring, KeyringError
from clinflow.object_store import ObjectStore
from clinflow.settings import Settings

MB = 1_000_000
MiB = 1024 * 1024
CHUNK = MiB


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


async def generated(size: int) -> AsyncIterator[bytes]:
    """``size`` pseudo-random bytes in CHUNK pieces; only one piece exists at a time."""
    sent = 0
    while sent < size:
        n = min(CHUNK, size - sent)
        yield os.urandom(n)
        sent += n


@contextmanager
def s3_server() -> Iterator[tuple[Settings, Keyring]]:
    """Settings + keyring for an S3 server: the configured one, or a fresh local stack."""
    if os.environ.get("CLINFLOW_S3_ENDPOINT_URL"):
        settings = Settings()
        try:
            ring = Keyring.load(settings)
        except KeyringError:
            ring = Keyring.generate()
        print(f"s3: reusing {settings.s3_endpoint_url}")
        yield settings, ring
        return

    from clinflow.stack import LocalStack, throwaway_settings

    home = Path(tempfile.mkdtemp(prefix="clinflow-bench-"))
    os.chmod(home, 0o755)
    settings = throwaway_settings(home)
    stack = LocalStack(settings)
    started = time.perf_counter()
    try:
        stack.up()
        print(f"s3: started local stack in {time.perf_counter() - started:.1f}s")
        yield settings, Keyring.load(settings)
    finally:
        stack.down()
        shutil.rmtree(home, ignore_errors=True)


def report(label: str, size: int, seconds: float, baseline: float | None) -> float:
    rate = size / MB / seconds
    ratio = f"  ({rate / baseline:.2f}x baseline)" if baseline else ""
    print(f"{label:<28} {rate:8.1f} MB/s  {seconds:7.2f}s  peak RSS {peak_rss_mb():6.1f} MB{ratio}")
    return rate


async def run(size: int, settings: Settings, ring: Keyring) -> None:
    bucket = settings.s3_bucket_batches
    prefix = f"bench/{uuid.uuid4().hex}"
    print(
        f"object {size / MB:.0f} MB, part size {settings.s3_part_size / MiB:.0f} MiB, "
        f"concurrency {settings.s3_max_concurrency}, start RSS {peak_rss_mb():.1f} MB"
    )

    t = time.perf_counter()
    hasher = hashlib.sha256()
    async for chunk in generated(size):
        hasher.update(chunk)
    base = report("baseline generate+sha256", size, time.perf_counter() - t, None)

    async with ObjectStore(settings, ring) as store:
        await store.ensure_buckets()
        print(f"{'S3 client ready':<28} {'':>23}  peak RSS {peak_rss_mb():6.1f} MB")
        try:
            # A fresh server allocates volumes on its first writes; keep that out of the figures.
            await store.upload(
                bucket, f"{prefix}/warmup", generated(min(size, 64 * MB)), plain=True
            )

            t = time.perf_counter()
            await store.upload(bucket, f"{prefix}/plain", generated(size), plain=True)
            plain = report("plain upload", size, time.perf_counter() - t, base)

            t = time.perf_counter()
            enc = await store.upload(bucket, f"{prefix}/encrypted", generated(size))
            rate = report("encrypted upload", size, time.perf_counter() - t, base)
            print(f"{'encrypted / plain upload':<28} {rate / plain:8.2f}x")
            assert enc.size == size and enc.stored_size > size

            t = time.perf_counter()
            got = 0
            async for chunk in store.download(bucket, enc.key, expected_sha256=enc.sha256):
                got += len(chunk)
            assert got == size
            report("verified decrypting download", size, time.perf_counter() - t, base)
        finally:
            async for key in store.list_keys(bucket, prefix + "/"):
                await store.delete(bucket, key)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=int, default=1024, help="object size in MB (1e6)")
    parser.add_argument("--max-rss-mb", type=float, default=200.0)
    args = parser.parse_args()
    with s3_server() as (settings, ring):
        asyncio.run(run(args.size_mb * MB, settings, ring))
    peak = peak_rss_mb()
    verdict = "OK" if peak < args.max_rss_mb else "FAIL"
    print(f"peak RSS {peak:.1f} MB (limit {args.max_rss_mb:.0f} MB): {verdict}")
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
