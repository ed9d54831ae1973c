"""Errors the domain raises. Each names the record, the field and the reason, so that the CLI, the
API and an import's rejects file can show it next to what it concerns."""

from dataclasses import dataclass


@dataclass
class Problem:
    """One thing wrong with a piece of input."""

    field: str | None
    reason: str
    record: str | None = None

    def __str__(self) -> str:
        where = ".".join(p for p in (self.record, self.field) if p)
        return f"{where}: {self.reason}" if where else self.reason


class SafegroundError(Exception):
    """Base of every error Safeground reports to a user (never a bug)."""


class ValidationFailed(SafegroundError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class RuleViolation(ValidationFailed):
    """Valid input that the register's rules forbid (overlap, expired accreditation, ...)."""


class NotFound(SafegroundError):
    pass


class WorkflowError(SafegroundError):
    """An approval step out of order (approving a draft, re-approving, ...)."""
