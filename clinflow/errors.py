"""The error taxonomy every stage routes by.

Four categories, fixed: a failure is classified once, where it is detected, and
the category decides what happens next (see DESIGN.md, "Errors are types").

- ``COMPLIANCE_BLOCK``: a rule a regulator cares about failed; the packet waits
  for a Regulatory Affairs decision. Never retried.
- ``FATAL_SCHEMA_MISMATCH``: the input is structurally unusable; it goes to the
  dead-letter queue with full context. Never retried.
- ``RECOVERABLE_TIMEOUT``: a transient failure (network, timeout, a dependency
  down); retried with jittered exponential backoff, then dead-lettered.
- ``WARNING_DEVIATION``: recorded and reported; never blocks. It is data, not an
  exception, so it has no exception class.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCategory(StrEnum):
    COMPLIANCE_BLOCK = "COMPLIANCE_BLOCK"
    FATAL_SCHEMA_MISMATCH = "FATAL_SCHEMA_MISMATCH"
    RECOVERABLE_TIMEOUT = "RECOVERABLE_TIMEOUT"
    WARNING_DEVIATION = "WARNING_DEVIATION"


NON_RETRYABLE: frozenset[ErrorCategory] = frozenset(
    {ErrorCategory.COMPLIANCE_BLOCK, ErrorCategory.FATAL_SCHEMA_MISMATCH}
)


class ClinflowError(Exception):
    """A classified failure: category, a stable machine code, a reason a person can act on.

    ``subject`` names what failed (a document, record or object reference, never PHI);
    ``details`` carries small, PHI-free context for the DLQ and the audit trail.
    """

    category: ErrorCategory = ErrorCategory.FATAL_SCHEMA_MISMATCH

    def __init__(
        self,
        code: str,
        reason: str,
        *,
        subject: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{self.category}/{code}: {reason}")
        self.code = code
        self.reason = reason
        self.subject = subject
        self.details = details or {}

    @property
    def retryable(self) -> bool:
        return self.category not in NON_RETRYABLE

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": str(self.category),
            "code": self.code,
            "reason": self.reason,
            "subject": self.subject,
            "details": self.details,
        }


class ComplianceBlock(ClinflowError):
    category = ErrorCategory.COMPLIANCE_BLOCK


class FatalSchemaMismatch(ClinflowError):
    category = ErrorCategory.FATAL_SCHEMA_MISMATCH


class RecoverableTimeout(ClinflowError):
    category = ErrorCategory.RECOVERABLE_TIMEOUT


def error_for(category: ErrorCategory, code: str, reason: str, **kw: Any) -> ClinflowError:
    """Build the exception class that matches ``category`` (not WARNING_DEVIATION)."""
    cls: type[ClinflowError] = {
        ErrorCategory.COMPLIANCE_BLOCK: ComplianceBlock,
        ErrorCategory.FATAL_SCHEMA_MISMATCH: FatalSchemaMismatch,
        ErrorCategory.RECOVERABLE_TIMEOUT: RecoverableTimeout,
    }[category]
    return cls(code, reason, **kw)
