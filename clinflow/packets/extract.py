"""Extraction of the fields each document type carries, from a parse result's text.

Labels, their reach and the lines never read are data (``clinflow/data/rules/extraction.yaml``):
a value follows its label on the same line (``Label: value``, ``Label  value``, a DOCX table
row ``Label | value``) or on the next line when the label ends its line. Dates are read with
the packet country's numeric order (:mod:`clinflow.packets.dates`); a labelled date that cannot
be read is named in ``unreadable`` (with its page) and reported as a warning, never as a fatal
error. Versions go through :mod:`clinflow.packets.versions`, names stay as written (compared by
:mod:`clinflow.packets.person_names`). Never raises for content.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field

from clinflow.packets.data_files import DataFileError, read_yaml, register_cache
from clinflow.packets.dates import DateOrder, find_date, find_dates, order_for
from clinflow.packets.extraction_models import (
    CTABudgetExtraction,
    DelegatedStaff,
    DelegationLogExtraction,
    Extraction,
    ExtractionBase,
    FinancialDisclosureExtraction,
    Form1572Extraction,
    GCPCertificateExtraction,
    ICFApprovalExtraction,
    InvestigatorCVExtraction,
    IRBApprovalExtraction,
    LabCertificationExtraction,
    LaboratoryEntry,
    MedicalLicenseExtraction,
    ProtocolSignaturePageExtraction,
    SignatureEvidence,
    UnknownExtraction,
)
from clinflow.packets.models import DocumentType, ParseResult
from clinflow.packets.ocr_slips import IDENTIFIER_ALIKE, ocr_alike
from clinflow.packets.person_names import clean_name, person_key
from clinflow.packets.protocol_matrix import load_protocol_matrix
from clinflow.packets.signatures import detect_signatures, overall
from clinflow.packets.versions import read_version, resolve_ocr_version

_DEFAULT_REACH = 48


class LabelSpec(BaseModel):
    """One label spelling of a field (a regex fragment) and how far its value may be."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pattern: str
    reach: int = Field(_DEFAULT_REACH, ge=1, le=400)
    anchored: bool | None = Field(
        None,
        description="Label must start a line or cell; default: yes except for date fields "
        "(dates are recognised on their own, so their labels may stand inside a sentence).",
    )


class FieldSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = "text"
    labels: list[LabelSpec | str]
    report_unreadable: bool = False

    def specs(self) -> list[LabelSpec]:
        return [LabelSpec(pattern=x) if isinstance(x, str) else x for x in self.labels]


class RangeSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    labels: list[str]
    start: str
    end: str


class ExtractionRules(BaseModel):
    """The parsed ``extraction.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ignore_lines: list[str] = Field(default_factory=list)
    fields: dict[str, FieldSpec]
    ranges: list[RangeSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class _Label:
    regex: re.Pattern[str]
    reach: int
    explicit_version: bool


@dataclass(frozen=True)
class _Compiled:
    ignore: re.Pattern[str] | None
    fields: dict[str, tuple[FieldSpec, list[_Label]]]
    ranges: list[tuple[RangeSpec, list[re.Pattern[str]]]]


# A label starts a line (after an optional form item number, "4." / "(4)"), a table cell, or
# follows a wide gap; values stop at a cell border or a wide gap (the next label on a line).
_START = (
    r"(?:^|(?<=\|)|(?<=\s\s)|(?<=\t))[^\S\n]*(?:[^\w\s]{1,2}[^\S\n]*)?"  # OCR: "| Name", "[ Name"
    r"(?:(?:section\s+)?\(?\d{1,2}[a-z]?[.)][^\S\n]*)?"
)
_SEP = r"[^\S\n]*(?:[:;\-\u2013\u2014|]|\.(?=\s))?[^\S\n]*"  # ";": OCR of ":"


# between the words of a label OCR may read a stray letter or two ("Expiration n Date")
_OCR_GAP = r"\s+(?:[^\s\d]{1,2}\s+)?"


def _tolerant(fragment: str) -> str:
    return fragment.replace(r"\s+", _OCR_GAP)


def _label_regex(fragment: str) -> re.Pattern[str]:
    return re.compile(rf"(?im){_START}(?:{_tolerant(fragment)})\b{_SEP}")


def _anywhere_regex(fragment: str) -> re.Pattern[str]:
    return re.compile(rf"(?i)\b(?:{_tolerant(fragment)})\b{_SEP}")


@register_cache
@lru_cache(maxsize=1)
def extraction_rules() -> _Compiled:
    """The compiled extraction rules (cached; raises DataFileError on a malformed file)."""
    raw = read_yaml("rules", "extraction.yaml")
    if not isinstance(raw, dict):
        raise DataFileError("extraction.yaml must be a mapping")
    rules = ExtractionRules.model_validate(raw)
    fields: dict[str, tuple[FieldSpec, list[_Label]]] = {}
    for name, spec in rules.fields.items():
        compiled = []
        for label in spec.specs():
            anchored = label.anchored if label.anchored is not None else spec.kind != "date"
            build = _label_regex if anchored else _anywhere_regex
            compiled.append(_Label(build(label.pattern), label.reach, "amendment" in label.pattern))
        fields[name] = (spec, compiled)
    ranges = [(r, [_anywhere_regex(p) for p in r.labels]) for r in rules.ranges]
    ignore = (
        re.compile("|".join(f"(?:{p})" for p in rules.ignore_lines), re.IGNORECASE)
        if rules.ignore_lines
        else None
    )
    return _Compiled(ignore=ignore, fields=fields, ranges=ranges)


_PROTOCOL_TOKEN = re.compile(r"\b[A-Z][A-Z0-9]{1,9}[-_ ]?\d{2,6}(?:-[A-Z0-9]{1,6})*\b")
_PROTOCOL_INLINE = re.compile(
    r"(?i)\bprotocol\b[^\n]{0,30}?(?P<num>\b[A-Z][A-Z0-9]{1,9}-\d{2,6}(?:-[A-Z0-9]{1,6})*\b)"
)
_MONTH_YEAR = re.compile(
    r"^(?:JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)[A-Z]{0,6}[-_ ]?\d{2,4}$"
)
_LABEL_NUMBER = re.compile(
    r"^(?:DATE|DATED|PAGE|VERSION|VER|SITE|FORM|TEL|PHONE|FAX|NO|NUMBER|IND|AMENDMENT|"
    r"EDITION|REV|REVISION|SECTION|ITEM)[-_ ]?\d"
)
_LOCAL_REFERENCE = re.compile(r"(?i)\b(?:irb|iec|rec|hrec|ethics|local|committee|our)\W*$")
_FORM_1572 = re.compile(r"(?i)form\s+fda\s+1572\s*\(\s*(?P<v>[0-9]{1,2}\s*/\s*[0-9]{2,4})\s*\)")
_SITE_DIGITS = re.compile(r"\d+")
_DATEISH = re.compile(
    r"\d{1,4}\s?[./-]\s?[\dA-Za-z]{1,4}\s?[./-]\s?[\dOoIl]{2,4}|\d{1,2}\s+[A-Za-z]{3,9}\s+\d{2,4}"
)
_VALUE_END = re.compile(r"\s{3,}|\s\|\s|\|")
_SPLIT_LIST = re.compile(r"\s*[;,]\s*")
_DEGREE = re.compile(r"^(?:M\.?D|D\.?O|Ph\.?D|RN|MBBS|MBChB|PharmD|MSc|BSc|MPH|FRCP|NP|PA)\b\.?$")
_PHONE = re.compile(
    r"(?i)\b(?:tel(?:ephone)?|phone|ph)\b\.?\s*(?:no\.?|number|#)?\s*[:.]?\s*(?P<v>[+(]?\d[\d\s().\-/]{5,}\d)"
)
_FAX = re.compile(
    r"(?i)\b(?:fax|facsimile)\b\.?\s*(?:no\.?|number|#)?\s*[:.]?\s*(?P<v>[+(]?\d[\d\s().\-/]{5,}\d)"
)
_IND = re.compile(r"(?i)\bIND\s*(?:no\.?|number|#)?\s*:?\s*(?P<v>\d{2,3}[,.\s]?\d{3})\b")


class _Reader:
    """Reads fields from one document's text; collects the labelled values it could not read."""

    def __init__(self, parse: ParseResult, order: DateOrder) -> None:
        rules = extraction_rules()
        self.rules = rules
        self.order = order
        self.dayfirst = order == "DMY"
        self.page_texts = [self._clean(p.text, rules) for p in parse.pages]
        tables = ["\n".join(" | ".join(row) for row in t) for t in parse.tables]
        if tables:
            self.page_texts.append(self._clean("\n".join(tables), rules))
        self.text = "\n\f".join(self.page_texts)
        self.ocr_pages = set(parse.ocr_pages)
        self.unparsed: list[str] = []
        self.unreadable: dict[str, int | None] = {}

    @staticmethod
    def _clean(text: str, rules: _Compiled) -> str:
        if rules.ignore is None:
            return text
        return "\n".join(line for line in text.splitlines() if not rules.ignore.search(line))

    def _page_of(self, offset: int) -> int | None:
        return self.text.count("\f", 0, offset) if self.page_texts else None

    def _labels(self, field: str) -> list[_Label]:
        return self.rules.fields[field][1]

    def value(self, field: str) -> str | None:
        """The text after the first label of ``field`` that has a value (same or next line)."""
        found = self.values(field)
        return found[0] if found else None

    def values(self, field: str, *, skip_local: bool = False) -> list[str]:
        """Every value of ``field``'s labels, in label order.

        ``skip_local`` passes over labels qualified by a local committee on their line ("IRB
        Protocol #" is the committee's own reference, not the sponsor's protocol number).
        """
        out: list[str] = []
        for label in self._labels(field):
            for m in label.regex.finditer(self.text):
                line_start = self.text.rfind("\n", 0, m.start()) + 1
                before = self.text[max(line_start, m.start() - 16) : m.start()]
                if skip_local and _LOCAL_REFERENCE.search(before):
                    continue
                value = self._after(m.end())
                if value:
                    out.append(value)
        return out

    def _after(self, offset: int) -> str:
        line_end = self.text.find("\n", offset)
        line = self.text[offset : line_end if line_end >= 0 else len(self.text)]
        value = _VALUE_END.split(line.strip(), maxsplit=1)[0].strip().strip("_.").strip()
        if value or line_end < 0:
            return value
        following = self.text[line_end + 1 :].lstrip(" \t")
        if following.startswith("\f"):
            return ""
        nxt = following.split("\n", 1)[0]
        return _VALUE_END.split(nxt.strip(), maxsplit=1)[0].strip().strip("_").strip()

    def date(self, field: str) -> str | None:
        """The first date after a label of ``field`` within its reach, as ISO 8601."""
        spec = self.rules.fields[field][0]
        for label in self._labels(field):
            for m in label.regex.finditer(self.text):
                window = self._window(m.end(), label.reach)
                found = find_dates(window, order=self.order)
                if found and found[0][0] <= label.reach:
                    return found[0][2].isoformat()
                below = self._next_line_date(m.end())
                if below is not None:
                    return below
                if spec.report_unreadable and field not in self.unreadable:
                    stripped = window.split("\n", 1)[0][: label.reach]
                    if _DATEISH.search(stripped) or (
                        self._page_of(m.start()) in self.ocr_pages and re.search(r"\d", stripped)
                    ):
                        self.unreadable[field] = self._page_of(m.start())
        return None

    def _next_line_date(self, offset: int) -> str | None:
        """A date opening the line after the label's line, when the label's own line holds a
        few stray characters and no date (OCR splits a table row: "Expiration Date 0-N" then
        "30-Nov-2027")."""
        line_end = self.text.find("\n", offset)
        if line_end < 0 or len(self.text[offset:line_end].strip()) > 8:
            return None
        nxt = self.text[line_end + 1 :].split("\n", 1)[0]
        found = find_dates(nxt, order=self.order)
        if found and found[0][0] <= 3:
            return found[0][2].isoformat()
        return None

    def _window(self, offset: int, reach: int) -> str:
        chunk = self.text[offset : offset + reach + 40]
        first, _, rest = chunk.partition("\n")
        if first.strip():
            return first
        return "\n" + rest.split("\n", 1)[0]

    def date_range(self) -> dict[str, str]:
        """Start and end dates written after a range label ("Approval Period: A - B")."""
        for spec, regexes in self.rules.ranges:
            for regex in regexes:
                for m in regex.finditer(self.text):
                    window = self.text[m.end() : m.end() + 90].split("\n", 2)
                    found = find_dates(" ".join(window[:2]), order=self.order)
                    if len(found) >= 2:
                        return {
                            spec.start: found[0][2].isoformat(),
                            spec.end: found[1][2].isoformat(),
                        }
        return {}

    def name(self, field: str) -> str | None:
        """A person's name after a label of ``field`` (credentials kept as written)."""
        for value in self.values(field):
            candidate = re.split(r"\s\(|\s{2,}|\t|,\s*(?:date|id|signature)\b", value, flags=re.I)[
                0
            ]
            # OCR puts stray marks before a value ("Name e 2 Jo Doe, MD"): drop them
            candidate = _name_prefix(_JUNK_LEAD.sub("", candidate.strip(" ,;:")))
            if _looks_like_name(candidate):
                return candidate
        return None

    def listing(self, field: str) -> list[str]:
        raw = self.value(field)
        if not raw or raw.lower().strip(". ") in {"none", "n/a", "na", "-", "not applicable"}:
            return []
        if ";" in raw:
            return [p.strip() for p in raw.split(";") if _looks_like_name(p.strip())]
        names: list[str] = []
        for part in (p.strip() for p in raw.split(",")):
            if names and _DEGREE.match(part):
                names[-1] = f"{names[-1]}, {part}"  # "Jo Doe, MD" is one person
            elif part and _looks_like_name(part):
                names.append(part)
        return names


_NAME_STOP = re.compile(
    r"(?i)\b(?:university|hospital|clinic|department|institute|board|committee|center|centre|"
    r"street|road|avenue|suite|floor|signature|date|protocol|study|page|version|none|n/a|"
    r"name|investigator|address|statement|report|certificate|completion|course|training|"
    r"record|programme|program|module|form|log|approval|laboratory|institution|academy|"
    r"network|society|association|foundation|college|school|council|group|office|services|"
    r"ethics|research|learning|experience|education|publications|professional|summary|"
    r"profile|curriculum|vitae|employment|qualifications|certification|licensure|score|"
    r"reported|passing|minimum|stage|initials|function|transaction|envelope|signer|sign|"
    r"consent|assessment|examination|oversight|prescribing|dispensing)\b"
)
_PARTICLES = frozenset(
    "van von der den de del della di da dos das du le la bin binti ibn al el ter ten y e".split()
)
_JUNK_LEAD = re.compile(r"^(?:(?:[^\w\s]+|\d+|[a-z\u00e0-\u00ff]{1,2})\s+)+")


def _is_credential(part: str) -> bool:
    return bool(part) and clean_name(f"X, {part}") == "X"


def _name_prefix(value: str) -> str:
    """The name at the start of ``value`` when an address or institution follows it after a
    comma ("Jo Doe, MD, City Hospital, 1 Main St" -> "Jo Doe, MD"); a one-word first part takes
    the next part as given names ("Doe, Jo Q., MD")."""
    parts = [p.strip() for p in value.split(",")]
    name, i = parts[0], 1
    if (
        len(name.split()) >= 2
        and len(name.split()[-1].strip(".")) == 1
        and i < len(parts)
        and len(parts[i].split()) == 1
        and not _is_credential(parts[i])
    ):
        name, i = f"{name} {parts[i]}", i + 1  # OCR read the initial's full stop as a comma
    if (
        len(name.split()) == 1
        and i < len(parts)
        and 1 <= len(parts[i].split()) <= 3
        and not _is_credential(parts[i])
        and not re.search(r"\d", parts[i])
        and not _NAME_STOP.search(parts[i])
    ):
        name, i = f"{name}, {parts[i]}", i + 1
    while i < len(parts) and _is_credential(parts[i]):
        name, i = f"{name}, {parts[i]}", i + 1
    return name


def _looks_like_name(text: str) -> bool:
    if not text or len(text) > 80 or re.search(r"\d", text) or _NAME_STOP.search(text):
        return False
    if not text[0].isalpha() or ";" in text:
        return False  # "'s Agreement" is what is left of a label; "A; B" a list
    words = clean_name(text).split()
    if not 2 <= len(words) <= 6 or person_key(text) is None:
        return False
    # names are written capitalised ("SMITH, Jane", "Jan van der Berg"): a phrase is not
    letters = [sum(c.isalpha() for c in w) for w in words]
    if sum(1 for n in letters if n >= 2) < 2 or (
        max(letters) < 3 and not all(re.search(r"(?i)[aeiouy]", w) for w in words)
    ):
        return False  # "Ww Ae": what OCR reads off a signature ("Li Na" is a name)
    if "," not in text and letters[-1] == 1:
        return False  # "Wesley T.": a name cut short (a surname never ends "Given I.")
    significant = [
        w for w in words if w.lower() not in _PARTICLES and not (w.endswith(".") and len(w) <= 5)
    ]  # particles and abbreviations ("med.") may be lower-case
    return bool(significant) and all(w[0].isupper() for w in significant if w[0].isalpha())


def _ocr_same(found: str, known: str) -> bool:
    """Whether an OCR'd protocol number is the known one with OCR's confusions ("CEX-301" for
    "CFX-301"). A real other protocol differs in other ways ("NVX-210", "CFX-302")."""
    return ocr_alike(found.upper(), known.upper(), IDENTIFIER_ALIKE)


def _not_a_protocol(token: str) -> bool:
    """Tokens shaped like a protocol number that are something else: a month and year
    ("10-Jan-2026" of a "Protocol Date" label), or a label word and a number ("Date 01")."""
    return bool(_MONTH_YEAR.match(token) or _LABEL_NUMBER.match(token))


def _protocol(reader: _Reader, known_protocol: str | None) -> str | None:
    """The protocol number the document names. When the packet's own protocol number is
    written anywhere in the document (separators ignored: "CFX 301", "CFX-301"), that is the
    answer: a table the OCR scrambled can put another row's value after the label, and a
    mismatch is a compliance block, never a guess."""
    if known_protocol:
        wanted = re.sub(r"[^A-Z0-9]", "", known_protocol.upper())
        if wanted and wanted in re.sub(r"[^A-Z0-9]", "", reader.text.upper()):
            return known_protocol.upper()
    for value in reader.values("protocol_number", skip_local=True):
        for token in _PROTOCOL_TOKEN.finditer(value.upper()):
            if not _not_a_protocol(token.group(0)):
                found = token.group(0).replace("_", "-").replace(" ", "-")
                if known_protocol and reader.ocr_pages and _ocr_same(found, known_protocol):
                    return known_protocol.upper()
                return found
    for inline in _PROTOCOL_INLINE.finditer(reader.text):
        if not _not_a_protocol(inline.group("num").upper()):
            return inline.group("num").upper()
    return None


def _protocol_version(reader: _Reader, known_protocol: str | None = None) -> str | None:
    for label in reader._labels("protocol_version"):
        for m in label.regex.finditer(reader.text):
            value = reader._after(m.end())
            if not value:
                continue
            found = read_version(value, explicit_only=label.explicit_version)
            if found:
                return found
    # a version written after the protocol (or the packet's protocol number) on its line
    lead = r"\bprotocol\b|\bstudy\s+code\b"
    if known_protocol:
        lead += "|" + re.escape(known_protocol)
    inline = re.search(
        rf"(?i)(?:{lead})[^\n]{{0,60}}?\b(?:version|ver\.?|v\.?)\s*:?\s*(\d+(?:\.\d+)*)",
        reader.text,
    )
    return inline.group(1) if inline else None


_SITE_IN_TEXT = re.compile(r"(?i)\bsite\s+((?:[A-Z]{2}-?)?\d{2,})")


def _site_number(reader: _Reader) -> str | None:
    value = (reader.value("site_number") or "").lstrip(" .:#-\u2013")
    if not value:
        return None
    token = value.split()[0] if value.split() else ""
    later = _SITE_IN_TEXT.search(value)
    if later and re.fullmatch(r"\W?\d\W?", token):
        # "Site 7 Saint Clare Hospital, site 958": OCR read the table border after the label
        # as a digit; the number the row states is the later one
        return later.group(1)
    if not _SITE_DIGITS.search(token):
        digits = _SITE_DIGITS.search(value)
        if digits is None or len(value) > 24:
            return None
        return value.strip()
    return token.strip(",;:.()[]")


def _form_version(reader: _Reader) -> str | None:
    m = _FORM_1572.search(reader.text)
    if m:
        return re.sub(r"\s", "", m.group("v"))
    return reader.value("form_version")


def _ind_number(text: str) -> str | None:
    m = _IND.search(text)
    return re.sub(r"\D", "", m.group("v")) if m else None


def _signature(parse: ParseResult, reader: _Reader) -> SignatureEvidence:
    """The document's signature blocks (:mod:`clinflow.packets.signatures`); a signature date
    labelled on its own ("Date signed: ...") fills in a block that shows none."""
    evidence = overall(detect_signatures(parse, order=reader.order))
    if evidence.present and evidence.date is None:
        labelled = reader.date("signature_date")
        if labelled:
            evidence = evidence.model_copy(update={"date": labelled})
    return evidence


def _ocr_version(reader: _Reader, version: str | None, protocol: str | None) -> str | None:
    """On an OCR'd document, a protocol version that names no version of the protocol in the
    version matrix is read as the one known version it is an OCR slip away from."""
    if version is None or not reader.ocr_pages or not protocol:
        return version
    try:
        known = load_protocol_matrix().known_versions(protocol)
    except DataFileError:
        return version
    return resolve_ocr_version(version, known) if known else version


def _common(parse: ParseResult, reader: _Reader, known_protocol: str | None) -> dict[str, Any]:
    protocol = _protocol(reader, known_protocol)
    return {
        "protocol_number": protocol,
        "protocol_version": _ocr_version(
            reader, _protocol_version(reader, known_protocol), protocol or known_protocol
        ),
        "site_number": _site_number(reader),
        "document_date": reader.date("document_date"),
        "form_version": _form_version(reader),
        "signature": _signature(parse, reader),
    }


def _interests(value: str | None) -> bool | None:
    if value is None:
        return None
    low = value.lower().strip("[]() ")
    if low.startswith(("none", "no", "not applicable", "n/a", "nil", "x no", "☒ no")):
        return False
    if low.startswith(("yes", "declared", "see attached", "x yes", "☒ yes")):
        return True
    return None


_COLUMN_KEYS: dict[str, tuple[str, ...]] = {
    "name": ("name", "staff", "person"),
    "role": ("role", "title", "position", "function"),
    "task": ("task", "duties", "duty", "responsibilit", "delegated", "code"),
    "start": ("start", "from", "begin", "date delegated", "effective"),
}


_ROLE_WORDS = re.compile(
    r"(?i)\b(?:investigator|principal|co-?investigator|sub-?i|coordinator|nurse|pharmacist|physician|manager|assistant|"
    r"technician|director|research|clinical|study|crc|cra|pi|sub|data|lab|laboratory|"
    r"scientist|fellow|resident|registrar|consultant|practitioner|monitor|entry|associate|"
    r"specialist|officer|staff|member|initials?|tasks?|role|name|start|end|from|to)\b"
)


def _header_columns(cells: list[str]) -> dict[str, int] | None:
    low = [c.lower() for c in cells]
    if not any("name" in c for c in low) or not any(
        k in c for c in low for k in _COLUMN_KEYS["task"] + _COLUMN_KEYS["role"]
    ):
        return None
    columns: dict[str, int] = {}
    for i, c in enumerate(low):
        for key, words in _COLUMN_KEYS.items():
            if key not in columns and any(w in c for w in words):
                columns[key] = i
                break
    return columns


def _leading_name(line: str) -> tuple[str, str] | None:
    """A person's name at the start of a table row without cell borders, and the rest."""
    words = line.split()
    for k in range(min(6, len(words)), 1, -1):
        candidate = " ".join(words[:k]).rstrip(",;")
        if _ROLE_WORDS.search(candidate):
            continue
        if _looks_like_name(candidate):
            return candidate, " ".join(words[k:])
    return None


def _delegation_rows(text: str, order: DateOrder) -> list[DelegatedStaff]:
    """Staff rows of a delegation log: table rows after the header row (name, role, tasks,
    start date). DOCX tables and pipe-separated text have cells; rows of a PDF or scan whose
    borders were lost are read by their leading person name."""
    staff: list[DelegatedStaff] = []
    columns: dict[str, int] | None = None
    bordered = False
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"\s*\|\s*|\t|\s{3,}", line.strip())]
        if columns is None:
            if len(cells) >= 2:
                columns = _header_columns(cells)
                bordered = columns is not None and len(cells) >= 3
            else:
                columns = _header_columns(line.split())  # a header whose gaps were lost
                bordered = False
            continue
        if bordered and len(cells) >= 3:
            name_i = columns.get("name", 0)
            if name_i >= len(cells) or not _looks_like_name(cells[name_i]):
                continue
            tasks_i, role_i, start_i = (
                columns.get("task"),
                columns.get("role"),
                columns.get("start"),
            )
            start = None
            if start_i is not None and start_i < len(cells):
                found = find_date(cells[start_i], order=order)
                start = found.isoformat() if found else None
            staff.append(
                DelegatedStaff(
                    name=cells[name_i],
                    role=cells[role_i] if role_i is not None and role_i < len(cells) else None,
                    tasks=(
                        [t for t in _SPLIT_LIST.split(cells[tasks_i]) if t]
                        if tasks_i is not None and tasks_i < len(cells)
                        else []
                    ),
                    start_date=start,
                )
            )
            continue
        row = _unbordered_row(line, order)
        if row is not None:
            staff.append(row)
    if columns is None:  # OCR lost the header row: read every line as a possible row
        staff = [r for line in text.splitlines() if (r := _unbordered_row(line, order))]
    return staff


def _unbordered_row(line: str, order: DateOrder) -> DelegatedStaff | None:
    """A staff row without cell borders: a leading person name, then a role or a date."""
    if "=" in line or ":" in line.split("/s/")[0][:40]:
        return None  # a legend ("1 = Informed consent") or a labelled line, not a staff row
    # a row number ("1 Bronwen Okonjo") and OCR's stray marks before the name are not part of it
    body = _JUNK_LEAD.sub("", _ROW_NUMBER.sub("", line.strip()))
    found_name = _leading_name(body)
    if found_name is None:
        return None
    name, rest = found_name
    dates = find_dates(rest, order=order)
    if not dates and not _ROLE_WORDS.search(rest):
        return None  # a staff row carries a role or a start date
    return DelegatedStaff(name=name, start_date=dates[0][2].isoformat() if dates else None)


_ROW_NUMBER = re.compile(r"^[#\W]*\d{1,3}[.)]?\s+")
_HEADER_CELL = re.compile(
    r"(?i)^(?:#|no\.?|initials?|(?:study\s+|trial\s+)?role|function|title|position|"
    r"task(?:s|\s+codes?)?|duties|responsibilit(?:y|ies)|delegated\s+(?:tasks|duties)|"
    r"signature|(?:start|end)\s+date|date\s+(?:started|ended|delegated)|from|to|until)$"
)
_NAME_HEADER = re.compile(
    r"(?i)^(?:(?:(?:printed|staff|full)\s+)?name(?:\s+\(print\))?|staff(?:\s+member)?|"
    r"team\s+member|person(?:nel)?)$"
)
_ROWS_END = re.compile(
    r"(?i)task\s+codes?|statement|=|signer|signed|^page\s+\d|envelope|transaction|"
    r"document\s+id|e-?signature"
)


def _cell_per_line_rows(text: str, order: DateOrder) -> list[DelegatedStaff]:
    """Staff rows of a log whose text layer puts every table cell on a line of its own (a
    ruled table drawn cell by cell): after a header block of short cells (name, initials,
    role, tasks, dates, signature), each line that is a person's name opens a row and the
    first date before the next name is the start date."""
    lines = [line.strip() for line in text.splitlines()]
    start = None
    for i, line in enumerate(lines):
        if _NAME_HEADER.match(line):
            block = lines[i + 1 : i + 9]
            if sum(1 for b in block if _HEADER_CELL.match(b)) >= 3:
                start = i + 1
                while start < len(lines) and (_HEADER_CELL.match(lines[start]) or not lines[start]):
                    start += 1
                break
    if start is None:
        return []
    staff: list[DelegatedStaff] = []
    current: dict[str, Any] | None = None
    for line in lines[start:]:
        if len(line) > 70 or _ROWS_END.search(line):
            break
        typed_signature = line.startswith(("/s/", "s/"))
        if not typed_signature and _looks_like_name(line) and not _ROLE_WORDS.search(line):
            if current:
                staff.append(DelegatedStaff(**current))
            current = {"name": line}
            continue
        if current is not None and "start_date" not in current:
            found = find_dates(line, order=order)
            if found:
                current["start_date"] = found[0][2].isoformat()
    if current:
        staff.append(DelegatedStaff(**current))
    return staff


_LAB_SECTION = re.compile(
    r"(?im)^[^\S\n]*(?:section\s+)?4[.)]?[^\S\n]+[^\n]*laborator[^\n]*$"
    r"|^[^\n]*clinical\s+laboratory\s+facilities[^\n]*$"
)
_SECTION_END = re.compile(
    r"(?im)^[^\S\n]*(?:section\s+)?(?:5|6|7)[.)]?[^\S\n]+\S|^[^\n]*institutional\s+review\s+board"
)
_LAB_BOILERPLATE = re.compile(
    r"(?i)name\s+and\s+address|if\s+any|to\s+be\s+used|laboratory\s+facilities|continued|"
    r"^\s*facilit(?:y|ies)\b[^\n]{0,30}$|"  # the rest of a wrapped section heading
    r"^\s*(?:\(|\[)?[a-z]?\s*(?:\)|\])?\s*$"
)
_NONE = re.compile(
    r"(?i)^\s*(?:none|n/?a|not\s+applicable|no\s+laborator(?:y|ies)[^\n]*)\s*\.?\s*$"
)
_LAB_NAME = re.compile(
    r"(?i)laborator|\blabs?\b|patholog|diagnostic|clinic|hospital|institut|cent(?:re|er)|"
    r"services|\binc\b|\bltd\b|gmbh|\bllc\b|\bplc\b|\bs\.?a\.?\b|biolog|medical|analytic|quest|labcorp"
)
_ENUM = re.compile(r"^\s*(?:[-\u2022*]|\(?[a-z0-9]{1,2}[.)])\s+")


def _laboratories(text: str) -> list[LaboratoryEntry]:
    """Laboratories listed in Form FDA 1572 section 4 (name, address, phone, fax)."""
    start = _LAB_SECTION.search(text)
    if start is None:
        return []
    end = _SECTION_END.search(text, start.end())
    body = text[start.end() : end.start() if end else start.end() + 1500]
    entries: list[list[str]] = []
    current: list[str] = []
    for raw in body.splitlines():
        line = raw.strip()
        if not line:
            if current:
                entries.append(current)
                current = []
            continue
        if _NONE.match(line) and not entries and not current:
            return []
        if _LAB_BOILERPLATE.search(line) and not _LAB_NAME.search(line.split(":")[-1]):
            continue
        enumerated = bool(_ENUM.match(line))
        starts_lab = (
            _LAB_NAME.search(line) is not None
            and not _PHONE.search(line)
            and not _FAX.search(line)
            and not re.match(r"(?i)\s*(?:address|tel|phone|fax)", line)
        )
        if current and (enumerated or (starts_lab and len(current) >= 2)):
            entries.append(current)
            current = []
        current.append(_ENUM.sub("", line))
    if current:
        entries.append(current)
    labs: list[LaboratoryEntry] = []
    for lines in entries:
        joined = "\n".join(lines)
        if not any(_LAB_NAME.search(x) for x in lines) and not re.search(r"\d", joined):
            continue
        phone, fax = _PHONE.search(joined), _FAX.search(joined)
        name = re.sub(r"(?i)^\s*(?:name|laboratory)\s*:\s*", "", lines[0]).strip()
        address = (
            ", ".join(x for x in lines[1:] if not _PHONE.search(x) and not _FAX.search(x)).strip()
            or None
        )
        labs.append(
            LaboratoryEntry(
                name=name[:120],
                address=address[:240] if address else None,
                phone=" ".join(phone.group("v").split()) if phone else None,
                fax=" ".join(fax.group("v").split()) if fax else None,
            )
        )
    return labs


def _f1572(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return Form1572Extraction(
        **base,
        investigator_name=r.name("investigator_name"),
        irb_name=r.value("irb_name"),
        sub_investigators=r.listing("sub_investigators"),
        laboratories=_laboratories(r.text),
    )


def _title_name(r: _Reader) -> str | None:
    """A name printed on its own in the first lines (a CV's or certificate's heading)."""
    for line in r.text.splitlines()[:12]:
        candidate = line.strip(" :|")
        if _looks_like_name(candidate) and candidate.split()[0].lower() not in {
            "curriculum",
            "biographical",
            "resume",
            "certificate",
        }:
            return candidate
    return None


def _cv(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return InvestigatorCVExtraction(
        **base,
        person_name=r.name("person_name") or _title_name(r),
        position=r.value("position"),
    )


def _license(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return MedicalLicenseExtraction(
        **base,
        holder_name=r.name("holder_name") or _title_name(r),
        license_number=r.value("license_number"),
        issue_date=r.date("issue_date"),
        expiry_date=r.date("expiry_date"),
    )


def _gcp(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return GCPCertificateExtraction(
        **base,
        holder_name=r.name("holder_name") or _title_name(r),
        completion_date=r.date("completion_date"),
        provider=r.value("provider"),
    )


def _irb(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    span = r.date_range()
    return IRBApprovalExtraction(
        **base,
        irb_name=r.value("irb_name"),
        investigator_name=r.name("investigator_name"),
        approval_date=r.date("approval_date") or span.get("approval_date"),
        expiry_date=span.get("expiry_date") or r.date("expiry_date"),
    )


def _icf(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    version = None
    for value in r.values("icf_version"):
        version = read_version(value)
        if version:
            break
    return ICFApprovalExtraction(
        **base,
        irb_name=r.value("irb_name"),
        icf_version=version,
        approval_date=r.date("approval_date"),
    )


def _delegation(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return DelegationLogExtraction(
        **base,
        principal_investigator=r.name("investigator_name"),
        staff=_delegation_rows(r.text, r.order) or _cell_per_line_rows(r.text, r.order),
    )


def _financial(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return FinancialDisclosureExtraction(
        **base,
        investigator_name=r.name("investigator_name") or r.name("person_name"),
        interests_declared=_interests(r.value("financial_interests")),
    )


def _cta(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return CTABudgetExtraction(
        **base,
        sponsor=r.value("sponsor"),
        institution=r.value("institution"),
        total_budget=r.value("total_budget"),
        effective_date=r.date("effective_date"),
    )


_VERSION_THEN_DATE = re.compile(
    r"(?i)\b(?:version|vers?\.?|v\.?)\s*:?\s*\d+(?:\.\d+)*\s*(?:\(|,?\s*(?:dated|of)\s+)"
)


def _version_date(r: _Reader) -> str | None:
    """The date of the protocol version a signature page is for: a "Protocol Date" or
    "Version Date" field, or the date written with the version ("Ver. 3.0 (12 Jan 2026)",
    "Version 3.0, dated 12 Jan 2026", "Version 3.0 of 12.01.2026")."""
    labelled = r.date("protocol_date")
    if labelled:
        return labelled
    for m in _VERSION_THEN_DATE.finditer(r.text):
        found = find_dates(r.text[m.end() : m.end() + 30], order=r.order)
        if found and found[0][0] <= 2:
            return found[0][2].isoformat()
    return None


def _sigpage(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    """The protocol signature page: the document it signs is the protocol version, so its
    date is the version's date (a signature before it is SIGNATURE_PREDATES_DOCUMENT)."""
    base = {**base, "document_date": _version_date(r) or base.get("document_date")}
    return ProtocolSignaturePageExtraction(**base, investigator_name=r.name("investigator_name"))


def _lab(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    low = r.text.lower()
    accreditation = next(
        (
            label
            for keys, label in (
                (("clia", "clinical laboratory improvement"), "CLIA"),
                (("iso 15189", "iso15189"), "ISO 15189"),
                (("college of american pathologists", "cap accredit"), "CAP"),
            )
            if any(k in low for k in keys)
        ),
        None,
    )
    span = r.date_range()
    return LabCertificationExtraction(
        **base,
        lab_name=r.value("lab_name"),
        certificate_number=r.value("certificate_number"),
        accreditation=accreditation,
        expiry_date=span.get("expiry_date") or r.date("expiry_date"),
    )


def _unknown(r: _Reader, base: dict[str, Any]) -> ExtractionBase:
    return UnknownExtraction(**base)


_EXTRACTORS: dict[DocumentType, Callable[[_Reader, dict[str, Any]], ExtractionBase]] = {
    DocumentType.FDA_1572: _f1572,
    DocumentType.INVESTIGATOR_CV: _cv,
    DocumentType.MEDICAL_LICENSE: _license,
    DocumentType.GCP_CERTIFICATE: _gcp,
    DocumentType.IRB_APPROVAL: _irb,
    DocumentType.ICF_APPROVAL: _icf,
    DocumentType.DELEGATION_LOG: _delegation,
    DocumentType.FINANCIAL_DISCLOSURE: _financial,
    DocumentType.CTA_BUDGET: _cta,
    DocumentType.PROTOCOL_SIGNATURE_PAGE: _sigpage,
    DocumentType.LAB_CERTIFICATION: _lab,
    DocumentType.UNKNOWN: _unknown,
}


def extract(
    parse: ParseResult,
    doc_type: DocumentType,
    *,
    dayfirst: bool = False,
    order: DateOrder | None = None,
    protocol_number: str | None = None,
) -> Extraction:
    """The extraction model of ``doc_type`` filled from ``parse``'s text.

    ``order`` (or ``dayfirst``) is the packet country's numeric date order; ambiguous dates
    (``03/12/2026``) are read in it. ``protocol_number`` (the packet's) lets a document that
    names the protocol only in passing still be recognised as naming it. Deterministic; never
    raises for content.
    """
    reader = _Reader(parse, order_for(dayfirst, order))
    base = _common(parse, reader, protocol_number)
    base["ind_number"] = _ind_number(reader.text)
    result = _EXTRACTORS[doc_type](reader, base)
    if reader.unreadable:
        result = result.model_copy(
            update={
                "unparsed_dates": sorted(reader.unreadable),
                "unreadable_pages": {
                    k: v for k, v in sorted(reader.unreadable.items()) if v is not None
                },
            }
        )
    return cast(Extraction, result)
