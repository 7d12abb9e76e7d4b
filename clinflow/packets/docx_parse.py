"""DOCX parsing with python-docx: paragraph text, tables and core properties.

A DOCX has no fixed pagination; ``page_count`` is the ``Pages`` count the authoring tool
stored in ``docProps/app.xml`` when present, and at least the hard page breaks plus one.
Unreadable packages raise :class:`clinflow.errors.FatalSchemaMismatch` (``DOCX_CORRUPT``).
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

import docx

from clinflow.packets.models import (
    FileKind,
    PageText,
    ParseOptions,
    ParseResult,
    SignatureMark,
)
from clinflow.packets.rules import fatal
from clinflow.packets.signatures import label_pattern

_PAGES = re.compile(rb"<Pages>(\d+)</Pages>")
_MAX_TABLES = 50
_MAX_ROWS = 500
_CELL_CAP = 500


def _page_count(package: zipfile.ZipFile) -> int:
    try:
        app = package.read("docProps/app.xml")
    except KeyError:
        return 1
    m = _PAGES.search(app)
    return max(1, int(m.group(1))) if m else 1


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _page_breaks(document: Any) -> int:
    """Hard page breaks in the body (``<w:br w:type="page"/>``, a paragraph with
    ``pageBreakBefore``): a document with no stored ``Pages`` count has at least this many
    pages plus one."""
    breaks = 0
    for node in document.element.body.iter(f"{_W}br", f"{_W}pageBreakBefore"):
        if node.tag == f"{_W}br":
            breaks += node.get(f"{_W}type") == "page"
        else:
            breaks += node.get(f"{_W}val", "true") not in ("0", "false")
    return breaks


def _core(document: Any) -> dict[str, str]:
    props = document.core_properties
    out: dict[str, str] = {}
    for name in ("title", "subject", "author", "last_modified_by", "revision", "version"):
        value = getattr(props, name, None)
        if value not in (None, ""):
            out[name] = str(value)[:_CELL_CAP]
    for name in ("created", "modified"):
        value = getattr(props, name, None)
        if value is not None:
            out[name] = value.isoformat()
    return out


_IMAGE_TAGS = ("}blip", "}imagedata")


def _has_image(element: Any) -> bool:
    return any(str(node.tag).endswith(_IMAGE_TAGS) for node in element.iter())


def _mark(label: str, note: str) -> SignatureMark:
    return SignatureMark(page=0, kind="image", label=label.strip()[:40], status="signed", note=note)


def signature_images(document: Any) -> list[SignatureMark]:
    """Pictures placed where a signature goes: a signature inserted as an image.

    - a body paragraph holding a picture and no text, next to a signature label (the paragraph
      itself or up to two before or after), or in the last 40% of the body above a short line
      (letters and certificates often print only a role under the picture); a picture in the
      first two paragraphs is a letterhead logo, and page headers are not read at all;
    - a table cell holding a picture whose own text, left neighbour, upper or lower neighbour,
      or column heading is a signature label (signature grids, delegation logs), or that sits
      in the last two rows under a short heading (a sign-off row headed by a role)."""
    label = label_pattern()
    marks: list[SignatureMark] = []
    paragraphs = list(document.paragraphs)
    texts = [p.text.strip() for p in paragraphs]
    for i, para in enumerate(paragraphs):
        if i < 2 or not _has_image(para._element):
            continue
        near = [t for t in texts[max(0, i - 2) : i + 3] if label.search(t)]
        if near:
            marks.append(_mark(near[0], "picture beside a signature label"))
            continue
        following = next((t for t in texts[i + 1 : i + 3] if t), "")
        if not texts[i] and i >= 0.6 * len(paragraphs) and 0 < len(following) <= 80:
            marks.append(_mark("signature line", "picture above a short line near the end"))
    for table in document.tables[:_MAX_TABLES]:
        rows = [list(row.cells) for row in table.rows[:_MAX_ROWS]]
        for r, cells in enumerate(rows):
            for c, cell in enumerate(cells):
                if not _has_image(cell._element):
                    continue
                around = [cell.text]
                if c > 0:
                    around.append(cells[c - 1].text)
                for other in (r - 1, r + 1, 0):
                    if 0 <= other < len(rows) and c < len(rows[other]):
                        around.append(rows[other][c].text)
                hit = next((t for t in around if label.search(t)), None)
                if hit is not None:
                    marks.append(_mark(hit, "picture in a signature cell"))
                elif (
                    r >= max(1, len(rows) - 2)
                    and c < len(rows[r - 1])
                    and 0 < len(rows[r - 1][c].text.strip()) <= 80
                ):
                    marks.append(_mark("signature line", "picture under a role in a sign-off row"))
    return marks


def parse_docx(
    source: Path | bytes,
    *,
    sha256: str,
    size: int,
    options: ParseOptions,
    subject: str | None = None,
) -> ParseResult:
    """Parse a DOCX from a path or bytes; raises FatalSchemaMismatch (DOCX_CORRUPT)."""
    data = source.read_bytes() if isinstance(source, Path) else source
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            pages_declared = _page_count(package)
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise fatal("DOCX_CORRUPT", subject, problem=type(exc).__name__) from exc

    pages_declared = max(pages_declared, _page_breaks(document) + 1)
    text = "\n".join(p.text for p in document.paragraphs)
    tables: list[list[list[str]]] = []
    for table in document.tables[:_MAX_TABLES]:
        rows = [[c.text.strip()[:_CELL_CAP] for c in row.cells] for row in table.rows[:_MAX_ROWS]]
        tables.append(rows)
    keep = text[: min(options.max_page_chars * pages_declared, options.max_total_chars)]
    marks = signature_images(document)
    return ParseResult(
        kind=FileKind.DOCX,
        sha256=sha256,
        size=size,
        page_count=pages_declared,
        pages=[PageText(index=0, text=keep, chars=len(text))],
        metadata=_core(document),
        tables=tables,
        text_truncated=len(keep) < len(text),
        signature_marks=marks,
    )
