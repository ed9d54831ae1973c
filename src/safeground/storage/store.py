"""The store: where a register lives, and the few operations whose SQL differs by backend.

``open_store`` takes a path (an embedded GeoPackage file) or a database URL (PostgreSQL with
PostGIS). Both run the same Alembic migrations and the same queries; the subclasses override
only what SQLite and PostgreSQL spell differently.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    any_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy import column as sql_column
from sqlalchemy import exc as sql_errors
from sqlalchemy import table as sql_table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry

from safeground.domain.errors import SafegroundError
from safeground.storage import gpkg, migrations
from safeground.storage.generations import (
    CHANGES_KEPT,
    PRUNE_EVERY,
    TRACKED_VIEWS,
    Generations,
    ViewChanges,
)
from safeground.storage.schema import (
    id_sequence,
    register_identity,
    setting,
    view_change,
    view_generation,
)

DEFAULT_STORE = "safeground.gpkg"
# The register's identity goes with the generations it reads, in the same statement.
_IDENTITY = select(register_identity.c.identity).scalar_subquery()
_GENERATIONS_QUERY = select(_IDENTITY, view_generation.c.name, view_generation.c.generation)
# One view's generation: a statement for each, with no parameter to bind (an items page's read).
_GENERATION_QUERIES = {
    view: select(_IDENTITY, view_generation.c.generation).where(
        view_generation.c.name == literal_column(f"'{view}'")
    )
    for view in TRACKED_VIEWS
}
# The views' generation rows are locked in name order before they are advanced (FOR UPDATE in
# the subquery; SQLite, one writer at a time, has no such clause and needs none): two PostgreSQL
# writers each advancing several views then never wait for each other in a cycle.
_LOCKED = (
    select(view_generation.c.name)
    .where(view_generation.c.name.in_(bindparam("views", expanding=True)))
    .order_by(view_generation.c.name)
    .with_for_update()
    .subquery("locked")
)
_ADVANCE = (
    view_generation.update()
    .where(view_generation.c.name == _LOCKED.c.name)
    .values(generation=view_generation.c.generation + 1)
    .returning(view_generation.c.name, view_generation.c.generation)
)
_PRUNE = delete(view_change).where(
    view_change.c.name == bindparam("view"), view_change.c.generation <= bindparam("upto")
)
_CHANGES_QUERY = select(view_change.c.generation, view_change.c.boxes).where(
    view_change.c.name == bindparam("view"),
    view_change.c.generation > bindparam("after"),
    view_change.c.generation <= bindparam("upto"),
)
_READ_OPTION = "safeground_read"  # marks a GeoPackage connection's transaction as a reader's
_STATEMENT_OPTION = "safeground_statement"  # a GeoPackage connection for one statement: no BEGIN
# A pooled PostgreSQL connection idle longer than this is tested before use.
PING_AFTER_IDLE_S = 10.0
# Set while every pooled PostgreSQL connection is tested before use (``checked_before_use``).
_CHECK_EVERY_CHECKOUT: ContextVar[bool] = ContextVar(
    "safeground_check_every_checkout", default=False
)
# How long a GeoPackage write waits for another writer's lock (SQLite's busy timeout).
LOCK_TIMEOUT_S = 5.0


def default_location() -> str:
    return os.environ.get("SAFEGROUND_STORE", DEFAULT_STORE)


class Store:
    """A register's database. Use ``open_store``; connections come from ``begin``."""

    dialect: str
    # Execution options of a reading connection (see ``read``).
    read_options: ClassVar[Mapping[str, Any]] = {}
    statement_options: ClassVar[Mapping[str, Any]] = {"isolation_level": "AUTOCOMMIT"}

    def __init__(self, location: str, engine: Engine):
        self.location = location
        self.engine = engine

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: everything in it lands, or nothing does."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction for reading: one consistent snapshot that does not block other readers.

        On a GeoPackage it begins DEFERRED, so it takes only SQLite's shared lock and many web
        requests read at once; ``begin`` takes the write lock at once (BEGIN IMMEDIATE). On
        PostgreSQL it is REPEATABLE READ (the default, READ COMMITTED, gives each statement a
        snapshot of its own) and READ ONLY.
        """
        with self.engine.connect() as conn:
            conn = conn.execution_options(**self.read_options)
            with conn.begin():
                yield conn

    @contextmanager
    def read_statement(self) -> Iterator[Connection]:
        """A connection for a single read statement, outside any transaction.

        One statement is its own snapshot, so it needs no transaction around it; without one,
        no BEGIN and COMMIT go to PostgreSQL (two round trips of three for each credential a
        web request looks up). Statements that must agree with each other go in ``read``.
        """
        with self.engine.connect() as conn:
            yield conn.execution_options(**self.statement_options)

    def exists(self) -> bool:
        raise NotImplementedError

    def create(
        self,
        settings: dict[str, Any],
        after_create: Callable[[Connection], None] | None = None,
    ) -> None:
        """Create the schema with Alembic and record the register's settings, in one
        transaction with ``after_create`` (the command line's audit entry): a failure leaves
        no register behind."""
        if self.exists():
            raise SafegroundError(f"a register exists already at {self.location}")
        with self.begin() as conn:
            _upgrade(conn)
            for key, value in settings.items():
                conn.execute(setting.insert().values(key=key, value=value))
            if after_create is not None:
                after_create(conn)

    def migrate(self) -> None:
        with self.begin() as conn:
            _upgrade(conn)

    def settings(self, conn: Connection) -> dict[str, Any]:
        return {row.key: row.value for row in conn.execute(select(setting))}

    def next_numbers(self, conn: Connection, prefix: str, count: int) -> range:
        """Reserve ``count`` consecutive numbers of a named sequence (record IDs, approvals)."""
        conn.execute(insert_new(conn, id_sequence).values(prefix=prefix, last=0))
        last = conn.execute(
            id_sequence.update()
            .where(id_sequence.c.prefix == prefix)
            .values(last=id_sequence.c.last + count)
            .returning(id_sequence.c.last)
        ).scalar_one()
        return range(last - count + 1, last + 1)

    def reserve_keys(self, conn: Connection, column: Any, count: int) -> list[int]:
        """``count`` new values of an autoincrement primary key, in increasing order.

        Rows inserted with their keys given need no RETURNING, which SQLite runs one row at a
        time when the order of the keys matters.
        """
        raise NotImplementedError

    def after_write(self, conn: Connection, changes: ViewChanges) -> None:
        """Bookkeeping after a write to the register's views, in its transaction: a new
        generation of each view it changed, with where it changed it, which tells every server
        process which of the tiles and features it keeps in memory are stale (see
        ``storage.generations``); and the GeoPackage's layer metadata."""
        views = changes.views
        if not views:
            return
        advanced = conn.execute(_ADVANCE, {"views": views}).all()
        if len(advanced) != len(views):
            missing = sorted(set(views) - {name for name, _ in advanced})
            raise RuntimeError(f"no view_generation row for {', '.join(missing)}: migrate")
        conn.execute(
            view_change.insert(),
            [{"name": n, "generation": g, "boxes": changes.boxes(n)} for n, g in advanced],
        )
        old = [
            {"view": n, "upto": g - CHANGES_KEPT}
            for n, g in advanced
            if g % PRUNE_EVERY == 0 and g > CHANGES_KEPT
        ]
        if old:
            conn.execute(_PRUNE, old)

    def lock_timed_out(self, error: sql_errors.OperationalError) -> bool:
        """Whether a write failed only because another writer held the lock too long (a
        GeoPackage has one writer at a time; PostgreSQL locks rows)."""
        return False

    def one_at_a_time(self, conn: Connection, key: str) -> None:
        """Wait until no other transaction holds ``key``, and hold it to the end of this one:
        a check followed by a write (is this file attached already?) is then not raced by
        the same check in another transaction. A GeoPackage writer holds the whole file
        (BEGIN IMMEDIATE) already; PostgreSQL takes a transaction-level advisory lock."""

    def generations(self, conn: Connection) -> Generations:
        """Each tracked view's generation, which advances with every write that changes the
        view, and the register's identity, in one statement."""
        rows = conn.execute(_GENERATIONS_QUERY).all()
        return Generations(rows[0][0], {name: generation for _, name, generation in rows})

    def generation(self, conn: Connection, view: str) -> tuple[str, int]:
        """The register's identity and one view's generation (a row by its key: what an items
        page reads)."""
        identity, generation = conn.execute(_GENERATION_QUERIES[view]).one()
        return identity, generation

    def view_changes(
        self, conn: Connection, view: str, after: int, upto: int
    ) -> dict[int, list[list[float]] | None]:
        """The boxes the store still holds of the view's generations after ``after`` up to
        ``upto`` (None: anywhere)."""
        rows = conn.execute(_CHANGES_QUERY, {"view": view, "after": after, "upto": upto})
        return {generation: boxes for generation, boxes in rows}

    def bbox_clause(self, table: Any, bbox: tuple[float, float, float, float]) -> Any:
        raise NotImplementedError

    def among(self, column: Any, values: list[int]) -> Any:
        """``column IN (values)``; give SQLite at most ``rows.chunked_in``'s count at a time."""
        return column.in_(values)


class GeoPackageStore(Store):
    dialect = "sqlite"
    read_options: ClassVar[Mapping[str, Any]] = {_READ_OPTION: True}
    # Not SQLAlchemy's AUTOCOMMIT, which hands pysqlite its own transaction handling back when
    # the connection returns to the pool: no BEGIN, and SQLite commits each statement itself.
    statement_options: ClassVar[Mapping[str, Any]] = {_STATEMENT_OPTION: True}

    def __init__(self, path: str, lock_timeout_s: float = LOCK_TIMEOUT_S):
        engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": lock_timeout_s})
        event.listen(engine, "connect", _on_sqlite_connect)
        # pysqlite's own transaction handling defers BEGIN; take control so that a transaction
        # really starts at begin() and DDL is transactional too.
        event.listen(engine, "begin", _begin_sqlite)
        _reopen_when_replaced(engine, path)
        super().__init__(path, engine)
        self.path = Path(path)

    def exists(self) -> bool:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return False
        with self.read() as conn:  # not the write lock: opening waits for no import
            return bool(
                conn.exec_driver_sql(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'alembic_version'"
                ).scalar()
            )

    def lock_timed_out(self, error: sql_errors.OperationalError) -> bool:
        return "database is locked" in str(error.orig)

    def reserve_keys(self, conn: Connection, column: Any, count: int) -> list[int]:
        # The transaction holds SQLite's write lock (BEGIN IMMEDIATE): nobody else inserts.
        last = conn.execute(select(func.coalesce(func.max(column), 0))).scalar_one()
        return list(range(last + 1, last + count + 1))

    def after_write(self, conn: Connection, changes: ViewChanges) -> None:
        super().after_write(conn, changes)
        gpkg.mark_layers_changed(conn)

    def bbox_clause(self, table: Any, bbox: tuple[float, float, float, float]) -> Any:
        minx, miny, maxx, maxy = bbox
        rtree = sql_table(
            f"rtree_{table.name}_geometry",
            sql_column("id"),
            *(sql_column(c) for c in ("minx", "maxx", "miny", "maxy")),
        )
        return table.c.fid.in_(
            select(rtree.c.id).where(
                rtree.c.minx <= maxx,
                rtree.c.maxx >= minx,
                rtree.c.miny <= maxy,
                rtree.c.maxy >= miny,
            )
        )


class PostgisStore(Store):
    dialect = "postgresql"
    read_options: ClassVar[Mapping[str, Any]] = {
        "isolation_level": "REPEATABLE READ",
        "postgresql_readonly": True,
    }

    def __init__(self, url: str, ping_after_idle_s: float = PING_AFTER_IDLE_S):
        engine = create_engine(url)
        _ping_when_idle(engine, ping_after_idle_s)
        super().__init__(url, engine)

    def exists(self) -> bool:
        with self.engine.connect() as conn:
            return bool(conn.exec_driver_sql("SELECT to_regclass('alembic_version')").scalar())

    def reserve_keys(self, conn: Connection, column: Any, count: int) -> list[int]:
        # From the column's own sequence, so that later inserts without a key never collide.
        numbers = conn.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, :column)) "
                "FROM generate_series(1, :count)"
            ),
            {"table": column.table.name, "column": column.name, "count": count},
        ).scalars()
        return sorted(numbers)

    def one_at_a_time(self, conn: Connection, key: str) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})

    def among(self, column: Any, values: list[int]) -> Any:
        # One array parameter: the statement's text is the same whatever the count, so psycopg
        # prepares it once per connection instead of PostgreSQL planning each length anew.
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(Integer)))

    def bbox_clause(self, table: Any, bbox: tuple[float, float, float, float]) -> Any:
        minx, miny, maxx, maxy = bbox
        return table.c.geometry.op("&&")(func.ST_MakeEnvelope(minx, miny, maxx, maxy, 4326))


def insert_new(conn: Connection, table: Any) -> Any:
    """An INSERT that skips a row whose key is taken (``ON CONFLICT DO NOTHING``, on both
    backends). On PostgreSQL it waits for a transaction inserting the same key, then skips the
    row if that one committed: unlike a check before the insert, it is not raced."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


@contextmanager
def checked_before_use() -> Iterator[None]:
    """Test every pooled PostgreSQL connection before use, idle or not, while inside.

    For work that may write, which is never run a second time (``web/retry.py`` runs only safe
    requests again): a connection the server dropped a moment ago is then replaced before the
    work's first statement instead of failing it. A round trip per checkout, for the few
    requests that write.
    """
    token = _CHECK_EVERY_CHECKOUT.set(True)
    try:
        yield
    finally:
        _CHECK_EVERY_CHECKOUT.reset(token)


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Test a pooled connection before use when it has been idle for ``idle_s`` (or always,
    inside ``checked_before_use``).

    A connection can die in the pool (a server restart, a firewall dropping idle sockets).
    SQLAlchemy's ``pool_pre_ping`` tests every checkout: a round trip for each of a web
    request's two or three reads, on connections used a moment before. Raising
    DisconnectionError on checkout is SQLAlchemy's documented way to have the pool replace the
    connection and try again. A connection that dies within ``idle_s`` of its last use fails
    its transaction; the pool then drops its other connections too, and the web server runs a
    safe request that failed so once more (``web/retry.py``).
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi: Any, entry: ConnectionPoolEntry) -> None:
        entry.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi: Any, entry: ConnectionPoolEntry, _proxy: Any) -> None:
        last_used = entry.info.get("checked_in")
        if last_used is None:
            return  # a new connection
        if time.monotonic() - last_used < idle_s and not _CHECK_EVERY_CHECKOUT.get():
            return  # one used a moment ago
        try:
            with dbapi.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi.rollback()
        except Exception as error:
            raise sql_errors.DisconnectionError(str(error)) from error


def _reopen_when_replaced(engine: Engine, path: str) -> None:
    """Replace a pooled GeoPackage connection whose file is no longer the one at ``path``.

    A register put where another was by renaming its file over it (``mv``, a restore written
    beside and moved into place) leaves each open SQLite connection on the file it opened,
    which is gone from the directory: a server process would go on reading it, and writing to
    it, on the connections it pools. Each checkout compares the file at ``path`` (device and
    inode, one ``stat``) with the connection's; raising DisconnectionError has the pool open
    a new one. A file deleted and not replaced leaves the connections be.
    """

    @event.listens_for(engine, "connect")
    def _opened(_dbapi: Any, record: ConnectionPoolEntry) -> None:
        record.info["file"] = _file_at(path)

    @event.listens_for(engine, "checkout")
    def _checked_out(_dbapi: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        found = _file_at(path)
        if found is not None and found != record.info.get("file"):
            raise sql_errors.DisconnectionError(f"{path} is another file now")


def _file_at(path: str) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def _upgrade(conn: Connection) -> None:
    """Run the Alembic migrations up to the newest inside ``conn``'s transaction."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


def _begin_sqlite(conn: Connection) -> None:
    """Writers take SQLite's write lock at BEGIN; readers (``Store.read``) defer it; a single
    statement (``Store.read_statement``) runs in SQLite's own autocommit."""
    options = conn.get_execution_options()
    if options.get(_STATEMENT_OPTION, False):
        return
    conn.exec_driver_sql(
        "BEGIN DEFERRED" if options.get(_READ_OPTION, False) else "BEGIN IMMEDIATE"
    )


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    gpkg.register_functions(dbapi_connection)
    dbapi_connection.execute("PRAGMA foreign_keys = ON")


def open_store(location: str | None = None) -> Store:
    """A store for a path (GeoPackage) or a ``postgresql://`` URL (PostGIS)."""
    location = location or default_location()
    if "://" not in location:
        return GeoPackageStore(location)
    url = make_url(location)
    if url.get_backend_name() == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        return PostgisStore(url.render_as_string(hide_password=False))
    if url.get_backend_name() == "sqlite" and url.database:
        return GeoPackageStore(url.database)
    raise SafegroundError(
        f"unsupported store {location!r}: give a file path or a postgresql:// URL"
    )
