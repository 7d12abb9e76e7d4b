"""Ink beside a signature label on a scanned page: is there a hand-made mark on the line?

Runs inside the OCR process, where the page bitmap and tesseract's word boxes exist; only small
:class:`SignatureMark` results leave it. For every word tesseract read as a signature label,
two regions are measured (right of the label on its line; a band above it, for layouts that
print the label under the line). In each region the printed words tesseract read are blanked,
long straight runs (printed rules, box sides; a morphological opening, which survives a skew
of a few degrees) are removed, connected components are labelled (scipy), and speckle (tiny
components), remaining straight line pieces and round blobs (punch holes) are dropped;
what remains is ink. Its share of the region against the thresholds in
``clinflow/data/rules/signatures.yaml`` gives signed / uncertain / unsigned. Fax headers and
punch holes are outside these regions or dropped as printed words or round blobs.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from clinflow.packets.data_files import read_yaml, register_cache
from clinflow.packets.models import SignatureMark

_MIN_COMPONENT = 12  # pixels: smaller components are scanner speckle


@register_cache
@lru_cache(maxsize=1)
def _config() -> tuple[re.Pattern[str], dict[str, float]]:
    raw = read_yaml("rules", "signatures.yaml")
    labels = re.compile(r"(?i)^(?:" + "|".join(raw["labels"]) + r")\W*$")
    return labels, {k: float(v) for k, v in raw["ink"].items()}


def _is_rule(ys: np.ndarray, xs: np.ndarray, width: int) -> bool:
    """A long component whose pixels lie on a straight line: a printed rule or box border."""
    extent = max(int(xs.max() - xs.min()), int(ys.max() - ys.min()))
    if extent < 0.05 * width:
        return False
    coords = np.stack([xs.astype(float), ys.astype(float)])
    minor = float(np.sqrt(max(np.linalg.eigvalsh(np.cov(coords))[0], 0.0)))
    return minor < 2.5


def _is_blob(ys: np.ndarray, xs: np.ndarray) -> bool:
    """A filled round component (a punch hole): fills most of its bounding box, square-ish."""
    h, w = int(ys.max() - ys.min()) + 1, int(xs.max() - xs.min()) + 1
    return 0.7 < h / w < 1.4 and len(ys) > 0.6 * h * w and h > 20


def ink_ratio(dark: np.ndarray, page_width: int) -> float:
    """The share of ``dark`` (a boolean region) that is hand-made ink (see module doc)."""
    if dark.size == 0:
        return 0.0
    run = max(20, page_width // 40)  # printed rules and box sides: long straight runs
    rules = ndimage.binary_opening(dark, structure=np.ones((1, run), dtype=bool))
    rules |= ndimage.binary_opening(dark, structure=np.ones((run, 1), dtype=bool))
    dark = dark & ~ndimage.binary_dilation(rules, structure=np.ones((5, 5), dtype=bool))
    labels, count = ndimage.label(dark, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return 0.0
    ink = 0
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        if found is None:
            continue
        ys, xs = np.nonzero(labels[found] == index)
        if len(ys) < _MIN_COMPONENT or _is_rule(ys, xs, page_width) or _is_blob(ys, xs):
            continue
        ink += len(ys)
    return ink / dark.size


Box = tuple[int, int, int, int]  # x, y, width, height in pixels of the page bitmap


def label_pattern() -> re.Pattern[str]:
    """Where a signature label is written in a line of text (the YAML ``labels``)."""
    return _search_config()


@register_cache
@lru_cache(maxsize=1)
def _search_config() -> re.Pattern[str]:
    raw = read_yaml("rules", "signatures.yaml")
    return re.compile(r"(?i)\b(?:" + "|".join(raw["labels"]) + r")\b")


def measure_marks(image: Image.Image, data: dict[str, list[Any]], page: int) -> list[SignatureMark]:
    """Signature marks of one OCR'd page (greyscale ``image``, tesseract ``data`` dict)."""
    labels, _ = _config()
    found: list[tuple[str, Box]] = []
    printed: list[Box] = []
    for i, word in enumerate(data["text"]):
        text = str(word).strip()
        box = (
            int(data["left"][i]),
            int(data["top"][i]),
            int(data["width"][i]),
            int(data["height"][i]),
        )
        if text and labels.match(text):
            found.append((text, box))
        if float(data["conf"][i]) >= 40 and sum(c.isalnum() for c in text) >= 2:
            printed.append(box)
    if not found:
        return []
    return measure_labels(image, found, printed, page, kind="wet_ink")


def measure_labels(
    image: Image.Image,
    found: list[tuple[str, Box]],
    printed: list[Box],
    page: int,
    *,
    kind: Literal["wet_ink", "image"],
    note: str = "",
) -> list[SignatureMark]:
    """Ink beside each label of ``found`` on a greyscale page ``image``; ``printed`` text boxes
    are blanked first. Shared by the OCR worker (scans) and the text-PDF renderer."""
    _, params = _config()
    width, height = image.size
    grey = np.asarray(image.convert("L").filter(ImageFilter.MedianFilter(3)))
    dark = grey < 140
    for x, y, w, h in printed:
        dark[max(0, y - 2) : y + h + 2, max(0, x - 2) : x + w + 2] = False
    marks: list[SignatureMark] = []
    for label, (x, y, w, h) in found:
        regions = [
            (
                x + w + 4,
                y - int(1.5 * h),
                x + w + int(params["right_width"] * width),
                y + h + h // 2,
            ),
            (
                max(0, x - int(0.03 * width)),
                y - int(params["above_height"] * height),
                x + int(params["above_width"] * width),
                y - 2,
            ),
        ]
        best, best_region = 0.0, regions[0]
        for x0, y0, x1, y1 in regions:
            x0, y0 = max(0, x0), max(0, y0)
            x1, y1 = min(width, x1), min(height, y1)
            if x1 - x0 < 10 or y1 - y0 < 5:
                continue
            ratio = ink_ratio(dark[y0:y1, x0:x1], width)
            if ratio > best:
                best, best_region = ratio, (x0, y0, x1, y1)
        status: Literal["signed", "unsigned", "uncertain"] = (
            "signed"
            if best >= params["signed"]
            else "unsigned"
            if best <= params["unsigned"]
            else "uncertain"
        )
        x0, y0, x1, y1 = best_region
        marks.append(
            SignatureMark(
                page=page,
                kind=kind,
                label=label[:40],
                region=(
                    round(max(0, x0) / width, 3),
                    round(max(0, y0) / height, 3),
                    round(min(width, x1) / width, 3),
                    round(min(height, y1) / height, 3),
                ),
                ink_ratio=round(best, 4),
                status=status,
                note=note,
            )
        )
    return marks
