"""Signature detection: one result per signature block (signed, unsigned or uncertain).

Evidence, strongest first:

- a signed PDF signature field (``/Sig`` with a value): ``digital`` (its cryptographic validity
  is checked separately, PDF_SIGNATURE_* rules);
- the text layer (PDF text, OCR text, DOCX paragraphs and cells): an e-signature statement
  ("Electronically signed by NAME ... on DATE", "Digitally signed by"), an e-signature service
  box (envelope/document id with a signer or time stamp), a typed ``/s/ NAME``;
- image evidence measured by the parsers beside a signature label: ink on a scanned page
  (``wet_ink``: no machine-readable signer, a mark on the line is a signature) or a picture in a
  DOCX signature cell (``image``) - :class:`clinflow.packets.models.SignatureMark`.

A document is signed when any block is signed. When nothing shows a signature, the document is
``uncertain`` if a measured block was in between the ink thresholds, otherwise ``unsigned``.
Decision (documented in the rule table): an unsigned mandatory signature is SIGNATURE_MISSING
and an uncertain one SIGNATURE_UNCERTAIN - both COMPLIANCE_BLOCKs, so ``uncertain`` never
passes silently; the uncertain finding names the page and region so a reviewer can check it in
seconds. Patterns and thresholds are data (``clinflow/data/rules/signatures.yaml``). Signer
names may be personal data: nothing here logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from clinflow.packets.data_files import read_yaml, register_cache
from clinflow.packets.dates import DateOrder, find_dates, order_for
from clinflow.packets.extraction_models import SignatureBlock, SignatureEvidence
from clinflow.packets.models import ParseResult

_NAME_END = re.compile(
    r"(?i)\s+(?:on|at|date[d]?|am|le|el)\b.*$|\s*[,;]\s*(?:date|on)\b.*$|\s{2,}.*$|\s*\d.*$"
)
_TIME = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b")  # a signing service's time stamp
_CREDENTIAL_TAIL = re.compile(r"(?i),?\s*(?:reason|location|time|id)\s*:.*$")


@dataclass(frozen=True)
class _Patterns:
    typed: tuple[re.Pattern[str], ...]
    e_signature: tuple[re.Pattern[str], ...]
    box: re.Pattern[str]
    box_signer: tuple[re.Pattern[str], ...]


@register_cache
@lru_cache(maxsize=1)
def _patterns() -> _Patterns:
    raw = read_yaml("rules", "signatures.yaml")

    def many(key: str) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p, re.IGNORECASE) for p in raw[key])

    return _Patterns(
        typed=tuple(re.compile(p) for p in raw["typed"]),
        e_signature=many("e_signature"),
        box=re.compile("|".join(f"(?:{p})" for p in raw["e_signature_box"]), re.IGNORECASE),
        box_signer=many("e_signature_signer"),
    )


@register_cache
@lru_cache(maxsize=1)
def label_pattern() -> re.Pattern[str]:
    """Where a signature label is written in a line of text (the YAML ``labels``); the parsers
    look beside these for ink or pictures."""
    raw = read_yaml("rules", "signatures.yaml")
    return re.compile(r"(?i)\b(?:" + "|".join(raw["labels"]) + r")\b")


def _signer(raw: str) -> str | None:
    name = _CREDENTIAL_TAIL.sub("", raw.strip())
    name = _NAME_END.sub("", name).strip(" :,-|")
    return name[:80] or None


def _nearby_date(lines: list[str], i: int, order: DateOrder) -> str | None:
    for line in lines[i : i + 3]:
        found = find_dates(line, order=order)
        if found:
            return found[0][2].isoformat()
    return None


def _text_blocks(page: int, text: str, order: DateOrder) -> list[SignatureBlock]:
    p = _patterns()
    lines = text.splitlines()
    blocks: list[SignatureBlock] = []
    for i, line in enumerate(lines):
        for regex in p.e_signature:
            m = regex.search(line)
            if m:
                blocks.append(
                    SignatureBlock(
                        status="signed",
                        kind="e_signature",
                        page=page,
                        label=line.strip()[:60],
                        signer=_signer(m.group("name")),
                        date=_nearby_date(lines, i, order),
                        evidence="electronic signature statement in the text",
                    )
                )
                break
        else:
            for regex in p.typed:
                m = regex.search(line)
                if m and any(c.isalpha() for c in m.group("name")):
                    blocks.append(
                        SignatureBlock(
                            status="signed",
                            kind="typed",
                            page=page,
                            label=line.strip()[:60],
                            signer=_signer(m.group("name")),
                            date=_nearby_date(lines, i, order),
                            evidence="typed /s/ signature",
                        )
                    )
                    break
    for i, line in enumerate(lines):
        if not p.box.search(line):
            continue
        window = lines[max(0, i - 4) : i + 6]
        signer = None
        for candidate in window:
            for regex in p.box_signer:
                m = regex.search(candidate)
                if m:
                    signer = _signer(m.group("name"))
                    break
            if signer:
                break
        stamped = any(_TIME.search(w) and find_dates(w, order=order) for w in window)
        if signer or stamped:
            blocks.append(
                SignatureBlock(
                    status="signed",
                    kind="e_signature",
                    page=page,
                    label=line.strip()[:60],
                    signer=signer,
                    date=next(
                        (
                            found[0][2].isoformat()
                            for w in window
                            if (found := find_dates(w, order=order))
                        ),
                        None,
                    ),
                    evidence="e-signature service box (signer or time stamp with an id)",
                )
            )
            break
    return blocks


_DATE_LABEL = re.compile(r"(?i)(?:^|\s)date(?:\s+signed|\s+of\s+signature)?\s*:?\s*$|^\s*date\b")


def _block_date(parse: ParseResult, page: int, order: DateOrder) -> str | None:
    """The date written in the signature block of ``page`` (a hand-signed or pictured
    signature carries no machine-readable date: the block's "Date" field has it): the date
    closest to the last short line holding a signature or date label (prose such as "By my
    signature I confirm..." is not a block)."""
    pages = [p for p in parse.pages if p.index == page] or parse.pages[-1:]
    if not pages:
        return None
    lines = pages[0].text.splitlines()
    label = label_pattern()
    at = [
        i
        for i, line in enumerate(lines)
        if len(line.strip()) <= 60 and (label.search(line) or _DATE_LABEL.search(line))
    ]
    for i in reversed(at):
        for distance in (0, 1, -1, 2, -2, 3, -3):
            j = i - distance  # lines above first: the date is written above its label
            if 0 <= j < len(lines):
                found = find_dates(lines[j], order=order)
                if found:
                    return found[0][2].isoformat()
    return None


def has_text_signature(text: str) -> bool:
    """Whether ``text`` (one page) already shows a typed or electronic signature: the parsers
    then need not look for image evidence on that page."""
    return any(b.status == "signed" for b in _text_blocks(0, text, "MDY"))


def detect_signatures(
    parse: ParseResult, *, dayfirst: bool = False, order: DateOrder | None = None
) -> list[SignatureBlock]:
    """Every signature block the file shows evidence for (see the module docstring). Dates
    are read day-first when ``dayfirst`` (or in ``order`` when given)."""
    order = order_for(dayfirst, order)
    blocks: list[SignatureBlock] = []
    for field in parse.signature_fields:
        if field.signed:
            blocks.append(
                SignatureBlock(
                    status="signed",
                    kind="digital",
                    label=field.name[:60],
                    signer=field.signer,
                    date=field.signed_at,
                    evidence="signed PDF signature field",
                )
            )
    for page in parse.pages:
        blocks.extend(_text_blocks(page.index, page.text, order))
    if parse.tables:
        table_text = "\n".join(" | ".join(row) for t in parse.tables for row in t)
        blocks.extend(_text_blocks(0, table_text, order))
    for mark in parse.signature_marks:
        when = _block_date(parse, mark.page, order) if mark.status == "signed" else None
        where = f"page {mark.page + 1}"
        if mark.region is not None:
            x0, y0, x1, y1 = mark.region
            where += f", region x {x0:.2f}-{x1:.2f}, y {y0:.2f}-{y1:.2f} of the page"
        ink = f"ink {mark.ink_ratio:.2%} " if mark.ink_ratio is not None else ""
        blocks.append(
            SignatureBlock(
                status=mark.status,
                kind="digital" if mark.kind == "digital_stamp" else mark.kind,
                page=mark.page,
                label=mark.label,
                region=mark.region,
                date=when,
                evidence=mark.note or f"{ink}beside the label '{mark.label}' ({where})",
            )
        )
    return blocks


def overall(blocks: list[SignatureBlock]) -> SignatureEvidence:
    """The document's signature evidence from its blocks (see the module docstring)."""
    signed = [b for b in blocks if b.status == "signed"]
    if signed:
        best = next((b for b in signed if b.signer), signed[0])
        return SignatureEvidence(
            status="signed",
            method=best.kind,
            signer=best.signer,
            date=best.date or next((b.date for b in signed if b.date), None),
            blocks=blocks,
        )
    status = "uncertain" if any(b.status == "uncertain" for b in blocks) else "unsigned"
    return SignatureEvidence(status=status, method="none", blocks=blocks)
