"""Content sniffing: what a file is, from its first bytes (never from its name)."""

from __future__ import annotations

import zipfile
from typing import IO

from clinflow.packets.models import FileKind

HEAD_BYTES = 1024
_ZIP_MAGIC = b"PK\x03\x04"


def sniff_kind(head: bytes, opener: IO[bytes] | None = None) -> FileKind:
    """PDF when ``%PDF-`` occurs in the first 1024 bytes (as readers allow); DOCX when the bytes
    are a ZIP package holding ``word/document.xml``; otherwise UNSUPPORTED.

    ``opener`` is a seekable stream over the whole file, needed only to look inside a ZIP.
    """
    if b"%PDF-" in head[:HEAD_BYTES]:
        return FileKind.PDF
    if head.startswith(_ZIP_MAGIC) and opener is not None:
        try:
            opener.seek(0)
            with zipfile.ZipFile(opener) as zf:
                names = set(zf.namelist())
        except zipfile.BadZipFile:
            # A truncated DOCX still starts like one; let the DOCX parser report it.
            return FileKind.DOCX
        finally:
            opener.seek(0)
        if "word/document.xml" in names:
            return FileKind.DOCX
    return FileKind.UNSUPPORTED
