"""structlog processors that keep PHI out of log output.

Three small processors, each usable and testable alone, run in this order by
``clinflow.log_config`` before anything is rendered:

1. ``TokeniseIdentifiers``: identifier fields (``mrn``, ``patient_id``, ``ssn``...)
   become deterministic tokens (``clinflow.tokenise``), so records about one
   patient can still be correlated. Without a token key they are redacted,
   never passed through.
2. ``mask_phi_fields``: fields named like PHI (names, birth dates, addresses,
   contact points, free text) are replaced by ``REDACTED``.
3. ``scrub_phi_patterns``: every string value, the event message included, is
   searched for PHI shapes (SSNs, e-mail addresses, phone numbers, bare dates).

Field matching is by key name, case- and separator-insensitive
(``birthDate``, ``birth_date`` and ``Birth-Date`` are one key), recursive through
nested mappings, lists, tuples, sets, pydantic models and dataclasses. The
processors never mutate the caller's objects: they return rewritten copies.

What is caught:
- any value under a key listed in ``MASKED_FIELDS`` or ``IDENTIFIER_FIELDS``, at any
  depth (a whole FHIR ``Patient`` dict loses its ``name``, ``birthDate``,
  ``address``, ``telecom``, ``text`` and ``identifier`` contents);
- a plain string under a person-like key (``patient="..."``); containers under
  such keys are walked instead;
- in any string: US SSNs (``123-45-6789``), e-mail addresses, North-American
  phone numbers with separators (``555-123-4567``, ``(555) 123-4567``),
  ``+``-prefixed international numbers with separators, bare ISO dates
  (``1970-03-05``) and US dates (``03/05/1970``).

What is NOT caught (keep PHI out of messages in the first place):
- names, street addresses, MRNs or other identifiers written into the free text
  of a message or exception (``f"patient {name}"``, ``logging.info("%s", mrn)``)
  under a key that is not in the tables;
- SSNs or phone numbers without separators (``123456789``), dates in words
  (``5 March 1970``), two-digit-year ISO dates;
- identifiers under generic keys such as ``id`` or ``value`` outside an
  identifier field (FHIR ``Patient.id`` is left as it is);

Deliberate choices:
- timestamps with a time of day (``2026-11-05T10:00:00Z``) are kept: they are
  how logs are read, and the logger's own ``timestamp`` key is never touched;
- integers under ``line`` (line numbers) are kept, see ``NUMBER_KEPT_FIELDS``;
- generic keys are masked whatever they hold: ``name="parse"`` logs ``[REDACTED]``,
  so name non-PHI things specifically (``activity=``, ``bucket=``, ``file_name=``).

Nesting deeper than ``MAX_DEPTH`` is replaced by ``REDACTED`` (fail closed).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from structlog.typing import EventDict, WrappedLogger

from clinflow.tokenise import Tokeniser, is_token

REDACTED: Final = "[REDACTED]"
MAX_DEPTH: Final = 24

# ---------------------------------------------------------------------------
# The tables. Keys are written as they appear in data; matching normalises them.
# ---------------------------------------------------------------------------

#: Fields whose whole value is PHI, by category.
MASKED_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "name": (
        "name",
        "names",
        "given",
        "family",
        "given_name",
        "family_name",
        "patient_name",
        "first_name",
        "middle_name",
        "last_name",
        "full_name",
        "maiden_name",
        "surname",
        "forename",
        "nickname",
        "mother_maiden_name",
    ),
    "birth_and_death": (
        "birthDate",
        "birth_date",
        "birthTime",
        "dob",
        "date_of_birth",
        "deceasedDateTime",
        "deceased_date",
        "date_of_death",
        "death_date",
    ),
    "address": (
        "address",
        "addresses",
        "line",
        "address_line",
        "street",
        "street_address",
        "city",
        "district",
        "county",
        "postalCode",
        "postcode",
        "zip",
        "zip_code",
        "geolocation",
        "latitude",
        "longitude",
    ),
    "contact": (
        "phone",
        "phone_number",
        "mobile",
        "fax",
        "telecom",
        "email",
        "email_address",
        "contact_point",
    ),
    "free_text": (
        "note",
        "notes",
        "text",
        "comment",
        "comments",
        "description",
        "narrative",
        "free_text",
        "clinical_note",
        "div",
        "valueString",
    ),
    "other": (
        "photo",
        "ip_address",
        "device_serial",
    ),
}

#: Masked keys that also name positions: an integer under them (``line=42``, a line
#: number in an NDJSON file) is kept; text or lists (an address line) are masked.
NUMBER_KEPT_FIELDS: Final[tuple[str, ...]] = ("line",)

#: Keys naming a person: a plain string under them is redacted, containers are walked.
PERSON_FIELDS: Final[tuple[str, ...]] = (
    "patient",
    "person",
    "guarantor",
    "next_of_kin",
    "related_person",
    "emergency_contact",
)

#: Identifier fields and the token kind each one maps to. Fields sharing a kind
#: share tokens: ``mrn="A1"`` and ``medical_record_number="A1"`` log the same token.
IDENTIFIER_FIELDS: Final[Mapping[str, str]] = {
    "mrn": "mrn",
    "medical_record_number": "mrn",
    "patient_id": "patient",
    "patient_identifier": "patient",
    "subject_id": "subject",
    "ssn": "ssn",
    "social_security_number": "ssn",
    "identifier": "id",
    "identifiers": "id",
    "member_id": "member",
    "insurance_id": "member",
    "health_plan_id": "member",
    "policy_number": "member",
    "account_number": "account",
    "passport_number": "passport",
    "driver_license": "license",
    "drivers_license": "license",
    "license_number": "license",
}


def normalise_key(key: object) -> str:
    """The comparison form of a key: case-folded, without ``_``, ``-``, ``.`` or spaces."""
    return _SEPARATORS.sub("", str(key)).casefold()


_SEPARATORS = re.compile(r"[\s_.\-]+")
_MASKED_KEYS: Final = frozenset(
    normalise_key(name) for names in MASKED_FIELDS.values() for name in names
)
_PERSON_KEYS: Final = frozenset(normalise_key(name) for name in PERSON_FIELDS)
_NUMBER_KEPT_KEYS: Final = frozenset(normalise_key(name) for name in NUMBER_KEPT_FIELDS)
_IDENTIFIER_KINDS: Final[Mapping[str, str]] = {
    normalise_key(name): kind for name, kind in IDENTIFIER_FIELDS.items()
}

#: Event-dict keys the processors leave alone: structlog bookkeeping and the
#: logger's own fields.
RESERVED_KEYS: Final = frozenset(
    {"_record", "_from_structlog", "exc_info", "timestamp", "level", "logger", "logger_name"}
)

# ---------------------------------------------------------------------------
# Value patterns: (label, regex, replacement). Order matters: SSN before phone.
# ---------------------------------------------------------------------------

_NOT_BEFORE = r"(?<![\w\-+/.@])"
_NOT_AFTER = r"(?![\w\-/@]|\.\w)"

VALUE_PATTERNS: Final[tuple[tuple[str, re.Pattern[str], str], ...]] = (
    (
        "email",
        re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"),
        "[EMAIL]",
    ),
    ("ssn", re.compile(_NOT_BEFORE + r"\d{3}-\d{2}-\d{4}" + _NOT_AFTER), "[SSN]"),
    (
        "phone",
        re.compile(
            r"(?<![\w\-+/.@(])"
            r"(?:\+?1[ .\-]?)?(?:\(\d{3}\)[ .\-]?|\d{3}[ .\-])\d{3}[ .\-]\d{4}" + _NOT_AFTER
        ),
        "[PHONE]",
    ),
    (
        "intl_phone",
        re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .\-]\d{1,4}){2,5}" + _NOT_AFTER),
        "[PHONE]",
    ),
    (
        # A date with no time of day after it; timestamps (``...T10:00``,
        # ``... 10:00``) are kept.
        "iso_date",
        re.compile(
            _NOT_BEFORE
            + r"(?:1[89]|20)\d{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
            + r"(?![\w\-/:@]|\.\d|[ T]\d)"
        ),
        "[DATE]",
    ),
    (
        "us_date",
        re.compile(
            _NOT_BEFORE
            + r"(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/(?:1[89]|20)?\d{2}"
            + _NOT_AFTER
        ),
        "[DATE]",
    ),
)


# ---------------------------------------------------------------------------
# Pure functions (usable outside logging, e.g. for DLQ context).
# ---------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Turn models and dataclasses into dicts so their fields can be inspected."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            return dump(mode="json")
        except Exception:  # a model that cannot dump itself is not shown at all
            return REDACTED
    return value


_RECURSE: Final = object()


def _same(value: Any) -> Any:
    return value


def _recurse(_key: str, _value: Any) -> Any:
    return _RECURSE


@dataclass(frozen=True)
class _Walk:
    """Copies a tree of values, letting ``on_entry`` replace mapping entries by key.

    ``on_entry(key, value)`` returns a replacement or ``_RECURSE`` for the default
    walk; ``on_leaf`` maps scalars; ``on_key`` maps nested mapping keys.
    """

    on_entry: Callable[[str, Any], Any] = _recurse
    on_leaf: Callable[[Any], Any] = _same
    on_key: Callable[[Any], Any] = _same

    def value(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            return REDACTED
        value = _plain(value)
        if isinstance(value, Mapping):
            return {self.on_key(key): self.entry(key, item, depth) for key, item in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            items = [self.value(item, depth + 1) for item in value]
            return tuple(items) if isinstance(value, tuple) else items
        return self.on_leaf(value)

    def entry(self, key: Any, item: Any, depth: int = 0) -> Any:
        replaced = self.on_entry(str(key), item)
        return self.value(item, depth + 1) if replaced is _RECURSE else replaced


def _mask_entry(key: str, item: Any) -> Any:
    norm = normalise_key(key)
    if norm in _MASKED_KEYS:
        if item is None:
            return None
        if norm in _NUMBER_KEPT_KEYS and isinstance(item, int) and not isinstance(item, bool):
            return item
        return REDACTED
    if norm in _PERSON_KEYS and isinstance(item, str | int | float):
        return REDACTED
    return _RECURSE


_MASK: Final = _Walk(on_entry=_mask_entry)


def mask_fields(value: Any) -> Any:
    """A copy of ``value`` with every PHI-named field replaced by ``REDACTED``.

    ``None`` stays ``None`` (absence is not PHI). Keys in ``PERSON_FIELDS`` lose
    plain values but have their containers walked.
    """
    return _MASK.value(value)


def _canonical(value: Any) -> str:
    return json.dumps(
        _Walk().value(value),
        sort_keys=True,
        separators=(",", ":"),
        default=str,
        ensure_ascii=False,
    )


def tokenise_value(value: Any, kind: str, tokeniser: Tokeniser | None) -> Any:
    """The token for one identifier value; containers get one token of their JSON.

    ``None`` stays ``None``; an existing token is kept; with no tokeniser the
    value is ``REDACTED``.
    """
    if value is None:
        return None
    if isinstance(value, str) and is_token(value):
        return value
    if tokeniser is None:
        return REDACTED
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return tokeniser(value, kind)
    return tokeniser(_canonical(value), kind)


def _token_walk(tokeniser: Tokeniser | None) -> _Walk:
    def on_entry(key: str, item: Any) -> Any:
        kind = _IDENTIFIER_KINDS.get(normalise_key(key))
        if kind is None:
            return _RECURSE
        return tokenise_value(item, kind, tokeniser)

    return _Walk(on_entry=on_entry)


def tokenise_fields(value: Any, tokeniser: Tokeniser | None) -> Any:
    """A copy of ``value`` with every identifier field replaced by its token."""
    return _token_walk(tokeniser).value(value)


def scrub_text(
    text: str, patterns: Iterable[tuple[str, re.Pattern[str], str]] = VALUE_PATTERNS
) -> str:
    """``text`` with every PHI-shaped substring replaced by its marker."""
    for _label, pattern, replacement in patterns:
        text = pattern.sub(replacement, text)
    return text


def _scrub_leaf(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else would be rendered through str()/repr(): scrub that text now.
    return scrub_text(str(value))


def _scrub_key(key: Any) -> Any:
    return scrub_text(key) if isinstance(key, str) else key


_SCRUB: Final = _Walk(on_leaf=_scrub_leaf, on_key=_scrub_key)


def scrub_values(value: Any) -> Any:
    """A copy of ``value`` with ``scrub_text`` applied to every string inside it.

    Nested mapping keys are scrubbed too. Objects that are not JSON scalars are
    converted to ``str`` first, so what is rendered later is what was scrubbed.
    """
    return _SCRUB.value(value)


# ---------------------------------------------------------------------------
# structlog processors
# ---------------------------------------------------------------------------


def _apply(event_dict: EventDict, walk: _Walk) -> EventDict:
    """Rewrite each top-level entry in place, except the reserved ones.

    Top-level keys and their order are kept; nested values are replaced by
    copies, so the caller's own objects are never modified.
    """
    for key in list(event_dict):
        if key not in RESERVED_KEYS:
            event_dict[key] = walk.entry(key, event_dict[key])
    return event_dict


def mask_phi_fields(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace PHI-named fields by ``REDACTED`` (see ``mask_fields``)."""
    return _apply(event_dict, _MASK)


class TokeniseIdentifiers:
    """structlog processor: replace identifier fields by deterministic tokens.

    With ``tokeniser=None`` (no key available) identifier values are redacted,
    never passed through. ``tokeniser`` may be swapped after construction
    (``configure_logging`` does so when it is called again).
    """

    def __init__(self, tokeniser: Tokeniser | None) -> None:
        self.tokeniser = tokeniser

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return _apply(event_dict, _token_walk(self.tokeniser))

    def __repr__(self) -> str:
        return f"TokeniseIdentifiers({self.tokeniser!r})"


def scrub_phi_patterns(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: ``scrub_text`` over the event message and every string value.

    Reserved keys (``timestamp``, ``level``, ``logger``) are left alone, so the
    logger's own fields survive.
    """
    return _apply(event_dict, _SCRUB)
