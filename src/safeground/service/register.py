"""The register's workflow: reports go draft → submitted → approved or rejected (or a draft is
withdrawn), and only approved reports change the current views. Every approval runs the
register's rules on the whole batch inside one transaction, so a batch that breaks a rule
changes nothing.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from safeground.domain import ids
from safeground.domain.errors import (
    NotFound,
    Problem,
    RuleViolation,
    ValidationFailed,
    WorkflowError,
)
from safeground.domain.records import (
    Activity,
    HazardousArea,
    Record,
    Task,
    field_adapter,
    fields_naming,
    record_model,
    to_payloads,
)
from safeground.domain.reports import (
    Operation,
    Report,
    ReportStatus,
    build_record,
    replay,
)
from safeground.service import checks
from safeground.service.projection import (
    HAZARD_LINKED,
    hazard_problems_caused_by,
    insert_created,
    insert_new_records,
    new_hazards,
    project_hazards,
    rebuild_records,
    write_hazards,
)
from safeground.storage.generations import ViewChanges
from safeground.storage.gpkg import RtreeBatches
from safeground.storage.reportlog import (
    insert_reports,
    load_report,
    load_reports,
    lock_reports,
    reports_naming,
    rewrite_draft,
    update_report,
)
from safeground.storage.rows import chunked_in, insert_columns
from safeground.storage.schema import account, record_tables, report, victim_personal
from safeground.storage.store import Store, open_store

DEFAULT_TOLERANCE_M = 1.0
# A new record ID's prefix: country code, record type code, year.
IdPrefix = tuple[str, str, int]
# Reports still on their way to the register.
AWAITING = (ReportStatus.DRAFT, ReportStatus.SUBMITTED)


@dataclass
class Submission:
    """A change to file: what the register needs to turn it into a report."""

    record_type: str
    changes: dict[str, Any]
    date_of_information: date
    record_id: str | None = None
    operation: Operation | None = None
    reason: str | None = None
    source: str | None = None
    source_key: str | None = None
    # Country code of a new record's ID when it is not the register's (imported foreign data).
    country: str | None = None
    # The record ``changes`` create, when the caller has validated it already (an import
    # validates every row before filing): it is not validated a second time.
    record: Record | None = None
    # That record as ``to_payloads`` encodes it, when the caller has done so (an import encodes
    # each distinct combination of values once).
    payload: dict[str, Any] | None = None


@dataclass
class NewRecords:
    """New records of one type, each created by one report, given column by column.

    How a bulk import files most of its rows: a ``Submission``, a ``Report`` and a ``Record``
    per row cost it more than the database's own work. Only for record types whose approval
    checks no more than their references (``filed_in_columns``); the caller has validated every
    record and given it its ID.
    """

    record_type: str
    positions: list[int]  # each record's report's place among those of its ``Filing.add``
    record_ids: list[str]
    dates: list[date]
    reasons: list[str]
    source: str | None
    source_keys: list[str | None]
    changes: list[dict[str, Any]]  # each report's changes: its record as ``to_payloads`` gives
    columns: dict[str, list[Any]]  # the records' stored fields, as ``record_columns`` gives

    def __len__(self) -> int:
        return len(self.positions)


def submission_positions(count: int, created: Sequence[NewRecords]) -> list[int]:
    """The places, among a part's ``count`` reports, of its submissions: those its
    ``NewRecords`` leave, in turn."""
    taken = {p for c in created for p in c.positions}
    return [p for p in range(count) if p not in taken]


def filed_in_columns(record_type: str) -> bool:
    """Whether new records of a type can be filed as ``NewRecords``: not those the register
    projects (hazardous areas), checks against other records (activities' land and assets,
    tasks' assets, attachments' files) or splits (victims' personal fields)."""
    model = record_model(record_type)
    special = ("hazardous_area", "activity", "task", "attachment")
    return record_type not in special and not model.personal_fields


@dataclass
class Approval:
    report_ids: list[int]
    record_ids: list[str]
    notices: list[str] = field(default_factory=list)


def now() -> datetime:
    return datetime.now(UTC)


class Register:
    """The mine action register on a store (GeoPackage file or PostGIS)."""

    def __init__(self, store: Store):
        self.store = store

    @classmethod
    def open(cls, location: str | None = None) -> Register:
        store = open_store(location)
        if not store.exists():
            raise NotFound(f"no register at {store.location}: run `safeground init` first")
        return cls(store)

    @classmethod
    def create(
        cls,
        location: str | None = None,
        country: str = "XX",
        tolerance_m: float = DEFAULT_TOLERANCE_M,
        after_create: Callable[[Connection], None] | None = None,
    ) -> Register:
        """A new register; ``after_create`` runs in the transaction that creates it."""
        if not (country.isalpha() and country.isupper() and 2 <= len(country) <= 3):
            raise ValidationFailed([Problem("country", "give an ISO country code such as AZ")])
        store = open_store(location)
        store.create({"country": country, "tolerance_m": tolerance_m}, after_create)
        return cls(store)

    # -- drafting ---------------------------------------------------------------------------

    def draft(
        self, user: str, items: list[Submission], conn: Connection | None = None
    ) -> list[Report]:
        """Store new draft reports, validating each change against its record type."""
        if conn is None:
            with self.store.begin() as conn:
                return self.draft(user, items, conn)
        reports = self._new_reports(conn, user, items)
        self._store(conn, reports)
        return reports

    def _new_reports(self, conn: Connection, user: str, items: list[Submission]) -> list[Report]:
        """Validate submissions and give new records their IDs, reserved per prefix in bulk."""
        country = self.store.settings(conn)["country"]
        # The ID prefix of each submission creating a record that has no ID yet (else None).
        prefixes = [
            (
                item.country or country,
                record_model(item.record_type).id_code,
                item.date_of_information.year,
            )
            if item.record_id is None and item.operation in (None, Operation.CREATE)
            else None
            for item in items
        ]
        reserved = self.reserve_ids(conn, Counter(p for p in prefixes if p is not None))
        created_at = now()
        reports = [
            self._new_report(
                user,
                item,
                item.record_id if prefix is None else next(reserved[prefix]),
                created_at,
            )
            for item, prefix in zip(items, prefixes, strict=True)
        ]
        # A created record's report holds the whole record; encoded for all at once.
        for r, item in zip(reports, items, strict=True):
            if r.built is not None and item.record is not None and item.payload is not None:
                r.changes = item.payload
        created = [(r, r.built) for r in reports if r.built is not None and not r.changes]
        for (r, _), payload in zip(created, to_payloads([b for _, b in created]), strict=True):
            r.changes = payload
        return reports

    def _new_report(
        self, user: str, item: Submission, record_id: str | None, created_at: datetime
    ) -> Report:
        """The report of one submission; a create report's changes are filled by the caller."""
        model = record_model(item.record_type)
        operation = item.operation or (
            Operation.CREATE if item.record_id is None else Operation.UPDATE
        )
        record = None
        if operation is Operation.CREATE:
            record = item.record or build_record(item.record_type, item.changes, record_id)
        else:
            if not record_id:
                raise ValidationFailed([Problem("record_id", f"an {operation} report needs one")])
            unknown = set(item.changes) - set(model.model_fields)
            if unknown:
                raise ValidationFailed(
                    [
                        Problem(f, f"not a field of {item.record_type}", item.record_id)
                        for f in sorted(unknown)
                    ]
                )
        if record_id is None:
            raise ValidationFailed([Problem("record_id", "a new record needs an identifier")])
        return Report(
            built=record,
            report_id=0,
            record_id=record_id,
            record_type=item.record_type,
            operation=operation,
            date_of_information=item.date_of_information,
            changes={} if record else json_changes(model, item.changes, record_id),
            author=user,
            reason=item.reason,
            created_at=created_at,
            source=item.source,
            source_key=item.source_key,
        )

    def reserve_ids(
        self, conn: Connection, wanted: Mapping[IdPrefix, int]
    ) -> dict[IdPrefix, Iterator[str]]:
        """``wanted[prefix]`` new record IDs of each (country, type code, year) prefix.

        The prefixes are reserved in sorted order: on PostgreSQL each one's counter stays locked
        to the end of the transaction, so two writers needing the same prefixes in another
        order would otherwise each wait for the other (a deadlock).
        """
        reserved = {}
        for (country, code, year), count in sorted(wanted.items()):
            numbers = self.store.next_numbers(conn, f"{country}-{code}-{year}", count)
            reserved[country, code, year] = iter(
                [ids.format_record_id(country, code, year, n) for n in numbers]
            )
        return reserved

    # -- workflow ---------------------------------------------------------------------------

    def submit(
        self, user: str, report_ids: int | list[int], conn: Connection | None = None
    ) -> list[Report]:
        """Submit one's drafts for review, after running the approval checks on them together.

        Checked together, a report may name a record another of them creates (a victim its
        accident); all are submitted, or none.
        """
        if conn is None:
            with self.store.begin() as conn:
                return self.submit(user, report_ids, conn)
        wanted = _distinct([report_ids] if isinstance(report_ids, int) else report_ids)
        reports = self._load(conn, wanted)
        for rep in reports:
            if rep.status is not ReportStatus.DRAFT:
                raise WorkflowError(f"report {rep.report_id} is {rep.status}, not a draft")
            if rep.author != user:
                raise WorkflowError(f"report {rep.report_id} is {rep.author}'s draft")
        submitted_at = now()
        for rep in reports:
            update_report(
                conn, rep.report_id, status=ReportStatus.SUBMITTED, submitted_at=submitted_at
            )
            rep.status, rep.submitted_at = ReportStatus.SUBMITTED, submitted_at
        # The author learns of problems now rather than at review; nothing of the trial lands.
        trial = conn.begin_nested()
        try:
            self._approve_in(conn, [copy.copy(rep) for rep in reports], user)
        finally:
            trial.rollback()
        return reports

    def edit(
        self,
        user: str,
        report_id: int,
        changes: dict[str, Any] | None = None,
        date_of_information: date | None = None,
        reason: str | None = None,
        conn: Connection | None = None,
    ) -> Report:
        """Revise one's own draft: its changes, date of information or reason, validated anew."""
        if conn is None:
            with self.store.begin() as conn:
                return self.edit(user, report_id, changes, date_of_information, reason, conn)
        (rep,) = self._load(conn, [report_id])
        if rep.status is not ReportStatus.DRAFT:
            raise WorkflowError(f"report {report_id} is {rep.status}: only a draft can be edited")
        if rep.author != user:
            raise WorkflowError(f"report {report_id} is {rep.author}'s draft")
        item = Submission(
            rep.record_type,
            rep.changes if changes is None else changes,
            date_of_information or rep.date_of_information,
            record_id=rep.record_id,  # a create report keeps the ID it reserved
            operation=rep.operation,
            reason=rep.reason if reason is None else reason,
        )
        (revised,) = self._new_reports(conn, user, [item])
        revised.report_id, revised.created_at = rep.report_id, rep.created_at
        rewrite_draft(conn, revised)
        return revised

    def approve(
        self,
        user: str,
        report_ids: list[int],
        reason: str | None = None,
        conn: Connection | None = None,
    ) -> Approval:
        """Approve submitted reports together: all of them, or none.

        A report naming a record that another submitted report creates (a victim its accident)
        is approved with that report or after it.
        """
        if conn is None:
            with self.store.begin() as conn:
                return self.approve(user, report_ids, reason, conn)
        reports = self._load(conn, _distinct(report_ids))
        for rep in reports:
            if rep.status is not ReportStatus.SUBMITTED:
                raise WorkflowError(
                    f"report {rep.report_id} is {rep.status}: only a submitted report "
                    "can be approved"
                )
        return self._approve_in(conn, reports, user, reason=reason)

    def reject(
        self, user: str, report_id: int, reason: str, conn: Connection | None = None
    ) -> list[Report]:
        """Reject a submitted report; the report first, then those rejected with it.

        A report that was to create a record takes with it the submitted reports naming that
        record (its victims, its attachments): they could never be approved. Drafts naming it
        stay drafts, and their submission is refused naming the rejected report.
        """
        if not reason.strip():
            raise ValidationFailed([Problem("reason", "say why the report is rejected")])
        if conn is None:
            with self.store.begin() as conn:
                return self.reject(user, report_id, reason, conn)
        (rep,) = self._load(conn, [report_id])
        if rep.status is not ReportStatus.SUBMITTED:
            raise WorkflowError(f"report {report_id} is {rep.status}, not submitted")
        return self._close(conn, rep, ReportStatus.REJECTED, user, reason)

    def withdraw(
        self,
        user: str,
        report_id: int,
        reason: str | None = None,
        conn: Connection | None = None,
        administrator: bool = False,
    ) -> list[Report]:
        """Withdraw one's draft; the draft first, then those withdrawn with it.

        Nothing is deleted: the report stays, withdrawn, with who, when and why. A draft that
        was to create a record takes with it the drafts naming that record (its victims, its
        attachments), whoever wrote them: the record will never exist.

        An ``administrator`` (the caller has checked the role) may also withdraw the draft of
        an author whose account is disabled, saying why: nobody else ever could, and a new
        record's draft would keep that record awaiting approval for good. The report keeps
        the administrator as ``reviewed_by``, and its author.
        """
        if conn is None:
            with self.store.begin() as conn:
                return self.withdraw(user, report_id, reason, conn, administrator)
        reason = (reason or "").strip() or None
        (rep,) = self._load(conn, [report_id])
        if rep.status is not ReportStatus.DRAFT:
            raise WorkflowError(
                f"report {report_id} is {rep.status}: only a draft can be withdrawn"
            )
        if rep.author != user:
            self._check_withdrawn_for(conn, rep, reason, administrator)
        return self._close(conn, rep, ReportStatus.WITHDRAWN, user, reason)

    @staticmethod
    def _check_withdrawn_for(
        conn: Connection, rep: Report, reason: str | None, administrator: bool
    ) -> None:
        """Someone else's draft: only an administrator's, its author's account disabled, and
        with a reason."""
        author = rep.author
        refused = (
            f"report {rep.report_id} is {author}'s draft; only {author}, or an administrator "
            f"once {author}'s account is disabled, can withdraw it"
        )
        if not administrator:
            raise WorkflowError(refused)
        found = conn.execute(
            select(account.c.disabled_at).where(account.c.username == author)
        ).first()
        if found is None:
            raise WorkflowError(f"{refused} ({author} has no account to disable)")
        if found.disabled_at is None:
            raise WorkflowError(f"{refused} ({author}'s account is active)")
        if reason is None:
            raise ValidationFailed(
                [Problem("reason", f"say why you withdraw {author}'s draft on their behalf")]
            )

    def _close(
        self, conn: Connection, rep: Report, status: ReportStatus, user: str, reason: str | None
    ) -> list[Report]:
        """Reject or withdraw a report, with who, when and why. One that was to create a record
        takes with it the reports naming that record that were in the same state (submitted,
        or drafts): they could never be approved."""
        was = rep.status
        rep.status, rep.reviewed_by, rep.reviewed_at = status, user, now()
        rep.review_reason = reason
        update_report(
            conn,
            rep.report_id,
            status=status,
            reviewed_by=user,
            reviewed_at=rep.reviewed_at,
            review_reason=reason,
        )
        closed = [rep]
        if rep.operation is Operation.CREATE:
            with_it = f"{status} with report {rep.report_id}, which was to create {rep.record_id}"
            why = f"{with_it}: {reason}" if reason else with_it
            # Locked, then read again: one being closed on its own meanwhile is left as it ends.
            lock_reports(conn, [r.report_id for r in self.dependents(conn, rep.record_id)])
            for dependent in self.dependents(conn, rep.record_id):
                if dependent.status is was:
                    closed += self._close(conn, dependent, status, user, why)
        return closed

    def file(
        self,
        user: str,
        items: list[Submission],
        reason: str | None = None,
        import_batch: str | None = None,
        conn: Connection | None = None,
    ) -> Approval:
        """Draft, submit and approve in one transaction: imports and an IM officer's own entries.

        Each report still records who approved it and when, like any other.
        """
        if conn is None:
            with self.store.begin() as conn:
                return self.file(user, items, reason, import_batch, conn)
        filing = Filing(self, conn, user, reason, import_batch)
        filing.add(items)
        return filing.finish()

    def _store(
        self, conn: Connection, reports: list[Report], import_batch: str | None = None
    ) -> None:
        report_ids = self.store.reserve_keys(conn, report.c.report_id, len(reports))
        insert_reports(conn, reports, report_ids, import_batch)

    def _load(self, conn: Connection, report_ids: list[int]) -> list[Report]:
        """Reports about to change state, held to the end of the transaction (``lock_reports``)."""
        lock_reports(conn, report_ids)
        found = []
        for report_id in report_ids:
            rep = load_report(conn, report_id, include_personal=True)
            if rep is None:
                raise NotFound(f"no report {report_id}")
            found.append(rep)
        return found

    def _stamp_approved(
        self, conn: Connection, reports: list[Report], user: str, reason: str | None
    ) -> None:
        stamp = now()
        sequence = self.store.next_numbers(conn, "approval", len(reports))
        for r, seq in zip(reports, sequence, strict=True):
            r.status, r.approval_seq = ReportStatus.APPROVED, seq
            r.reviewed_by, r.reviewed_at, r.review_reason = user, stamp, reason

    def _approve_in(
        self,
        conn: Connection,
        reports: list[Report],
        user: str,
        reason: str | None = None,
        stored: bool = False,
        created: Sequence[NewRecords] = (),
        changes: ViewChanges | None = None,
    ) -> Approval:
        """Approve reports inside ``conn``; raise (so the transaction rolls back) on any problem.

        ``stored``: the reports were written already approved (``Filing``), with ``created``
        (written too) and the views they changed so far (``changes``).
        """
        tolerance = float(self.store.settings(conn).get("tolerance_m", DEFAULT_TOLERANCE_M))
        if not stored:
            self._stamp_approved(conn, reports, user, reason)
            _mark_approved(conn, reports)

        previous_hazards = _previous_hazards(conn, reports)
        single = _created_alone(reports)
        changes = ViewChanges() if changes is None else changes
        notices = _rebuild(conn, reports, single, changes)
        records = _current(conn, reports, single)

        named = _named_hazards(reports, records) | _hazards_named_in(created)
        affected = sorted(named | previous_hazards | _hazards_of(reports))
        new = new_hazards(conn, {h: single[h] for h in affected if h in single})
        alone = {h: (single[h], _hazard(records[h])) for h in new if h not in named}
        views = project_hazards(conn, affected, alone)
        columns = [(c.record_type, c.record_ids, c.columns) for c in created]
        problems = checks.missing_references(conn, records, columns)
        problems += checks.attachment_problems(conn, records, reports)
        activities = [(i, r) for i, r in records.items() if isinstance(r, Activity)]
        outlines = {h: v.record.geometry if v.record else None for h, v in views.items()}
        problems += checks.processed_land_check(conn, activities, outlines, tolerance)
        by_record = {r.record_id: r for r in reports}
        deployed = [(i, r) for i, r in records.items() if isinstance(r, Activity | Task)]
        problems += checks.deployment_check(conn, deployed, by_record)
        causes = {f"report {r.report_id}" for r in reports} | set(records)
        causes.update(i for c in created for i in c.record_ids)
        problems += hazard_problems_caused_by(views, causes)
        if problems:
            raise RuleViolation(problems)
        write_hazards(conn, views, new, changes)
        self.store.after_write(conn, changes)
        return Approval([r.report_id for r in reports], list(by_record), notices)

    # -- reading ----------------------------------------------------------------------------

    def get(self, record_id: str, include_personal: bool = False) -> dict[str, Any]:
        """The current view of a record, with ``record_type``."""
        with self.store.read() as conn:
            record_type = self.record_type_of(conn, record_id)
            table = record_tables[record_type]
            row = conn.execute(select(table).where(table.c.record_id == record_id)).first()
            if row is None:
                raise NotFound(f"{record_id} has no approved report yet, or was retired")
            values = dict(row._mapping)
            if include_personal and record_model(record_type).personal_fields:
                private = conn.execute(
                    select(victim_personal).where(victim_personal.c.record_id == record_id)
                ).first()
                if private is not None:
                    values.update({k: v for k, v in private._mapping.items() if k != "record_id"})
            values["record_type"] = record_type
            return values

    def record_type_of(self, conn: Connection, record_id: str) -> str:
        found = conn.execute(
            select(report.c.record_type).where(report.c.record_id == record_id).limit(1)
        ).scalar()
        if found is None:
            raise NotFound(f"no record {record_id}")
        return str(found)

    def is_current(self, conn: Connection, record_id: str) -> bool:
        """Whether the record is in the register: approved, and not retired."""
        table = record_tables[self.record_type_of(conn, record_id)]
        found = conn.execute(select(table.c.record_id).where(table.c.record_id == record_id))
        return found.first() is not None

    def awaiting(self, conn: Connection, record_id: str) -> list[Report]:
        """The record's draft and submitted reports, in the order they were made."""
        found = load_reports(conn, [record_id]).get(record_id, [])
        return [r for r in found if r.status in AWAITING]

    def dependents(
        self, conn: Connection, record_id: str, include_personal: bool = False
    ) -> list[Report]:
        """Draft and submitted reports naming the record (an accident's victims, a new hazard's
        photos), in the order they were made: while the record awaits its first approval, they
        are submitted and approved with it, or after it."""
        fields = fields_naming(self.record_type_of(conn, record_id))
        return reports_naming(conn, record_id, fields, AWAITING, include_personal)

    def reports(self, record_id: str, include_personal: bool = False) -> list[Report]:
        with self.store.read() as conn:
            found = load_reports(conn, [record_id], include_personal).get(record_id)
        if not found:
            raise NotFound(f"no record {record_id}")
        return found

    def pending(self, status: ReportStatus = ReportStatus.SUBMITTED) -> list[Report]:
        with self.store.read() as conn:
            record_ids = conn.scalars(
                select(report.c.record_id).where(report.c.status == status).distinct()
            ).all()
            found = load_reports(conn, record_ids)
        return sorted(
            (r for reps in found.values() for r in reps if r.status is status),
            key=lambda r: r.report_id,
        )


class Filing:
    """Reports filed already approved, in one or more parts, then approved together.

    ``Register.file`` files its reports in one part. A bulk import adds each file's rows as
    they are ready (its ``NewRecords`` and ``Submission``s), so the database writes one while
    the next is prepared; ``finish`` then runs the register's rules on them all, and a refusal
    rolls back every part with the transaction. On PostgreSQL, reserve the records' IDs
    (``Register.reserve_ids``) before the first part: each part takes the approval counter,
    which every writer takes after the counters of its IDs.
    """

    def __init__(
        self,
        register: Register,
        conn: Connection,
        user: str,
        reason: str | None = None,
        import_batch: str | None = None,
    ):
        self.register, self.conn, self.user = register, conn, user
        self.reason, self.import_batch = reason, import_batch
        self.stamp = now()
        self.reports: list[Report] = []
        self.created: list[NewRecords] = []
        self.created_reports: list[int] = []
        self.changes = ViewChanges()
        self.rtrees = RtreeBatches()

    def add(self, items: list[Submission], created: Sequence[NewRecords] = ()) -> None:
        """Store the reports of ``items`` and of ``created``, in the order of their positions
        (``items`` take the positions ``created`` leaves, in turn), and ``created``'s records."""
        conn, store = self.conn, self.register.store
        reports = self.register._new_reports(conn, user=self.user, items=items)
        count = len(items) + sum(len(c) for c in created)
        sequence = store.next_numbers(conn, "approval", count)
        keys = store.reserve_keys(conn, report.c.report_id, count)
        free = submission_positions(count, created)
        for r, p in zip(reports, free, strict=True):
            r.status, r.approval_seq, r.submitted_at = (
                ReportStatus.APPROVED,
                sequence[p],
                self.stamp,
            )
            r.reviewed_by, r.reviewed_at, r.review_reason = self.user, self.stamp, self.reason
        insert_reports(conn, reports, [keys[p] for p in free], self.import_batch)
        for c in created:
            report_ids = [keys[p] for p in c.positions]
            self._insert_reports(c, report_ids, [sequence[p] for p in c.positions])
            sources = [c.source] * len(c)
            insert_created(
                conn,
                c.record_type,
                c.columns,
                c.record_ids,
                report_ids,
                sources,
                c.source_keys,
                self.changes,
                self.rtrees,
            )
            self.created_reports += report_ids
        self.reports += reports
        self.created += created

    def _insert_reports(
        self, created: NewRecords, report_ids: list[int], sequence: list[int]
    ) -> None:
        count = len(created)

        def same(value: Any) -> list[Any]:
            return [value] * count

        columns: dict[str, list[Any]] = {
            "report_id": report_ids,
            "record_id": created.record_ids,
            "record_type": same(created.record_type),
            "operation": same(Operation.CREATE),
            "date_of_information": created.dates,
            "changes": created.changes,
            "author": same(self.user),
            "reason": created.reasons,
            "status": same(ReportStatus.APPROVED),
            "created_at": same(self.stamp),
            "submitted_at": same(self.stamp),
            "reviewed_by": same(self.user),
            "reviewed_at": same(self.stamp),
            "review_reason": same(self.reason),
            "approval_seq": sequence,
            "source": same(created.source),
            "source_key": created.source_keys,
            "import_batch": same(self.import_batch),
        }
        insert_columns(self.conn, report, columns)

    def finish(self) -> Approval:
        """Index what the parts wrote, then approve every part together (or raise)."""
        self.rtrees.close()
        approval = self.register._approve_in(
            self.conn,
            self.reports,
            self.user,
            reason=self.reason,
            stored=True,
            created=self.created,
            changes=self.changes,
        )
        approval.report_ids = sorted(approval.report_ids + self.created_reports)
        approval.record_ids += [i for c in self.created for i in c.record_ids]
        return approval


def _distinct(report_ids: list[int]) -> list[int]:
    """The IDs in their order, each once: a report named twice is submitted or approved once."""
    if not report_ids:
        raise ValidationFailed([Problem("report_ids", "name at least one report")])
    return list(dict.fromkeys(report_ids))


def _rebuild(
    conn: Connection, reports: list[Report], single: dict[str, Report], changes: ViewChanges
) -> list[str]:
    """Rebuild the current view of every record the reports touch (hazards come later)."""
    insert_new_records(
        conn,
        [
            (r.built or build_record(r.record_type, r.changes, r.record_id), r)
            for r in single.values()
            if r.record_type != "hazardous_area"
        ],
        changes,
    )
    others: dict[str, set[str]] = {}
    for r in reports:
        if r.record_id not in single and r.record_type != "hazardous_area":
            others.setdefault(r.record_type, set()).add(r.record_id)
    notices = []
    for record_type, record_ids in others.items():
        loaded = load_reports(conn, record_ids, include_personal=True)
        notices += rebuild_records(conn, record_type, loaded, changes)
    return notices


def _current(
    conn: Connection, reports: list[Report], single: dict[str, Report]
) -> dict[str, Record]:
    """The batch's records as they now stand (retired ones left out)."""
    found: dict[str, Record] = {
        i: r.built or build_record(r.record_type, r.changes, i) for i, r in single.items()
    }
    others = {r.record_id for r in reports} - set(single)
    for record_id, reps in load_reports(conn, others, include_personal=True).items():
        record = replay(reps).record
        if record is not None:
            found[record_id] = record
    return found


def _hazard(record: Record) -> HazardousArea:
    assert isinstance(record, HazardousArea)
    return record


def _created_alone(reports: list[Report]) -> dict[str, Report]:
    """Records created in this batch by a single report: their view is that report's changes."""
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.record_id] = counts.get(r.record_id, 0) + 1
    return {
        r.record_id: r
        for r in reports
        if r.operation is Operation.CREATE and counts[r.record_id] == 1
    }


def _previous_hazards(conn: Connection, reports: list[Report]) -> set[str]:
    """Hazards that records of the batch pointed to before it (a report may move a record)."""
    found: set[str] = set()
    for record_type in HAZARD_LINKED:
        record_ids = [
            r.record_id
            for r in reports
            if r.record_type == record_type and r.operation is not Operation.CREATE
        ]
        table = record_tables[record_type]
        for chunk in chunked_in(record_ids):
            query = select(table.c.hazard_id).where(table.c.record_id.in_(chunk))
            found.update(h for h in conn.scalars(query) if h)
    return found


def _hazards_of(reports: list[Report]) -> set[str]:
    return {r.record_id for r in reports if r.record_type == "hazardous_area"}


def _hazards_named_in(created: Sequence[NewRecords]) -> set[str]:
    return {
        h for c in created if c.record_type in HAZARD_LINKED for h in c.columns["hazard_id"] if h
    }


def _named_hazards(reports: list[Report], records: dict[str, Record]) -> set[str]:
    """Hazards that the batch's activities, items and accidents name, as they now stand."""
    hazards = set()
    for r in reports:
        hazard_id = getattr(records.get(r.record_id), "hazard_id", None)
        if r.record_type in HAZARD_LINKED and hazard_id:
            hazards.add(hazard_id)
    return hazards


def json_changes(
    model: type[Record], changes: dict[str, Any], record_id: str | None = None
) -> dict[str, Any]:
    """Changes as JSON values (geometry as hex WKB), each field validated on its own."""
    out: dict[str, Any] = {}
    problems = []
    for key, value in changes.items():
        if value is None:
            out[key] = None
            continue
        adapter = field_adapter(model, key)
        try:
            out[key] = adapter.dump_python(adapter.validate_python(value), mode="json")
        except Exception as exc:  # pydantic's ValidationError or a geometry parse error
            problems.append(Problem(key, str(exc).splitlines()[-1].strip(), record_id))
    if problems:
        raise ValidationFailed(problems)
    return out


def _mark_approved(conn: Connection, reports: list[Report]) -> None:
    statement = (
        report.update()
        .where(report.c.report_id == bindparam("rid"))
        .values(
            status=bindparam("s"),
            approval_seq=bindparam("seq"),
            reviewed_by=bindparam("by"),
            reviewed_at=bindparam("at"),
            review_reason=bindparam("why"),
        )
    )
    conn.execute(
        statement,
        [
            {
                "rid": r.report_id,
                "s": r.status,
                "seq": r.approval_seq,
                "by": r.reviewed_by,
                "at": r.reviewed_at,
                "why": r.review_reason,
            }
            for r in reports
        ],
    )
