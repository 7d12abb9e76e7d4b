"""OCR of a long scanned (image-only) PDF: throughput and peak memory per process.

Writes a fictional N-page scanned PDF to disk one page at a time (each page a JPEG image
XObject; no page is kept after it is written), then runs ``clinflow.packets.parse_document``
on it with ``ocr_max_workers`` OCR processes, sampling the resident set size (psutil) of the
main process and of every descendant (the OCR worker processes and the tesseract processes
they start). For comparison it parses the first ``--sample`` pages with one OCR worker.

Prints pages/s, total time, peak RSS per process and the speed-up over one worker; exits 1
when any process's peak RSS exceeds ``--max-rss-mb`` (or when a page was not OCR'd).

    .venv/bin/python bench/bench_ocr_scanned.py [--pages 200] [--workers 2] [--sample 20]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from PIL import Image, ImageDraw, ImageFont

from clinflow.packets.models import ParseOptions
from clinflow.packets.parse import parse_document

WORDS = (
    "protocol site investigator visit window approval committee review sample record "
    "training certificate delegation monitor schedule dosing laboratory consent version"
).split()


def page_lines(n: int) -> list[str]:
    """Fictional, deterministic text of page ``n``."""
    lines = [f"Fictional Site Binder - page {n + 1}", f"Protocol CFX-{300 + n % 7} version 3.0"]
    for i in range(14):
        words = [WORDS[(n * 7 + i * 3 + k) % len(WORDS)] for k in range(8)]
        lines.append(" ".join(words).capitalize() + ".")
    return lines


def render_page(lines: list[str], dpi: int) -> bytes:
    """One letter-size greyscale page as JPEG bytes."""
    width, height = int(8.5 * dpi), int(11 * dpi)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(12, dpi // 6))
    y = dpi
    for line in lines:
        draw.text((dpi, y), line, fill=0, font=font)
        y += int(dpi * 0.33)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    image.close()
    return out.getvalue()


def write_scanned_pdf(path: Path, pages: int, dpi: int = 150) -> None:
    """Stream an image-only PDF to ``path``: objects are written as pages are rendered."""
    width_pt, height_pt = 612, 792
    offsets: dict[int, int] = {}
    kids = [3 + 3 * i for i in range(pages)]  # page, image, contents per page
    with path.open("wb") as fh:

        def obj(num: int, body: bytes, stream: bytes | None = None) -> None:
            offsets[num] = fh.tell()
            fh.write(f"{num} 0 obj\n".encode() + body)
            if stream is not None:
                fh.write(b"\nstream\n" + stream + b"\nendstream")
            fh.write(b"\nendobj\n")

        fh.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
        kid_refs = " ".join(f"{k} 0 R" for k in kids).encode()
        obj(2, b"<< /Type /Pages /Count " + str(pages).encode() + b" /Kids [" + kid_refs + b"] >>")
        size = (int(8.5 * dpi), int(11 * dpi))
        for i, page_num in enumerate(kids):
            jpeg = render_page(page_lines(i), dpi)
            img, contents = page_num + 1, page_num + 2
            obj(
                page_num,
                (
                    f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width_pt} {height_pt}] "
                    f"/Resources << /XObject << /Im0 {img} 0 R >> >> /Contents {contents} 0 R >>"
                ).encode(),
            )
            obj(
                img,
                (
                    f"<< /Type /XObject /Subtype /Image /Width {size[0]} /Height {size[1]} "
                    f"/ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode "
                    f"/Length {len(jpeg)} >>"
                ).encode(),
                jpeg,
            )
            draw = f"q {width_pt} 0 0 {height_pt} 0 0 cm /Im0 Do Q".encode()
            obj(contents, f"<< /Length {len(draw)} >>".encode(), draw)
        total = 3 + 3 * pages
        xref = fh.tell()
        fh.write(f"xref\n0 {total}\n0000000000 65535 f \n".encode())
        for num in range(1, total):
            fh.write(f"{offsets[num]:010d} 00000 n \n".encode())
        fh.write(f"trailer\n<< /Size {total} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())


@dataclass
class RssSampler:
    """Peak RSS of this process and every descendant, sampled on a background thread."""

    interval: float = 0.1
    peaks: dict[int, tuple[str, int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for proc in [me, *me.children(recursive=True)]:
                try:
                    rss = proc.memory_info().rss
                    role = "main" if proc.pid == me.pid else proc.name()
                except psutil.Error:
                    continue
                old = self.peaks.get(proc.pid, (role, 0))
                self.peaks[proc.pid] = (role, max(old[1], rss))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run(path: Path, workers: int, dpi: int) -> tuple[int, int, float, RssSampler]:
    """Parse ``path``; returns (pages, OCR'd pages, seconds, sampler)."""
    options = ParseOptions(ocr_max_workers=workers, ocr_dpi=dpi)
    with RssSampler() as sampler:
        start = time.perf_counter()
        result = parse_document(path, options=options, subject="bench")
        took = time.perf_counter() - start
    return result.page_count, len(result.ocr_pages), took, sampler


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2, help="ocr_max_workers of the main run")
    ap.add_argument("--sample", type=int, default=20, help="pages of the one-worker run")
    ap.add_argument("--dpi", type=int, default=200, help="OCR rendering resolution")
    ap.add_argument("--max-rss-mb", type=float, default=400.0, help="bound for every process")
    args = ap.parse_args()
    mb = 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="bench-ocr-") as tmp:
        big, small = Path(tmp) / "scanned.pdf", Path(tmp) / "sample.pdf"
        t0 = time.perf_counter()
        write_scanned_pdf(big, args.pages)
        write_scanned_pdf(small, args.sample)
        print(
            f"generated {args.pages} scanned pages ({big.stat().st_size / mb:.1f} MB) "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        s_pages, s_ocr, s_took, s_sampler = run(small, 1, args.dpi)
        print(f"1 OCR worker,  {s_pages:>4} pages: {s_took:7.1f} s, {s_pages / s_took:.2f} pages/s")
        pages, ocr, took, sampler = run(big, args.workers, args.dpi)
        print(
            f"{args.workers} OCR workers, {pages:>4} pages: {took:7.1f} s, "
            f"{pages / took:.2f} pages/s, speed-up x{(pages / took) / (s_pages / s_took):.2f} "
            "over one worker"
        )
    failed = ocr != pages or s_ocr != s_pages
    print(f"\npeak RSS per process ({args.workers}-worker run; bound {args.max_rss_mb:.0f} MB):")
    by_role: dict[str, list[int]] = {}
    for role, rss in sampler.peaks.values():
        by_role.setdefault(role, []).append(rss)
    for role, values in sorted(by_role.items()):
        print(
            f"  {role:<14} processes: {len(values):>3}  peak max {max(values) / mb:7.1f} MB  "
            f"mean {sum(values) / len(values) / mb:7.1f} MB"
        )
        if max(values) / mb > args.max_rss_mb:
            failed = True
            print(f"  ! {role} exceeded {args.max_rss_mb:.0f} MB")
    one = max(rss for role, rss in s_sampler.peaks.values() if role == "main")
    print(f"  main process peak in the 1-worker run: {one / mb:.1f} MB")
    if ocr != pages:
        print(f"! only {ocr} of {pages} pages were OCR'd")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
