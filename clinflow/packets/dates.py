"""Date normalisation: the many ways documents write a date, to ISO 8601 (``YYYY-MM-DD``).

Accepted shapes (case-insensitive, surrounding text ignored by :func:`find_date`):

- ISO ``2026-03-12``, ``2026/03/12``, compact ``20260312``
- day-month-name ``12-Mar-2026``, ``12 Mar 2026``, ``12 March 2026``, ``12.Mar.2026``
- month-name-day ``March 12, 2026``, ``Mar 12 2026``
- numeric with slashes ``03/12/2026`` (month first unless ``dayfirst`` or the first number
  is above 12), with dots ``12.03.2026`` (always day first), two-digit years ``03/12/26``
- PDF date strings ``D:20260312093000Z``
"""

from __future__ import annotations

import re
from datetime import date

_MONTHS = {
    name: i
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("pdf", re.compile(r"D:(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})")),
    ("ymd", re.compile(r"\b(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})\b")),
    (
        "dmy_name",
        re.compile(
            rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?[-\s./]+(?P<mon>{_MONTH_RE})\.?[-\s./,]+"
            r"(?P<y>\d{4}|\d{2})\b",
            re.IGNORECASE,
        ),
    ),
    (
        "mdy_name",
        re.compile(
            rf"\b(?P<mon>{_MONTH_RE})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>\d{{4}})\b",
            re.IGNORECASE,
        ),
    ),
    ("slash", re.compile(r"\b(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4}|\d{2})\b")),
    ("dot", re.compile(r"\b(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})\b")),
    ("compact", re.compile(r"\b(?P<y>(?:19|20)\d{2})(?P<m>[01]\d)(?P<d>[0-3]\d)\b")),
]


class DateFormatError(ValueError):
    """A value that should be a date is not one in any accepted shape."""

    def __init__(self, value: str) -> None:
        super().__init__(f"not a recognised date: {value[:40]!r}")
        self.value = value


def _year(text: str) -> int:
    y = int(text)
    return y + 2000 if y < 100 else y


def _build(kind: str, m: re.Match[str], dayfirst: bool) -> date:
    g = m.groupdict()
    year = _year(g["y"])
    if kind in ("dmy_name", "mdy_name"):
        return date(year, _MONTHS[g["mon"].lower().rstrip(".")], int(g["d"]))
    if kind == "slash":
        a, b = int(g["a"]), int(g["b"])
        if a > 12 or (dayfirst and b <= 12):
            return date(year, b, a)
        return date(year, a, b)
    return date(year, int(g["m"]), int(g["d"]))


def find_date(text: str, *, dayfirst: bool = False) -> date | None:
    """The first date written in ``text`` in any accepted shape, or None. Never raises."""
    best: tuple[int, date] | None = None
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            try:
                value = _build(kind, m, dayfirst)
            except ValueError:
                continue
            if best is None or m.start() < best[0]:
                best = (m.start(), value)
            break
    return best[1] if best else None


def parse_date(text: str, *, dayfirst: bool = False) -> date:
    """Parse a field value that must be a date; raises :class:`DateFormatError` otherwise."""
    found = find_date(text.strip(), dayfirst=dayfirst)
    if found is None:
        raise DateFormatError(text)
    return found


def to_iso(text: str, *, dayfirst: bool = False) -> str:
    """``parse_date`` rendered as ISO 8601 ``YYYY-MM-DD``; raises :class:`DateFormatError`."""
    return parse_date(text, dayfirst=dayfirst).isoformat()
