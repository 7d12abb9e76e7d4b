from __future__ import annotations

from datetime import date

import pytest

from clinflow.packets.dates import DateFormatError, find_date, parse_date, to_iso


@pytest.mark.parametrize(
    "text",
    [
        "12-Mar-2026",
        "03/12/2026",
        "March 12, 2026",
        "Mar 12 2026",
        "2026-03-12",
        "2026/03/12",
        "12 March 2026",
        "12.03.2026",
        "12th March 2026",
        "20260312",
        "D:20260312093000Z",
        "Approved on 12-MAR-2026 by the board",
        "03/12/26",
    ],
)
def test_every_accepted_shape_reads_as_the_same_day(text: str) -> None:
    assert to_iso(text) == "2026-03-12"


def test_slash_dates_are_month_first_unless_dayfirst() -> None:
    assert parse_date("04/05/2026") == date(2026, 4, 5)
    assert parse_date("04/05/2026", dayfirst=True) == date(2026, 5, 4)


def test_first_number_above_twelve_is_a_day_whatever_the_convention() -> None:
    assert parse_date("25/12/2026") == date(2026, 12, 25)


@pytest.mark.parametrize("text", ["31/31/2026", "sometime in spring", "2026-02-30", ""])
def test_non_dates_raise_a_date_format_error(text: str) -> None:
    with pytest.raises(DateFormatError):
        parse_date(text)


def test_find_date_returns_the_earliest_date_in_the_text() -> None:
    assert find_date("from 2026-01-02 until 05-Feb-2027") == date(2026, 1, 2)
    assert find_date("no date here") is None
