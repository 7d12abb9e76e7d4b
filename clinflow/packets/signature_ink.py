"""Ink at a signature block on a page bitmap: is there a hand-made mark where one signs?

Runs inside the OCR process for scans (the page bitmap and tesseract's word boxes exist there)
and on pdfium renders of text pages (a signature picture or a signature field's appearance
leaves nothing in the text layer); only small :class:`SignatureMark` results leave it.

Two kinds of place are measured:

- beside each word read as a signature label (``labels`` in ``signatures.yaml``): right of the
  label on its line, and a band above it (layouts that print the label under the line);
- above each *signature line*: a free-standing horizontal rule with printed text just under it
  (many letters and certificates print only a role, "Course director", "Chair of the
  Committee"). Rules that are a box's or a table's (stacked rules of one extent, crossed or
  ended by vertical rules), full-width separators and rules under the letterhead are not
  signature lines; a skewed scan's tilt is fitted per rule. A line carries a signature only
  when ink is found (it never makes a document "uncertain"), in windows along it, where
  printed words cover little of the band and only strokes larger than print count.

In each region printed words are blanked (tesseract's boxes, or the text layer's rectangles;
tall boxes tesseract read badly are a signature it tried to read, not print), straight runs
(printed rules, box sides, also when a scan's skew breaks them into steps) are removed,
connected components are labelled (scipy), and speckle, remaining straight pieces and round
blobs (punch holes) are dropped; what remains is ink. Its share of the region against the
thresholds in ``clinflow/data/rules/signatures.yaml`` gives signed / uncertain / unsigned. Fax
headers are outside these regions or blanked as printed words.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal, NamedTuple

import numpy as np
from PIL import Image
from scipy import ndimage

from clinflow.packets.data_files import read_yaml, register_cache
from clinflow.packets.models import SignatureMark

_MIN_COMPONENT = 12  # pixels: smaller components are scanner speckle
# a scanned page's dark pixels: thin pen strokes scan mid-grey (measured: 120-180 at 200 dpi)
# and are one or two pixels wide, so no smoothing filter (a median erases them); the paper's
# noise is isolated pixels, dropped as components under _MIN_COMPONENT
_SCAN_DARK = 185


@register_cache
@lru_cache(maxsize=1)
def _config() -> tuple[re.Pattern[str], dict[str, float]]:
    raw = read_yaml("rules", "signatures.yaml")
    labels = re.compile(r"(?i)^(?:" + "|".join(raw["labels"]) + r")\W*$")
    return labels, {k: float(v) for k, v in raw["ink"].items()}


def _grow(mask: np.ndarray, size: int, *, axis: int) -> np.ndarray:
    """Binary dilation by a line of ``size`` pixels along ``axis`` (a running maximum: linear
    time whatever the size, unlike a structuring-element dilation)."""
    grown: np.ndarray = ndimage.maximum_filter1d(mask.view(np.uint8), size | 1, axis=axis)
    return grown.view(bool)


def _open_runs(mask: np.ndarray, run: int, *, axis: int) -> np.ndarray:
    """Binary opening by a line of ``run`` pixels along ``axis``: what remains is every run of
    dark pixels at least that long (printed rules, box sides). Running minimum then maximum."""
    size = run | 1
    eroded = ndimage.minimum_filter1d(mask.view(np.uint8), size, axis=axis)
    opened: np.ndarray = ndimage.maximum_filter1d(eroded, size, axis=axis)
    return opened.view(bool)


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


def ink_ratio(dark: np.ndarray, page_width: int, *, min_extent: int = 0) -> float:
    """The share of ``dark`` (a boolean region) that is hand-made ink (see module doc).

    With ``min_extent`` only components at least that tall (or twice that wide) count: a
    signature is a few large strokes, printed characters the OCR missed are many small ones
    (components are joined across one-pixel breaks of a thin stroke first)."""
    if dark.size == 0:
        return 0.0
    run = max(20, page_width // 40)  # printed rules and box sides: long straight runs
    # a scan's skew breaks a thin rule into short steps: look for the runs in a mask thickened
    # across the rule, then keep only its own pixels
    rules = _open_runs(_grow(dark, 3, axis=0), run, axis=1)
    rules |= _open_runs(_grow(dark, 3, axis=1), run, axis=0)
    rules &= dark
    dark = dark & ~_grow(_grow(rules, 5, axis=0), 5, axis=1)
    joined = _grow(dark, 3, axis=0) if min_extent else dark
    labels, count = ndimage.label(joined, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return 0.0
    ink = 0
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        if found is None:
            continue
        ys, xs = np.nonzero((labels[found] == index) & dark[found])
        if len(ys) < _MIN_COMPONENT or _is_rule(ys, xs, page_width) or _is_blob(ys, xs):
            continue
        tall, wide = found[0].stop - found[0].start, found[1].stop - found[1].start
        if min_extent and tall < min_extent and wide < 2 * min_extent:
            continue
        ink += len(ys)
    return ink / dark.size


Box = tuple[int, int, int, int]  # x, y, width, height in pixels of the page bitmap


def measure_marks(image: Image.Image, data: dict[str, list[Any]], page: int) -> list[SignatureMark]:
    """Signature marks of one OCR'd page (greyscale ``image``, tesseract ``data`` dict)."""
    labels, _ = _config()
    found: list[tuple[str, Box]] = []
    printed: list[tuple[Box, bool]] = []
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
        if text and float(data["conf"][i]) >= 0:
            # a tall word counts as print only when read well and long enough to be a word
            readable = float(data["conf"][i]) >= 80 and sum(c.isalpha() for c in text) >= 3
            printed.append((box, readable))
    boxes: list[Box] = []
    if printed:
        # every word tesseract placed is print, whatever its confidence (a faint word left
        # unblanked would read as ink) - except that it also "reads" a handwritten signature
        # as a word or two: boxes much taller than the page's printed words, unless read as a
        # real word with confidence (a title in a large font reads well)
        typical = float(np.median([b[3] for b, _ in printed]))
        boxes = [b for b, readable in printed if b[3] <= 1.8 * typical or readable]
    return measure_labels(image, found, boxes, page, kind="wet_ink")


def _dark_mask(image: Image.Image, rendered: bool) -> np.ndarray:
    """Dark pixels of a greyscale page. A ``rendered`` page (a text PDF drawn by pdfium) has no
    scanner noise: every pixel that is not paper white counts (thin anti-aliased pen strokes
    render light grey); a scan's threshold is lower (see ``_SCAN_DARK``)."""
    return np.asarray(image.convert("L")) < (215 if rendered else _SCAN_DARK)


def _blank(dark: np.ndarray, printed: list[Box]) -> np.ndarray:
    out = dark.copy()
    for x, y, w, h in printed:
        out[max(0, y - 2) : y + h + 2, max(0, x - 2) : x + w + 2] = False
    return out


def _status(ratio: float, params: dict[str, float]) -> Literal["signed", "unsigned", "uncertain"]:
    if ratio >= params["signed"]:
        return "signed"
    return "unsigned" if ratio <= params["unsigned"] else "uncertain"


_LINE = "signature line"
# the most of the band above an unlabelled signature line that printed words may cover (a
# date beside the signature); more is a table row or a paragraph
_MAX_PRINT_ABOVE_LINE = 0.12


def printed_share(printed: list[Box], region: tuple[int, int, int, int]) -> float:
    """The share of ``region`` (x0, y0, x1, y1) covered by printed word boxes."""
    x0, y0, x1, y1 = region
    area = max(1, (x1 - x0) * (y1 - y0))
    covered = 0
    for bx, by, bw, bh in printed:
        w = min(x1, bx + bw) - max(x0, bx)
        h = min(y1, by + bh) - max(y0, by)
        if w > 0 and h > 0:
            covered += w * h
    return covered / area


class Rule(NamedTuple):
    """A signature line: its horizontal extent and its height (top edge) at both ends."""

    x0: int
    x1: int
    y_left: int
    y_right: int

    def y_at(self, x: float) -> int:
        if self.x1 == self.x0:
            return self.y_left
        return int(self.y_left + (self.y_right - self.y_left) * (x - self.x0) / (self.x1 - self.x0))


def signature_lines(dark: np.ndarray, printed: list[Box]) -> list[Rule]:
    """Signature lines of a page: free-standing horizontal rules (not the side of a box or a
    table, not a full-width separator, not under the letterhead) with printed text just under
    them, the label. Many certificates and letters print only a role ("Course director",
    "Chair") under the line.
    ``dark`` is the page's dark-pixel mask before printed words are blanked."""
    height, width = dark.shape
    run = max(20, width // 40)
    # a rule skewed by a scan drifts a pixel or two over a run: thicken before the opening,
    # and join the pieces the opening leaves before measuring their extent
    thick = _grow(dark, 3, axis=0)
    horizontal = _open_runs(thick, run, axis=1)
    vertical = _open_runs(_grow(dark, 3, axis=1), run, axis=0) & dark
    joined = _grow(_grow(horizontal, 3, axis=0), run // 2, axis=1)
    labels, _ = ndimage.label(joined, structure=np.ones((3, 3), dtype=bool))
    lines: list[Rule] = []
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        if found is None:
            continue
        y0, y1 = found[0].start, found[0].stop
        x0, x1 = found[1].start, found[1].stop
        length = x1 - x0
        if not 0.12 * width <= length <= 0.92 * width or y1 - y0 > 0.06 * length + 12:
            continue  # too short, a full-width separator, or not a line (skew up to ~3 deg)
        if y0 < 0.12 * height:
            continue  # a letterhead's rule: a logo above it is not a signature
        pad = run // 2
        ends = (slice(max(0, x0 - pad), x0 + pad), slice(max(0, x1 - pad), x1 + pad))
        rows = slice(max(0, y0 - pad), y1 + pad)
        if any(vertical[rows, end].any() for end in ends):
            continue  # a box or table border (pen strokes above the line may be vertical)
        if vertical[y1 + 2 : y1 + 2 + pad, x0:x1].any():
            continue  # crossed by a vertical rule going on below it: a table's grid
        # the rule's height at each x (a skewed scan tilts it): a least-squares line through
        # its pixels; the label starts just under it
        ys, xs = np.nonzero((labels[found] == index) & horizontal[found])
        slope, intercept = np.polyfit(xs + x0, ys + y0, 1) if len(xs) > 1 else (0.0, y0)
        reach = 0.035 * height
        if not any(
            -3 <= by - (slope * (bx + bw / 2) + intercept) <= reach
            and bx < x1
            and bx + bw > x0
            and bh < 0.03 * height
            for bx, by, bw, bh in printed
        ):
            continue
        lines.append(Rule(x0, x1, int(slope * x0 + intercept) - 2, int(slope * x1 + intercept) - 2))
    # a signature line stands alone: rules of the same extent stacked close under each other
    # are a table's rows (a form's grid, a registration print-out), not places to sign (a
    # drawn signature's own flourish is a shorter rule just above its line: not a stack)
    gap, align = 0.045 * height, 0.04 * width
    return [
        a
        for a in lines
        if not any(
            b is not a
            and abs(b.y_at((a.x0 + a.x1) / 2) - a.y_at((a.x0 + a.x1) / 2)) < gap
            and abs(a.x0 - b.x0) < align
            and abs(a.x1 - b.x1) < align
            for b in lines
        )
    ]


def measure_labels(
    image: Image.Image,
    found: list[tuple[str, Box]],
    printed: list[Box],
    page: int,
    *,
    kind: Literal["wet_ink", "image"],
    note: str = "",
    rendered: bool = False,
    lines: bool = True,
) -> list[SignatureMark]:
    """Ink beside each label of ``found`` on a greyscale page ``image``, and above each
    signature line (:func:`signature_lines`) when ``lines``; ``printed`` text boxes are blanked
    first. Shared by the OCR worker (scans) and the text-PDF renderer (``rendered``, see
    :func:`_dark_mask`)."""
    _, params = _config()
    width, height = image.size
    raw = _dark_mask(image, rendered)
    dark = _blank(raw, printed)
    measured: list[tuple[str, list[tuple[int, int, int, int]]]] = []
    for label, (x, y, w, h) in found:
        measured.append(
            (
                label,
                [
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
                ],
            )
        )
    if lines:
        band = int(params["line_above"] * height)
        window = int(0.35 * width)
        for rule in signature_lines(raw, printed):
            # windows along a long line (signature and date parts): the best one counts, so
            # a signature on a long line is not diluted by the empty rest of it
            starts = range(rule.x0, max(rule.x0, rule.x1 - window) + 1, max(1, width // 10))
            regions = []
            for a in starts:
                b = min(rule.x1, a + window)
                bottom = min(rule.y_at(a), rule.y_at(b))
                regions.append((a, bottom - band, b, bottom))
            measured.append((_LINE, regions))
    # a signature's strokes are larger than printed characters: 1.5 times a word's height
    typical = float(np.median([b[3] for b in printed])) if printed else 0.012 * height
    stroke_extent = 0 if rendered else int(1.5 * typical)  # OCR misses print; a text layer not
    marks: list[SignatureMark] = []
    for label, regions in measured:
        unlabelled = label == _LINE
        best, best_region = 0.0, regions[0]
        for x0, y0, x1, y1 in regions:
            x0, y0 = max(0, x0), max(0, y0)
            x1, y1 = min(width, x1), min(height, y1)
            if x1 - x0 < 10 or y1 - y0 < 5:
                continue
            if unlabelled and printed_share(printed, (x0, y0, x1, y1)) > _MAX_PRINT_ABOVE_LINE:
                continue  # text above a rule: a table's row or a paragraph, not a place to sign
            ratio = ink_ratio(
                dark[y0:y1, x0:x1], width, min_extent=stroke_extent if unlabelled else 0
            )  # a rendered page's print is blanked exactly (text layer): stroke_extent is 0
            if ratio > best:
                best, best_region = ratio, (x0, y0, x1, y1)
        status = _status(best, params)
        if unlabelled and status != "signed":
            continue  # a rule with no signature label is evidence only when it carries ink
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
