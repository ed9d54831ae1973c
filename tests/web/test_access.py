"""The permission rules, as pure functions of the principal."""

import pytest

from safeground.domain.access import AccessDenied, LoginRequired, Principal, Role
from safeground.domain.reports import ReportStatus

ALL = list(Role)


def test_who_may_do_what():
    def holders(prop):
        return {r for r in ALL if getattr(Principal("u", r, "ORG1"), prop)}

    assert holders("sees_records") == set(ALL) - {Role.PUBLIC}
    assert holders("can_draft") == set(ALL) - {Role.PUBLIC}
    assert holders("can_approve") == {Role.REVIEWER, Role.IM_OFFICER, Role.ADMIN}
    assert holders("can_see_personal") == {Role.IM_OFFICER, Role.ADMIN}
    assert holders("can_manage_users") == {Role.ADMIN}
    assert holders("can_read_audit") == {Role.IM_OFFICER, Role.ADMIN}


def test_anonymous_is_public_and_sees_no_records():
    anonymous = Principal.anonymous()
    assert anonymous.role is Role.PUBLIC and not anonymous.is_authenticated
    assert not anonymous.may_read_report(ReportStatus.APPROVED, None)
    assert not anonymous.may_read_record("hazardous_area", None)
    assert not anonymous.may_read_record("victim", None)
    assert anonymous.may_read_record("admin_area", None)


def test_data_entry_reads_only_its_organisations_unapproved_reports_and_tasks():
    clerk = Principal("clerk", Role.DATA_ENTRY, "ORG1")
    for status in (ReportStatus.DRAFT, ReportStatus.SUBMITTED, ReportStatus.REJECTED):
        assert clerk.may_read_report(status, "ORG1")
        assert not clerk.may_read_report(status, "ORG2")
        assert not clerk.may_read_report(status, None)
    assert clerk.may_read_report(ReportStatus.APPROVED, "ORG2")
    assert clerk.may_read_record("task", "ORG1")
    assert not clerk.may_read_record("task", "ORG2")
    assert clerk.may_read_record("hazardous_area", "ORG2")
    reviewer = Principal("rev", Role.REVIEWER, "ORG1")
    assert reviewer.may_read_report(ReportStatus.DRAFT, "ORG2")
    assert reviewer.may_read_record("task", "ORG2")


def test_a_draft_is_edited_by_its_author_only():
    clerk = Principal("clerk", Role.DATA_ENTRY, "ORG1")
    assert clerk.may_edit_draft("clerk")
    assert not clerk.may_edit_draft("other")
    assert not Principal.anonymous().may_edit_draft("clerk")


def test_require_says_login_or_forbidden():
    with pytest.raises(LoginRequired):
        Principal.anonymous().require(False, "approve")
    with pytest.raises(AccessDenied) as error:
        Principal("clerk", Role.DATA_ENTRY, "ORG1").require(False, "approve")
    assert not isinstance(error.value, LoginRequired)
    Principal("x", Role.ADMIN).require(True, "approve")
