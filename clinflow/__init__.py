"""clinflow domain package: models, rules, parsing, security and storage.

Nothing in this package imports temporalio; the Temporal-facing layers
(``workflows``, ``activities``, ``workers``, ``starters``) build on it.
"""

__version__ = "0.1.0"
