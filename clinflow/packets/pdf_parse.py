"""PDF parsing with pypdf: text per page, metadata, form and signature fields, encryption.

Integrity first: a PDF whose ``%%EOF`` marker is missing from its last 1024 bytes is truncated
(``PDF_TRUNCATED``); one pypdf cannot open or walk is corrupt (``PDF_CORRUPT``); one that needs
a user password is ``PDF_ENCRYPTED``. All three raise
:class:`clinflow.errors.FatalSchemaMismatch`. Pages that draw an image and have (almost) no
text layer are OCR'd.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import IO, Any

from pypdf import PasswordType, PdfReader
from pypdf.generic import DictionaryObject

from clinflow.packets.dates import find_date
from clinflow.packets.models import (
    FileKind,
    PageText,
    ParseOptions,
    ParseResult,
    SignatureField,
    SignatureMark,
)
from clinflow.packets.ocr import ocr_pdf_pages
from clinflow.packets.rules import fatal
from clinflow.packets.signature_ink import measure_labels
from clinflow.packets.signatures import has_text_signature, label_pattern

log = logging.getLogger(__name__)

_TAIL_BYTES = 1024
_VALUE_CAP = 500


def _tail(stream: IO[bytes]) -> bytes:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(max(0, size - _TAIL_BYTES))
    tail = stream.read()
    stream.seek(0)
    return tail


def _text(value: Any) -> str:
    return str(value)[:_VALUE_CAP]


def _resolve(value: Any) -> Any:
    return value.get_object() if hasattr(value, "get_object") else value


def _signature_field(name: str, field: dict[str, Any]) -> SignatureField:
    value = _resolve(field.get("/V"))
    if not isinstance(value, DictionaryObject):
        return SignatureField(name=name, signed=False)
    when = value.get("/M")
    found = find_date(str(when)) if when is not None else None
    signer = value.get("/Name")
    return SignatureField(
        name=name,
        signed=True,
        signer=_text(signer) if signer is not None else None,
        signed_at=found.isoformat() if found else None,
    )


def _fields(reader: PdfReader) -> tuple[dict[str, str], list[SignatureField]]:
    try:
        fields = reader.get_fields() or {}
    except Exception as exc:  # malformed AcroForm: keep the text, drop the fields
        log.warning("pdf form fields unreadable", extra={"error": type(exc).__name__})
        return {}, []
    values: dict[str, str] = {}
    signatures: list[SignatureField] = []
    for name, field in fields.items():
        if field.get("/FT") == "/Sig":
            signatures.append(_signature_field(str(name), dict(field)))
        else:
            raw = field.get("/V")
            values[str(name)[:_VALUE_CAP]] = "" if raw is None else _text(_resolve(raw))
    return values, signatures


def _metadata(reader: PdfReader) -> dict[str, str]:
    try:
        meta: Any = reader.metadata or {}
    except Exception:
        return {}
    return {str(k).lstrip("/"): _text(v) for k, v in meta.items() if v is not None}


def _open(stream: IO[bytes], subject: str | None) -> tuple[PdfReader, bool]:
    if b"%%EOF" not in _tail(stream):
        raise fatal("PDF_TRUNCATED", subject, problem="no %%EOF marker at the end of the file")
    try:
        reader = PdfReader(stream, strict=False)
    except Exception as exc:
        raise fatal("PDF_CORRUPT", subject, problem=type(exc).__name__) from exc
    encrypted = reader.is_encrypted
    if encrypted:
        try:
            result = reader.decrypt("")
        except Exception as exc:
            raise fatal("PDF_ENCRYPTED", subject, problem=type(exc).__name__) from exc
        if result == PasswordType.NOT_DECRYPTED:
            raise fatal("PDF_ENCRYPTED", subject)
    return reader, encrypted


def _has_image(page: Any) -> bool:
    """Whether the page draws an image or form XObject (what a scanned page is made of)."""
    try:
        xobjects = _resolve(_resolve(page.get("/Resources") or {}).get("/XObject") or {})
        return any(_resolve(x).get("/Subtype") in ("/Image", "/Form") for x in xobjects.values())
    except Exception:
        return True  # unreadable resources: let OCR try


def ocr_resolution(native: float | None, options: ParseOptions) -> int:
    """The resolution a page is OCR'd at: its scan's own (``native``), kept between
    ``ocr_dpi`` and ``ocr_max_dpi``; ``ocr_dpi`` when the page has no image."""
    return round(min(max(native or options.ocr_dpi, options.ocr_dpi), options.ocr_max_dpi))


def page_resolutions(path: Path) -> list[float | None]:
    """The scan resolution of every page of the PDF at ``path`` (None: no image)."""
    reader = PdfReader(str(path))
    return [_scan_dpi(page) for page in reader.pages]


def _scan_dpi(page: Any) -> float | None:
    """The resolution of the largest image on the page, as drawn across its width (a scanned
    page is one image the size of the page), or None."""
    try:
        width_in = float(page.mediabox.width) / 72.0
        xobjects = _resolve(_resolve(page.get("/Resources") or {}).get("/XObject") or {})
        widths = [
            float(_resolve(x).get("/Width") or 0)
            for x in xobjects.values()
            if _resolve(x).get("/Subtype") == "/Image"
        ]
    except Exception:
        return None
    if not widths or width_in <= 0:
        return None
    return max(widths) / width_in


def _page_texts(
    reader: PdfReader, subject: str | None
) -> tuple[list[str], list[bool], list[float | None]]:
    try:
        pages = list(reader.pages)
    except Exception as exc:
        raise fatal("PDF_CORRUPT", subject, problem=type(exc).__name__) from exc
    texts: list[str] = []
    images: list[bool] = []
    dpis: list[float | None] = []
    for page in pages:
        try:
            texts.append(page.extract_text() or "")
        except Exception as exc:  # one unreadable content stream: treat as no text layer
            log.warning("pdf page text unreadable", extra={"error": type(exc).__name__})
            texts.append("")
        images.append(_has_image(page))
        dpis.append(_scan_dpi(page) if images[-1] else None)
        _forget_xobjects(reader, page)
    return texts, images, dpis


def _forget_xobjects(reader: PdfReader, page: Any) -> None:
    """Drop the page's XObjects (scanned images) from pypdf's object cache.

    pypdf keeps every object it resolved, image streams included, so a long scanned PDF would
    otherwise end up whole in memory; after this, memory stays bounded by one page's objects.
    """
    try:
        xobjects = _resolve(_resolve(page.get("/Resources") or {}).get("/XObject") or {})
        refs = [xobjects.raw_get(name) for name in list(xobjects.keys())]
    except Exception:
        return
    for ref in refs:
        if hasattr(ref, "idnum"):
            reader.resolved_objects.pop((ref.generation, ref.idnum), None)


def parse_pdf(
    source: Path | bytes,
    *,
    sha256: str,
    size: int,
    options: ParseOptions,
    subject: str | None = None,
) -> ParseResult:
    """Parse a PDF from a path or bytes. Deterministic for the same bytes and options.

    Raises FatalSchemaMismatch (PDF_TRUNCATED, PDF_CORRUPT, PDF_ENCRYPTED) or
    RecoverableTimeout (OCR_UNAVAILABLE) when pages need OCR and tesseract is missing.
    """
    import io

    stream: IO[bytes] = source.open("rb") if isinstance(source, Path) else io.BytesIO(source)
    try:
        reader, encrypted = _open(stream, subject)
        texts, images, native = _page_texts(reader, subject)
        form_fields, signatures = _fields(reader)
        metadata = _metadata(reader)
    finally:
        stream.close()

    needs_ocr = [
        i
        for i, t in enumerate(texts)
        if images[i] and len("".join(t.split())) < options.ocr_min_chars
    ]
    ocr_conf: dict[int, float | None] = {}
    marks: list[SignatureMark] = []
    if needs_ocr and options.ocr_enabled:
        dpis = [ocr_resolution(native[i], options) for i in needs_ocr]
        ocr_conf, marks = _run_ocr(source, needs_ocr, texts, options, dpis)
    if options.ocr_enabled:
        to_render = _pages_to_render(texts, set(ocr_conf))
        if to_render:
            marks.extend(_rendered_marks(source, to_render))

    pages: list[PageText] = []
    budget = options.max_total_chars
    truncated = False
    for i, text in enumerate(texts):
        keep = text[: min(options.max_page_chars, max(budget, 0))]
        truncated = truncated or len(keep) < len(text)
        budget -= len(keep)
        pages.append(
            PageText(
                index=i,
                text=keep,
                chars=len(text),
                ocr=i in ocr_conf,
                ocr_confidence=ocr_conf.get(i),
            )
        )
    confs = [c for c in ocr_conf.values() if c is not None]
    return ParseResult(
        kind=FileKind.PDF,
        sha256=sha256,
        size=size,
        page_count=len(texts),
        pages=pages,
        metadata=metadata,
        form_fields=form_fields,
        signature_fields=signatures,
        encrypted=encrypted,
        ocr_pages=sorted(ocr_conf),
        ocr_mean_confidence=round(sum(confs) / len(confs), 1) if confs else None,
        text_truncated=truncated,
        signature_marks=marks,
    )


_MAX_RENDERED = 4  # text pages rendered per file to look for a signature image


def _pages_to_render(texts: list[str], ocr_pages: set[int]) -> list[int]:
    """Text pages whose signature may be an image: those with a signature label and no typed
    or electronic signature in their text, and the last page (where letters and certificates
    sign, often above a role instead of a "Signature" label) unless its text is signed."""
    label = label_pattern()
    text_pages = [i for i in range(len(texts)) if i not in ocr_pages]
    unsigned = [i for i in text_pages if not has_text_signature(texts[i])]
    chosen = [i for i in unsigned if label.search(texts[i])][: _MAX_RENDERED - 1]
    if text_pages and text_pages[-1] in unsigned and text_pages[-1] not in chosen:
        chosen.append(text_pages[-1])
    return chosen


_RENDER_DPI = 100


def _pixels(
    rect: tuple[float, float, float, float], height: float, scale: float
) -> tuple[int, int, int, int]:
    """A PDF rectangle (left, bottom, right, top in points) as x, y, width, height pixels."""
    left, bottom, right, top = rect
    x, y = int(left * scale), int((height - top) * scale)
    return x, y, max(1, int((right - left) * scale)), max(1, int((top - bottom) * scale))


def _rendered_marks(source: Path | bytes, pages: list[int]) -> list[SignatureMark]:
    """Ink beside the signature labels of text pages: a signature image or the appearance of a
    signature field leaves only the label in the text layer. One page rendered at a time at
    low resolution; printed text (the text layer's rectangles) is blanked before measuring."""
    import pypdfium2

    label = label_pattern()
    scale = _RENDER_DPI / 72
    marks: list[SignatureMark] = []
    try:
        doc = pypdfium2.PdfDocument(source if isinstance(source, bytes) else str(source))
    except pypdfium2.PdfiumError:
        return []
    try:
        for index in pages:
            page = doc[index]
            textpage = page.get_textpage()
            try:
                height = page.get_height()

                text = textpage.get_text_range()
                found = []
                for m in label.finditer(text):
                    first = textpage.get_charbox(m.start(), loose=True)
                    last = textpage.get_charbox(m.end() - 1, loose=True)
                    found.append(
                        (
                            m.group(0),
                            _pixels(
                                (first[0], min(first[1], last[1]), last[2], first[3]), height, scale
                            ),
                        )
                    )
                printed = [
                    _pixels(textpage.get_rect(i), height, scale)
                    for i in range(textpage.count_rects())
                ]
                bitmap = page.render(scale=scale, grayscale=True)
                image = bitmap.to_pil()
                try:
                    marks.extend(
                        measure_labels(
                            image,
                            found[:_MAX_RENDERED],
                            printed,
                            index,
                            kind="image",
                            rendered=True,
                        )
                    )
                finally:
                    image.close()
                    bitmap.close()
            finally:
                textpage.close()
                page.close()
    finally:
        doc.close()
    return marks


def _run_ocr(
    source: Path | bytes,
    pages: list[int],
    texts: list[str],
    options: ParseOptions,
    dpis: list[int],
) -> tuple[dict[int, float | None], list[SignatureMark]]:
    """OCR ``pages`` in place into ``texts``; returns page index -> mean confidence, and the
    signature marks measured on those pages."""
    tmp: Path | None = None
    if isinstance(source, Path):
        path = source
    else:
        fd, name = tempfile.mkstemp(suffix=".pdf")
        with os.fdopen(fd, "wb") as fh:
            fh.write(source)
        tmp = path = Path(name)
    try:
        results = ocr_pdf_pages(
            path,
            pages,
            dpi=dpis,
            language=options.ocr_language,
            max_workers=options.ocr_max_workers,
        )
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    for page in results:
        texts[page.index] = page.text
    marks = [m for page in results for m in page.marks]
    return {page.index: page.confidence for page in results}, marks
