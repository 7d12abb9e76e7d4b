"""The keys workflows set are exactly the attributes the stack registers."""

from clinflow.stack import SEARCH_ATTRIBUTES
from workflows import search_attributes


def test_keys_match_registered_attributes() -> None:
    assert {k.name: "Keyword" for k in search_attributes.ALL} == SEARCH_ATTRIBUTES
