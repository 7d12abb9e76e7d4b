"""Date normalisation: the many ways documents write a date, to ISO 8601 (``YYYY-MM-DD``).

Candidates are found with one pattern per shape, then read by python-dateutil with the day/month
order of the packet's country (``order``: ``MDY`` in the US, ``DMY`` in most of Europe,
Australia and Singapore, ``YMD`` in Japan, Taiwan, Korea and China). Accepted shapes
(case-insensitive, surrounding text ignored by :func:`find_date`):

- ISO and year-first ``2026-03-12``, ``2026/03/12``, ``2026.03.12``, compact ``20260312``
- day-month-name ``12-Mar-2026``, ``12 MAR 2026``, ``12 March 2026``, ``12th March 2026``
- month-name-day ``March 12, 2026``, ``Mar 12 2026``, ``Sept. 12, 2026``
- numeric ``03/12/2026``, ``03-12-2026``, ``12.03.2026``, two-digit years ``03/12/26``: the order
  decides ambiguous ones; a first number above 12 is a day whatever the order; dotted dates
  with a two-digit first part are day-first (no country writes ``MM.DD.YYYY``)
- PDF date strings ``D:20260312093000Z``

Only the order decision is ours; calendar arithmetic and month names are dateutil's.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Literal

from dateutil import parser as du_parser

DateOrder = Literal["MDY", "DMY", "YMD"]

_MONTH = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_DAY = r"(?:[0-2]?\d|3[01])(?:st|nd|rd|th)?"
_YEAR = r"(?:19|20)\d{2}"

# One alternative per shape; the group name says how to read the match.
_CANDIDATE = re.compile(
    rf"""(?ix)
    (?P<pdf>D:(?:19|20)\d{{6}})
  | (?P<ymd>\b{_YEAR}\s?[-/.]\s?[01]?\d\s?[-/.]\s?[0-3]?\d\b)
  | (?P<dmy_name>\b{_DAY}[-\s./]*(?:of\s+)?(?:{_MONTH})\.?[-\s./,]*(?:{_YEAR}|\d{{2}})\b)
  | (?P<mdy_name>\b(?:{_MONTH})\.?[-\s]+{_DAY},?[-\s]+{_YEAR}\b)
  | (?P<numeric>\b[0-3]?\d\s?[-/.]\s?[0-3]?\d\s?[-/.]\s?(?:{_YEAR}|\d{{2}})\b)
  | (?P<compact>\b{_YEAR}[01]\d[0-3]\d\b)
    """
)
_SEPARATORS = re.compile(r"\s*([-/.])\s*")
_DEFAULT = datetime(1900, 1, 1)


class DateFormatError(ValueError):
    """A value that should be a date is not one in any accepted shape."""

    def __init__(self, value: str) -> None:
        super().__init__(f"not a recognised date: {value[:40]!r}")
        self.value = value


def order_for(dayfirst: bool = False, order: DateOrder | None = None) -> DateOrder:
    """The numeric order to use: ``order`` when given, else DMY/MDY from ``dayfirst``."""
    if order is not None:
        return order
    return "DMY" if dayfirst else "MDY"


def _numeric(span: str, order: DateOrder) -> date | None:
    parts = re.split(r"[-/.]", _SEPARATORS.sub(r"\1", span))
    a, b = int(parts[0]), int(parts[1])
    dotted = "." in span
    if order == "YMD" and len(parts[2]) == 2 and not dotted:
        # "26/03/12" written year-first with a two-digit year is too rare to guess at
        order = "DMY"
    dayfirst = order == "DMY" or dotted or a > 12
    if dayfirst and a <= 12 < b:
        dayfirst = False  # "03/25/2026" in a day-first country: only month-first is a date
    try:
        parsed = du_parser.parse(
            "/".join(parts), dayfirst=dayfirst, yearfirst=False, default=_DEFAULT
        )
    except (ValueError, OverflowError):
        return None
    day: date = parsed.date()
    return day


def _read(kind: str, span: str, order: DateOrder) -> date | None:
    if kind == "numeric":
        return _numeric(span, order)
    text = span[2:10] if kind == "pdf" else span
    if kind == "ymd":
        text = _SEPARATORS.sub(r"\1", text)
    try:
        parsed = du_parser.parse(
            text,
            dayfirst=kind == "dmy_name",
            yearfirst=kind in ("ymd", "pdf", "compact"),
            default=_DEFAULT,
            fuzzy=kind in ("dmy_name", "mdy_name"),
        )
    except (ValueError, OverflowError):
        return None
    if parsed.year < 100:
        parsed = parsed.replace(year=parsed.year + 2000)
    day: date = parsed.date()
    return day


def find_dates(
    text: str, *, dayfirst: bool = False, order: DateOrder | None = None
) -> list[tuple[int, int, date]]:
    """Every date written in ``text``: ``(start, end, date)`` in reading order. Never raises."""
    resolved = order_for(dayfirst, order)
    squeezed, origin = _squeeze(text)
    out: list[tuple[int, int, date]] = []
    for m in _CANDIDATE.finditer(squeezed):
        kind = m.lastgroup or ""
        value = _read(kind, m.group(0), resolved)
        if value is not None and 1900 <= value.year <= 2100:
            out.append((origin[m.start()], origin[m.end() - 1] + 1, value))
    return out


# OCR puts a space after (or before) a date's separator: "22- MAR- 2028", "04 .03.2026"; a
# range's spaced dash ("03/04/2026 - 03/03/2027") has spaces on both sides and is left alone
_LOOSE_SEPARATOR = re.compile(r"(?<=[0-9A-Za-z])([-/.]) +(?=[0-9A-Za-z])|(?<=\d) +([-/.])(?=\d)")


def _squeeze(text: str) -> tuple[str, list[int]]:
    """``text`` with loose date separators closed up, and each kept character's offset in
    ``text`` (so positions found in the result map back)."""
    if not _LOOSE_SEPARATOR.search(text):
        return text, list(range(len(text) + 1))
    kept: list[str] = []
    origin: list[int] = []
    last = 0
    for m in _LOOSE_SEPARATOR.finditer(text):
        kept.append(text[last : m.start()])
        origin.extend(range(last, m.start()))
        sep_at = m.start() + m.group(0).index(m.group(1) or m.group(2))
        kept.append(text[sep_at])
        origin.append(sep_at)
        last = m.end()
    kept.append(text[last:])
    origin.extend(range(last, len(text) + 1))
    return "".join(kept), origin


def find_date(text: str, *, dayfirst: bool = False, order: DateOrder | None = None) -> date | None:
    """The first date written in ``text`` in any accepted shape, or None. Never raises."""
    found = find_dates(text, dayfirst=dayfirst, order=order)
    return found[0][2] if found else None


def parse_date(text: str, *, dayfirst: bool = False, order: DateOrder | None = None) -> date:
    """Parse a field value that must be a date; raises :class:`DateFormatError` otherwise."""
    found = find_date(text.strip(), dayfirst=dayfirst, order=order)
    if found is None:
        raise DateFormatError(text)
    return found


def to_iso(text: str, *, dayfirst: bool = False, order: DateOrder | None = None) -> str:
    """``parse_date`` rendered as ISO 8601 ``YYYY-MM-DD``; raises :class:`DateFormatError`."""
    return parse_date(text, dayfirst=dayfirst, order=order).isoformat()
