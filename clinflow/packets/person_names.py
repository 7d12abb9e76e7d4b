"""Person names as documents write them, compared as the same person or not.

One packet writes its investigator as "Jane Q. Smith, MD", "Smith, Jane Q.", "SMITH, Jane",
"Dr. Jane Smith" and "Jane Smith, M.D.". Parsing is nameparser's (titles, suffixes, the
"Last, First" form); we compare on first and last name only, case- and accent-insensitive,
ignoring middle names and initials, credentials and titles. Names may contain PHI: nothing here
logs.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import NamedTuple

from nameparser import HumanName
from rapidfuzz.distance import Levenshtein

# Credentials nameparser does not know as suffixes; removed before parsing.
_CREDENTIALS = re.compile(
    r"(?i)(?:,\s*|\s+)\b(?:M\.?D|D\.?O|Ph\.?D|MBBS|MBChB|MB|BCh|BAO|FRCP[CE]?|FRCS|FACP|FACC|"
    r"MRCP|MPH|MSc|BSc|MS|MA|RN|BSN|MSN|NP|PA-C|PA|PharmD|RPh|CCRC|CCRP|CRA|Dr\.?\s*med|"
    r"Dipl\.?-?\w*|MHSc|DNP|CRNP|FRACP|FRANZCP|DM|MMed|FMH|MRCGP|MRCS)\b\.?(?=\s|,|$)"
)
_TITLES = re.compile(r"(?i)^(?:(?:prof(?:essor)?|dr|doctor|mr|mrs|ms|mx|miss|sir|dame)\.?\s+)+")
_STRAY_STOP = re.compile(r"\b([^\W\d_a-z][^\W\d_]{2,})\.(?=\s)")
_SURNAME_STOP = re.compile(r"^([^\W\d_][^\W\d_'-]{2,})\.\s+([^\W\d_]+(?:\s+[^\W\d_]\.?)?)$")
_HYPHENED_INITIAL = re.compile(r"(\w)-([A-Z]\.)")
_NOISE = re.compile(r"[^\w\s,.'\-]")


class PersonKey(NamedTuple):
    """The comparable parts of a name: lower-case, accents removed."""

    first: str
    last: str
    others: tuple[str, ...]  # middle names (and multi-part surnames), for lenient matching


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower().strip(" .,'-")


def clean_name(raw: str) -> str:
    """``raw`` without titles, credentials and stray punctuation (for display and parsing)."""
    text = _NOISE.sub(" ", raw).strip()
    text = _TITLES.sub("", text)
    # a full-stop after a whole given name is a slip of the pen or of OCR ("Calvin. P. Doe"):
    # nameparser would read "Calvin." as a title; initials ("P.") keep theirs
    surname_first = _SURNAME_STOP.match(text)
    if surname_first:  # "Vasquez. Grant N.": OCR read the comma of "Surname, Given" as a stop
        text = f"{surname_first.group(1)}, {surname_first.group(2)}"
    text = _STRAY_STOP.sub(r"\1", text)
    text = _HYPHENED_INITIAL.sub(r"\1 \2", text)  # OCR: "Margit-C." for "Margit C."
    previous = None
    while previous != text:
        previous = text
        text = _CREDENTIALS.sub("", text).strip(" ,")
    return " ".join(text.split()).strip(" ,-\u2013")


@lru_cache(maxsize=4096)
def person_key(raw: str) -> PersonKey | None:
    """The comparable key of a written name, or None when it holds no name."""
    text = clean_name(raw)
    if not text or not any(c.isalpha() for c in text):
        return None
    parsed = HumanName(text)
    first, last = _fold(parsed.first), _fold(parsed.last)
    middles = tuple(_fold(m) for m in parsed.middle.split() if _fold(m))
    if not last and first:
        first, last = "", first
    if not last:
        return None
    return PersonKey(first=first, last=last, others=middles)


def _initial_match(a: str, b: str) -> bool:
    return bool(a and b) and (len(a) == 1 or len(b) == 1) and a[0] == b[0]


def same_person(a: str | None, b: str | None) -> bool:
    """Whether two written names denote the same person (first + last name; see module doc).

    Also true for a surname-first order ("WANG Xiaoming" vs "Xiaoming Wang"), a first-name
    initial ("J. Smith"), a multi-part surname written in full once and shortened once
    ("Maria Garcia Lopez" vs "Maria Garcia"), a given name written once after another ("Mary
    Jane Smith" vs "Jane Smith"), and one letter of a long surname misread by OCR with the
    same first name ("Owen Kowalezyk"). False when either holds no name.
    """
    if not a or not b:
        return False
    ka, kb = person_key(a), person_key(b)
    if ka is None or kb is None:
        return False
    if ka.last == kb.last and (ka.first == kb.first or _initial_match(ka.first, kb.first)):
        return True
    if ka.last == kb.last and kb.first and (kb.first in ka.others or ka.first in kb.others):
        return True  # a given name written once with another before it ("Mary Jane Smith")
    if (
        ka.first
        and ka.first == kb.first
        and min(len(ka.last), len(kb.last)) >= 6
        and Levenshtein.distance(ka.last, kb.last) <= 1
    ):
        return True  # one letter of a long surname misread by OCR ("Kowalezyk")
    if ka.first == kb.last and ka.last == kb.first:
        return True
    if ka.first and ka.first == kb.first:
        parts_a = {ka.last, *ka.others}
        parts_b = {kb.last, *kb.others}
        return ka.last in parts_b or kb.last in parts_a
    return (not ka.first or not kb.first) and ka.last == kb.last


def canonical_name(raw: str) -> str:
    """A stable comparable string ``first last`` for a name (empty when none)."""
    key = person_key(raw)
    return f"{key.first} {key.last}".strip() if key else ""
