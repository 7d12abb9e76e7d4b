"""Characters OCR reads for one another, and strings equal up to those slips.

A scan can turn "CFX-301" into "CEX-301" or site "941" into "944"; compared with the value the
packet states, such a reading is the same value, not a mismatch. Each caller passes the groups
of look-alike characters that apply to what it compares.
"""

from __future__ import annotations

from collections.abc import Iterable

# letters and digits of identifiers (protocol numbers)
IDENTIFIER_ALIKE: tuple[frozenset[str], ...] = (
    frozenset("EFPR"),
    frozenset("O0DQ"),
    frozenset("I1L|"),
    frozenset("S5"),
    frozenset("B8"),
    frozenset("Z2"),
    frozenset("G6"),
)
# digits of a number on a noisy scan (site numbers)
DIGITS_ALIKE: tuple[frozenset[str], ...] = (
    frozenset("147"),
    frozenset("0689"),
    frozenset("38"),
    frozenset("56"),
)


def ocr_alike(found: str, expected: str, groups: Iterable[frozenset[str]]) -> bool:
    """Whether ``found`` is ``expected`` up to OCR slips: the same length, and every differing
    character pair within one of ``groups``."""
    groups = tuple(groups)
    return len(found) == len(expected) and all(
        x == y or any(x in g and y in g for g in groups)
        for x, y in zip(found, expected, strict=True)
    )
