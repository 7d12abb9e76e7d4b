"""OCR of PDF pages without a text layer: rasterise with pypdfium2, read with tesseract.

Memory stays bounded whatever the page count: each worker process renders one page at a time
and keeps only that page's bitmap; results are text plus a confidence. Pages are spread over a
process pool of at most ``max_workers`` (tesseract itself runs single-threaded: with
``OMP_THREAD_LIMIT=1`` one page is ~10x faster than with its default threading on 2 cores).
The pool uses the ``spawn`` start method, safe inside a multi-threaded worker process.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from clinflow.errors import RecoverableTimeout
from clinflow.packets.models import SignatureMark
from clinflow.packets.signature_ink import measure_marks

os.environ.setdefault("OMP_THREAD_LIMIT", "1")


class OcrPage(BaseModel):
    """Text and mean word confidence (0-100, None when no word was read) of one page, and the
    ink measured beside its signature labels."""

    model_config = ConfigDict(frozen=True)

    index: int
    text: str
    confidence: float | None
    marks: list[SignatureMark] = []


def tesseract_available() -> bool:
    """True when the tesseract binary is on PATH."""
    return shutil.which("tesseract") is not None


_open_doc: tuple[str, Any] | None = None


def _document(path: str) -> Any:
    """The worker's open pdfium document for ``path`` (one open document per process)."""
    global _open_doc
    import pypdfium2

    if _open_doc is not None and _open_doc[0] == path:
        return _open_doc[1]
    if _open_doc is not None:
        _open_doc[1].close()
    doc = pypdfium2.PdfDocument(path)
    _open_doc = (path, doc)
    return doc


def _lines_from_data(data: dict[str, list[Any]]) -> tuple[str, float | None]:
    lines: dict[tuple[int, int, int], list[str]] = defaultdict(list)
    confs: list[float] = []
    for i, word in enumerate(data["text"]):
        word = str(word).strip()
        conf = float(data["conf"][i])
        if not word or conf < 0:
            continue
        lines[(data["block_num"][i], data["par_num"][i], data["line_num"][i])].append(word)
        confs.append(conf)
    text = "\n".join(" ".join(words) for _, words in sorted(lines.items()))
    return text, (round(sum(confs) / len(confs), 1) if confs else None)


def ocr_page(path: str, index: int, dpi: int, language: str) -> OcrPage:
    """OCR one page of the PDF at ``path``: render at ``dpi`` in greyscale, read, discard."""
    import pytesseract

    os.environ["OMP_THREAD_LIMIT"] = "1"
    page = _document(path)[index]
    try:
        bitmap = page.render(scale=dpi / 72.0, grayscale=True)
        image = bitmap.to_pil()
    finally:
        page.close()
    try:
        data = pytesseract.image_to_data(image, lang=language, output_type=pytesseract.Output.DICT)
        marks = measure_marks(image, data, index)
    finally:
        image.close()
    text, confidence = _lines_from_data(data)
    return OcrPage(index=index, text=text, confidence=confidence, marks=marks)


def _worker_init() -> None:
    os.environ["OMP_THREAD_LIMIT"] = "1"


def ocr_pdf_pages(
    path: Path,
    pages: list[int],
    *,
    dpi: int | list[int] = 200,
    language: str = "eng",
    max_workers: int = 2,
) -> list[OcrPage]:
    """OCR ``pages`` (0-based) of the PDF at ``path``, in page order, each at ``dpi`` (one
    value, or one per page).

    Runs in-process for a single page or ``max_workers == 1``, otherwise over a process pool of
    ``min(max_workers, len(pages))`` workers. Raises :class:`RecoverableTimeout`
    (``OCR_UNAVAILABLE``) when tesseract is not installed: another worker may have it.
    """
    if not pages:
        return []
    if not tesseract_available():
        raise RecoverableTimeout(
            "OCR_UNAVAILABLE",
            "pages need OCR but the tesseract binary is not on PATH",
            details={"problem": "tesseract not found", "pages": len(pages)},
        )
    target = str(path)
    dpis = dpi if isinstance(dpi, list) else [dpi] * len(pages)
    workers = min(max_workers, len(pages))
    if workers <= 1:
        try:
            return [ocr_page(target, i, d, language) for i, d in zip(pages, dpis, strict=True)]
        finally:
            _close_cached()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_worker_init
    ) as pool:
        results = pool.map(
            ocr_page,
            [target] * len(pages),
            pages,
            dpis,
            [language] * len(pages),
        )
        return list(results)


def _close_cached() -> None:
    global _open_doc
    if _open_doc is not None:
        _open_doc[1].close()
        _open_doc = None
