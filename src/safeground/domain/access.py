"""Who may do what: roles, the acting principal, and the permission rules.

The rules live here, apart from any web framework, so that the API, the pages, the OGC service
and the command line ask the same questions and get the same answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from safeground.domain.errors import SafegroundError
from safeground.domain.reports import ReportStatus


class Role(StrEnum):
    """Roles in increasing order of trust."""

    PUBLIC = "public"  # aggregates and admin areas only
    DATA_ENTRY = "data_entry"  # an operator's staff: drafts for their own organisation
    REVIEWER = "reviewer"  # reviews and approves or rejects submitted reports
    IM_OFFICER = "im_officer"  # the national authority's information manager
    ADMIN = "admin"  # manages accounts


_RANK = {role: rank for rank, role in enumerate(Role)}

# Record types anyone may read: the admin areas that aggregates are drawn on.
PUBLIC_RECORD_TYPES = frozenset({"admin_area"})


class AccessDenied(SafegroundError):
    """The principal may not do this (HTTP 403)."""


class LoginRequired(AccessDenied):
    """Nobody is logged in and the action needs someone (HTTP 401)."""


@dataclass(frozen=True)
class Principal:
    """Who acts: an account's name, role and organisation, or the anonymous public."""

    username: str | None
    role: Role
    organisation_id: str | None = None

    @classmethod
    def anonymous(cls) -> Principal:
        return cls(None, Role.PUBLIC, None)

    @property
    def is_authenticated(self) -> bool:
        return self.username is not None

    def at_least(self, role: Role) -> bool:
        return _RANK[self.role] >= _RANK[role]

    @property
    def sees_records(self) -> bool:
        """Individual records; the public sees aggregates and admin areas only."""
        return self.at_least(Role.DATA_ENTRY)

    @property
    def can_draft(self) -> bool:
        return self.at_least(Role.DATA_ENTRY)

    @property
    def can_approve(self) -> bool:
        """Reviewers and the IM officer approve or reject with a reason (and administrators)."""
        return self.at_least(Role.REVIEWER)

    @property
    def can_see_personal(self) -> bool:
        """Victims' names, phones and addresses."""
        return self.at_least(Role.IM_OFFICER)

    @property
    def can_read_audit(self) -> bool:
        return self.at_least(Role.IM_OFFICER)

    @property
    def can_manage_users(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def is_organisation_scoped(self) -> bool:
        """Data entry staff see only their own organisation's reports and tasks."""
        return self.role is Role.DATA_ENTRY

    def may_read_report(self, status: ReportStatus, author_organisation: str | None) -> bool:
        """Approved reports are the register's history; others stay within the organisation."""
        if not self.sees_records:
            return False
        if not self.is_organisation_scoped or status is ReportStatus.APPROVED:
            return True
        return self.organisation_id is not None and author_organisation == self.organisation_id

    def may_review(self, author: str) -> bool:
        """Four eyes: a report is approved or rejected by someone other than its author."""
        return self.can_approve and author != self.username

    def may_edit_draft(self, author: str) -> bool:
        """A draft is edited and submitted by its author only."""
        return self.can_draft and author == self.username

    def may_read_record(self, record_type: str, organisation_id: str | None) -> bool:
        """Current views: all for trusted roles; data entry sees only its own organisation's
        tasks; the public sees admin areas (the background of the aggregates) only."""
        if record_type in PUBLIC_RECORD_TYPES:
            return True
        if not self.sees_records:
            return False
        if self.is_organisation_scoped and record_type == "task":
            return self.organisation_id is not None and organisation_id == self.organisation_id
        return True

    def require(self, allowed: bool, action: str) -> None:
        """Raise the right error when ``allowed`` is false: log in first, or not allowed."""
        if allowed:
            return
        if not self.is_authenticated:
            raise LoginRequired(f"log in to {action}")
        raise AccessDenied(f"a {self.role} account may not {action}")
