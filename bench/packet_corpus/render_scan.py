"""Image-only scans: a rendered PDF rasterised, then degraded as a scanner or fax would.

Skew, sensor noise, a slight blur, sometimes a fax header line or punch holes; written back as
an image-only PDF (no text layer) at the scan's resolution.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
from PIL import Image, ImageDraw, ImageFilter, ImageFont

_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"


def _fax_header(img: Image.Image, rng: random.Random, page: int, pages: int, dpi: int) -> None:
    draw = ImageDraw.Draw(img)
    size = max(10, int(dpi * 0.11))
    try:
        font: ImageFont.FreeTypeFont | ImageFont.ImageFont = ImageFont.truetype(_FONT, size)
    except OSError:
        font = ImageFont.load_default()
    when = f"{rng.choice(['APR', 'MAR'])}-{rng.randint(1, 28):02d}-2026 {rng.randint(7, 19):02d}:"
    when += f"{rng.randint(0, 59):02d}"
    sender = rng.choice(["FROM: RESEARCH OFFICE", "FROM:CLIN TRIALS UNIT", "FROM: REG AFFAIRS"])
    text = f"{when}  {sender}  +{rng.randint(10, 99)} {rng.randint(100, 999)} "
    text += f"{rng.randint(1000, 9999)}   P.{page}/{pages}"
    draw.text((int(dpi * 0.3), int(dpi * 0.12)), text, fill=0, font=font)


def _punch_holes(img: Image.Image, rng: random.Random, dpi: int) -> None:
    draw = ImageDraw.Draw(img)
    r = int(dpi * 0.12)
    x = int(dpi * 0.35)
    h = img.height
    for y in (h * 0.3, h * 0.7) if rng.random() < 0.5 else (h * 0.25, h * 0.5, h * 0.75):
        draw.ellipse([x - r, int(y) - r, x + r, int(y) + r], fill=rng.randint(20, 70))


def degrade(
    page: Image.Image,
    rng: random.Random,
    *,
    dpi: int,
    fax: bool,
    holes: bool,
    index: int,
    pages: int,
) -> Image.Image:
    """One scanned page: grey, header/holes, skewed, blurred, noisy."""
    img = page.convert("L")
    if fax:
        _fax_header(img, rng, index + 1, pages, dpi)
    if holes:
        _punch_holes(img, rng, dpi)
    angle = rng.uniform(0.5, 2.0) * rng.choice([-1, 1])
    img = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=255)
    if rng.random() < 0.7:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
    arr = np.asarray(img, dtype=np.int16)
    np_rng = np.random.default_rng(rng.getrandbits(32))
    arr = arr + np_rng.normal(0, rng.uniform(4, 12), arr.shape).astype(np.int16)
    speckle = np_rng.random(arr.shape) < rng.uniform(0.0002, 0.001)
    arr[speckle] = 0
    if fax:  # fax: hard threshold to black and white
        arr = np.where(arr < rng.randint(150, 185), 0, 255)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def scan_pdf(source: Path, target: Path, rng: random.Random, *, dpi: int) -> dict[str, object]:
    """Rasterise ``source`` at ``dpi`` and write the degraded pages to ``target`` (image-only
    PDF). Returns what was done (for the ground truth)."""
    fax = rng.random() < 0.35
    holes = rng.random() < 0.25
    pdf = pdfium.PdfDocument(str(source))
    pages: list[Image.Image] = []
    try:
        for i in range(len(pdf)):
            bitmap = pdf[i].render(scale=dpi / 72.0, grayscale=True)
            page = bitmap.to_pil()
            pages.append(degrade(page, rng, dpi=dpi, fax=fax, holes=holes, index=i, pages=len(pdf)))
    finally:
        pdf.close()
    first, rest = pages[0], pages[1:]
    first.save(target, format="PDF", resolution=float(dpi), save_all=True, append_images=rest)
    return {"fax_header": fax, "punch_holes": holes}
