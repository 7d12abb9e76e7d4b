"""``parse_document``: sniff the content, then parse it as PDF or DOCX."""

from __future__ import annotations

import io
from pathlib import Path

from clinflow.packets.docx_parse import parse_docx
from clinflow.packets.identity import sha256_bytes, sha256_file
from clinflow.packets.models import FileKind, ParseOptions, ParseResult
from clinflow.packets.pdf_parse import parse_pdf
from clinflow.packets.rules import fatal
from clinflow.packets.sniff import HEAD_BYTES, sniff_kind


def parse_document(
    source: Path | str | bytes,
    *,
    options: ParseOptions | None = None,
    subject: str | None = None,
) -> ParseResult:
    """Parse one document (a path or its bytes) into a :class:`ParseResult`.

    The kind is decided by magic bytes, not by the file name. The result's ``sha256`` and
    ``size`` are of the bytes actually parsed, so callers can re-verify the ingestion hash.
    Pure and repeatable: the same bytes and options give the same result.

    Raises :class:`clinflow.errors.FatalSchemaMismatch` with code FILE_EMPTY,
    FORMAT_UNSUPPORTED, PDF_TRUNCATED, PDF_CORRUPT, PDF_ENCRYPTED or DOCX_CORRUPT, and
    :class:`clinflow.errors.RecoverableTimeout` (OCR_UNAVAILABLE) when OCR is needed but
    tesseract is missing. ``subject`` (a document key or file name) is put on the errors.
    """
    opts = options or ParseOptions()
    src: Path | bytes = Path(source) if isinstance(source, str) else source
    if isinstance(src, Path):
        size = src.stat().st_size
        if size == 0:
            raise fatal("FILE_EMPTY", subject)
        with src.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
            kind = sniff_kind(head, fh)
        digest = sha256_file(src)
    else:
        size = len(src)
        if size == 0:
            raise fatal("FILE_EMPTY", subject)
        head = src[:HEAD_BYTES]
        kind = sniff_kind(head, io.BytesIO(src))
        digest = sha256_bytes(src)
    if kind is FileKind.PDF:
        return parse_pdf(src, sha256=digest, size=size, options=opts, subject=subject)
    if kind is FileKind.DOCX:
        return parse_docx(src, sha256=digest, size=size, options=opts, subject=subject)
    raise fatal("FORMAT_UNSUPPORTED", subject, magic=head[:8].hex())
