"""DOCX parsing with python-docx: paragraph text, tables and core properties.

A DOCX has no fixed pagination; ``page_count`` is the ``Pages`` count the authoring tool
stored in ``docProps/app.xml`` when present, else 1. Unreadable packages raise
:class:`clinflow.errors.FatalSchemaMismatch` (``DOCX_CORRUPT``).
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


_LABEL = re.compile(r"(?i)\b(?:signature|signed|sign\s+here|unterschrift|firma)\b")
_IMAGE_TAGS = ("}blip", "}imagedata")


def _has_image(element: Any) -> bool:
    return any(str(node.tag).endswith(_IMAGE_TAGS) for node in element.iter())


def signature_images(document: Any) -> list[SignatureMark]:
    """Images placed in a signature paragraph or cell (or the one right after / right of it):
    a signature inserted as a picture. Paragraphs and table cells are read in order."""
    marks: list[SignatureMark] = []
    paragraphs = list(document.paragraphs)
    for i, para in enumerate(paragraphs):
        if not _LABEL.search(para.text):
            continue
        near = paragraphs[max(0, i - 1) : i + 2]
        if any(_has_image(p._element) for p in near):
            marks.append(
                SignatureMark(page=0, kind="image", label=para.text.strip()[:40], status="signed")
            )
    for table in document.tables[:_MAX_TABLES]:
        for row in table.rows[:_MAX_ROWS]:
            cells = list(row.cells)
            for j, cell in enumerate(cells):
                if not _LABEL.search(cell.text):
                    continue
                near = cells[j : j + 2]
                if any(_has_image(c._element) for c in near):
                    marks.append(
                        SignatureMark(
                            page=0, kind="image", label=cell.text.strip()[:40], status="signed"
                        )
                    )
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
