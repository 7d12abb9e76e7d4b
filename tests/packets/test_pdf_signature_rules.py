"""Each PDF_SIGNATURE_* rule fires on a signed PDF made for it and stays quiet on a clean one."""

from __future__ import annotations

import pytest

from clinflow.errors import ErrorCategory
from clinflow.packets import rule_table
from tests.pdf_signing_kit import pdf_signature_rule_cases

CASES = pdf_signature_rule_cases()


def test_every_pdf_signature_rule_has_a_case() -> None:
    codes = {code for code in rule_table() if code.startswith("PDF_SIGNATURE_")}
    assert codes == set(CASES)
    for code in codes:
        assert rule_table()[code].category == ErrorCategory.COMPLIANCE_BLOCK


@pytest.mark.parametrize("code", sorted(CASES))
def test_rule_fires_on_its_case(code: str) -> None:
    fire, _ = CASES[code]
    assert code in fire()


@pytest.mark.parametrize("code", sorted(CASES))
def test_rule_is_quiet_on_a_clean_case(code: str) -> None:
    _, clean = CASES[code]
    assert code not in clean()
