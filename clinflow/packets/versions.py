"""Version strings as documents write them: protocol, consent and form versions.

"Version 3.0", "v3.0", "Ver. 3.0 (12 Jan 2026)", "Amendment 2 (Version 3.0)" and "3" all name
protocol version 3.0; OCR may drop the dot ("31" for "3.1") or read a letter for a digit
("3.l"). :func:`read_version` takes the version out of a labelled value; :func:`same_version`
and :func:`resolve_version` compare it with the expected or the known versions, tolerating
those OCR slips (rapidfuzz scores the near misses).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rapidfuzz.distance import Levenshtein

_EXPLICIT = re.compile(
    r"(?i)\b(?:version|vers?\.?|v\.?)\s*(?:no\.?|number|#)?\s*:?\s*(\d+(?:\s?\.\s?\d+)*)"
)
_NUMBER = re.compile(r"(?<![\d./-])(\d+(?:\.\d+)*)(?![\d/-]|\.\d)")
_DATEISH = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{2,4}")
_OCR_DIGITS = str.maketrans({"l": "1", "I": "1", "O": "0", "o": "0", ",": "."})
# A number OCR may have garbled: digits with letters that look like digits ("3.l", "2,O").
_GARBLED = re.compile(r"(?<![A-Za-z])(?=[\dlIOo]*\d)[\dlIOo]+(?:[.,][\dlIOo]+)+(?![A-Za-z])")


def read_version(value: str, *, explicit_only: bool = False) -> str | None:
    """The version number written in ``value`` ("v3.0", "Amendment 2 (Version 3.0)"...).

    An explicit ``version``/``v`` keyword wins over a bare number; dates are skipped. With
    ``explicit_only`` a bare number is not taken (e.g. after an "Amendment 3" label).
    """
    text = _GARBLED.sub(lambda m: m.group(0).translate(_OCR_DIGITS), value)
    m = _EXPLICIT.search(text)
    if m:
        return re.sub(r"\s", "", m.group(1))
    if explicit_only:
        return None
    for found in _NUMBER.finditer(_DATEISH.sub(" ", text)):
        return found.group(1)
    return None


def canonical(version: str) -> str:
    """``3`` -> ``3.0``; ``3.10`` stays; surrounding noise removed."""
    v = version.strip().strip(".").lower().lstrip("v")
    parts = [p.lstrip("0") or "0" for p in v.split(".") if p != ""]
    if len(parts) == 1:
        parts.append("0")
    return ".".join(parts)


def _digits(version: str) -> str:
    return canonical(version).replace(".", "").rstrip("0")


def same_version(found: str | None, expected: str | None) -> bool:
    """Whether two written versions name the same version (``3`` == ``3.0`` == ``v3.0``).

    A found version that lost its dot to OCR ("31") matches "3.1" when the digits agree.
    """
    if not found or not expected:
        return False
    if canonical(found) == canonical(expected):
        return True
    return "." not in found and len(found) > 1 and _digits(found) == _digits(expected)


def resolve_version(found: str | None, known: Iterable[str]) -> str | None:
    """The known version ``found`` stands for (exact, dot lost, or one OCR slip), else as read.

    A one-character slip (a letter read for a digit) is accepted only in a value that is not a
    clean number, and only when exactly one known version is that close.
    """
    if not found:
        return None
    known = list(known)
    for k in known:
        if same_version(found, k):
            return k
    if re.fullmatch(r"\d+(?:\.\d+)*", found.strip()):
        return found  # a clean number that is not known is a different version, not a slip
    near = [k for k in known if Levenshtein.distance(canonical(found), canonical(k)) <= 1]
    return near[0] if len(near) == 1 else found


def resolve_ocr_version(found: str | None, known: Iterable[str]) -> str | None:
    """:func:`resolve_version` for a version read by OCR: a value that names no known version
    is taken for the one known version whose digits differ from it by one character ("41"
    read for "1.1" when 1.0, 1.1 and 2.0 are known); otherwise as read."""
    known = list(known)
    resolved = resolve_version(found, known)
    if resolved is None or resolved in known:
        return resolved
    digits = resolved.replace(".", "")
    near = [k for k in known if Levenshtein.distance(digits, canonical(k).replace(".", "")) <= 1]
    return near[0] if len(near) == 1 else resolved
