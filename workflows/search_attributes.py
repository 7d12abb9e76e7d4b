"""The project's search attribute keys, one definition for workflows and starters.

The names are registered by the local stack (``clinflow.stack.SEARCH_ATTRIBUTES``) and
by docker-compose; values are ids, statuses and categories, never PHI.
"""

from temporalio.common import SearchAttributeKey

KIND = SearchAttributeKey.for_keyword("ClinflowKind")
STATUS = SearchAttributeKey.for_keyword("ClinflowStatus")
SITE = SearchAttributeKey.for_keyword("ClinflowSite")
PROTOCOL = SearchAttributeKey.for_keyword("ClinflowProtocol")
REGION = SearchAttributeKey.for_keyword("ClinflowRegion")
ERROR_CATEGORY = SearchAttributeKey.for_keyword("ClinflowErrorCategory")
SOURCE = SearchAttributeKey.for_keyword("ClinflowSource")

ALL = (KIND, STATUS, SITE, PROTOCOL, REGION, ERROR_CATEGORY, SOURCE)
