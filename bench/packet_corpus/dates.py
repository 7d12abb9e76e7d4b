"""Dates as documents write them: the country's numeric order or a named-month form."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date

DateFormat = Callable[[date], str]

_MON = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_MONTH = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
DMY_SLASH = {"FR", "ES", "IT", "NL", "BE", "IE", "AU", "SG", "GB", "BR", "AE", "MX"}
DMY_DOT = {"DE", "PL", "DK"}


def numeric(country: str) -> DateFormat:
    """The country's numeric convention (US month first; most of Europe day first...)."""
    if country == "US":
        return lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}"
    if country in DMY_DOT:
        return lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}"
    if country in ("JP", "TW"):
        return lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}"
    if country == "KR":
        return lambda d: f"{d.year}.{d.month:02d}.{d.day:02d}"
    return lambda d: f"{d.day:02d}/{d.month:02d}/{d.year}"


NAMED: dict[str, DateFormat] = {
    "long_mdy": lambda d: f"{_MONTH[d.month - 1]} {d.day}, {d.year}",
    "long_dmy": lambda d: f"{d.day} {_MONTH[d.month - 1]} {d.year}",
    "short_dmy": lambda d: f"{d.day} {_MON[d.month - 1]} {d.year}",
    "dash_mon": lambda d: f"{d.day:02d}-{_MON[d.month - 1]}-{d.year}",
    "dash_MON": lambda d: f"{d.day:02d}-{_MON[d.month - 1].upper()}-{d.year}",
    "iso": lambda d: d.isoformat(),
}


def pick(rng: random.Random, country: str) -> tuple[str, DateFormat]:
    """A (style id, formatter) for one document: numeric by country about half the time."""
    if rng.random() < 0.5:
        return "numeric", numeric(country)
    name = rng.choice(sorted(NAMED))
    if name == "long_mdy" and country != "US" and rng.random() < 0.7:
        name = "long_dmy"
    return name, NAMED[name]
