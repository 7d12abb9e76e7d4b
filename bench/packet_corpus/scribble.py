"""Handwritten-looking signature images (seeded random strokes), as PNG bytes or arrays."""

from __future__ import annotations

import io
import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def scribble(
    seed: int, *, width: int = 360, height: int = 110, ink: tuple[int, int, int] = (20, 30, 90)
) -> Image.Image:
    """An RGBA image of a signature-like pen trace: a few looping strokes and a flourish."""
    rng = random.Random(seed)
    scale = 3
    img = Image.new("RGBA", (width * scale, height * scale), (255, 255, 255, 0))
    draw = ImageDraw.Draw(img)
    pen = max(2, int(rng.uniform(1.6, 3.2) * scale))
    x = rng.uniform(0.04, 0.1) * width
    strokes = rng.randint(2, 4)
    for _ in range(strokes):
        pts: list[tuple[float, float]] = []
        length = rng.uniform(0.15, 0.35) * width
        base = height * rng.uniform(0.45, 0.65)
        amp = height * rng.uniform(0.15, 0.35)
        freq = rng.uniform(2.5, 6.0)
        phase = rng.uniform(0, math.pi)
        n = 80
        for i in range(n):
            t = i / (n - 1)
            px = x + t * length + math.sin(t * freq * 3.1 + phase) * rng.uniform(3, 8)
            py = base - math.sin(t * freq * math.pi + phase) * amp * (1 - 0.4 * t)
            pts.append((px * scale, py * scale))
        draw.line(pts, fill=(*ink, 255), width=pen, joint="curve")
        x += length + rng.uniform(0.0, 0.06) * width
        if x > width * 0.8:
            break
    y = height * rng.uniform(0.7, 0.85)
    x0 = rng.uniform(0.05, 0.2) * width
    x1 = min(width * 0.95, x + rng.uniform(0, 0.1) * width)
    draw.line(
        [
            (x0 * scale, y * scale),
            ((x0 + x1) / 2 * scale, (y + rng.uniform(-8, 8)) * scale),
            (x1 * scale, (y - rng.uniform(4, 14)) * scale),
        ],
        fill=(*ink, 255),
        width=pen,
        joint="curve",
    )
    img = img.filter(ImageFilter.GaussianBlur(0.6 * scale / 2))
    return img.resize((width, height), Image.Resampling.LANCZOS)


def scribble_png(seed: int, **kwargs: object) -> bytes:
    """The scribble as PNG bytes on a white background (for DOCX and PDF images)."""
    img = scribble(seed, **kwargs)  # type: ignore[arg-type]
    bg = Image.new("RGB", img.size, (255, 255, 255))
    bg.paste(img, mask=img.split()[3])
    buf = io.BytesIO()
    bg.save(buf, format="PNG")
    return buf.getvalue()


def ink_fraction(img: Image.Image) -> float:
    """Share of dark pixels (a sanity figure for tests)."""
    arr = np.asarray(img.convert("L"))
    return float((arr < 128).mean())
