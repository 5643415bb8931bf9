"""The jobs database: one table of job records, SQLite by default and PostgreSQL by URL, one code path.

    >>> store = JobStore("sqlite:////srv/detect/jobs.sqlite")      # or postgresql+psycopg://user:pw@host/db
    >>> job = store.create("3f2a...", "detect", "digits-frcnn-r18", {"conf": 0.25}, "/srv/detect/jobs/3f2a...")
    >>> store.claim()                                               # the oldest queued job, now running

SQLAlchemy Core (no ORM). Two tables:

* ``schema_version`` — one row, the layout version (:data:`SCHEMA_VERSION`). An empty database
  gets the tables and the row; a database written by a newer version is refused
  (:class:`SchemaVersionError`), never altered.
* ``jobs`` — one row a job (:class:`Job` lists the columns). ``params`` and ``result`` are JSON
  text; times are UTC (timezone-aware on both databases).

State changes are guarded updates (``UPDATE ... WHERE id = ? AND state IN (...)``) that report
whether they matched, so two workers (threads or processes) never take the same job and a
cancelled job is never set running again. SQLite connections run in WAL mode (readers do not
block the writer) with a busy timeout and foreign keys on, set on every connection.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

#: the layout of the tables this code reads and writes
SCHEMA_VERSION = 1
#: a job's states; the last three are final
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
KINDS = ("detect", "track", "evaluate")
#: milliseconds a SQLite connection waits for another writer before failing
SQLITE_BUSY_TIMEOUT_MS = 10_000


class SchemaVersionError(RuntimeError):
    """The database was written by another version of the jobs schema than this code's."""


class UtcDateTime(sa.types.TypeDecorator):
    """A timezone-aware UTC ``datetime`` on every database (SQLite stores it naive, in UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"expected a timezone-aware datetime, got the naive {value.isoformat()}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))

jobs = sa.Table(
    "jobs", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("input_path", sa.Text),
    sa.Column("output_dir", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("started_at", UtcDateTime),
    sa.Column("finished_at", UtcDateTime),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("processed", sa.Integer, nullable=False, default=0),
    sa.Column("total", sa.Integer),
    sa.Column("checkpoint_frame", sa.Integer, nullable=False, default=0),
    sa.Column("rate", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("result", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.CheckConstraint(f"state IN ({', '.join(repr(s) for s in STATES)})", name="ck_jobs_state"),
    sa.CheckConstraint(f"kind IN ({', '.join(repr(k) for k in KINDS)})", name="ck_jobs_kind"),
    sa.Index("ix_jobs_state_created", "state", "created_at"),
    sa.Index("ix_jobs_created", "created_at"),
)

_JSON_COLUMNS = ("params", "result")
_WRITABLE = frozenset(jobs.c.keys()) - {"id", "created_at"}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Job:
    """One job record, as every read returns it.

    Attributes:
        id: 32 hex digits (a UUID4). kind: ``detect``, ``track`` or ``evaluate``.
        state: ``queued``, ``running``, ``succeeded``, ``failed`` or ``cancelled``.
        model: the served model's name. params: the job's settings (JSON object).
        input_path: the uploaded video (None for evaluate). output_dir: the job's folder.
        created_at, started_at, finished_at, updated_at: UTC; ``started_at`` is the first start.
        processed: frames (images) done. total: frames to do (None when unknown).
        checkpoint_frame: the video frame a resumed run starts at (every frame before it is written).
        rate: frames a second of the current run at its last checkpoint (None before one).
        error: why it failed. result: the summary or the metrics (JSON object) once succeeded.
        attempts: runs started, the current one included (a graceful stop gives its run back).
    """

    id: str
    kind: str
    state: str
    model: str
    params: dict[str, Any]
    input_path: str | None
    output_dir: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    processed: int
    total: int | None
    checkpoint_frame: int
    rate: float | None
    error: str | None
    result: dict[str, Any] | None
    attempts: int

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def progress(self) -> float | None:
        """Fraction done, 0..1 (1 once succeeded; None while the total is unknown)."""
        if self.state == "succeeded":
            return 1.0
        if not self.total:
            return None
        return min(1.0, self.processed / self.total)

    def eta_seconds(self, now: datetime | None = None) -> float | None:
        """Seconds left for a running job at the rate of its last checkpoint, counted from then
        (None when not running or not known)."""
        if self.state != "running" or not self.rate or not self.total:
            return None
        since = ((now or utc_now()) - self.updated_at).total_seconds()
        return max(0.0, (self.total - self.processed) / self.rate - since)


def _job(row: Mapping[str, Any]) -> Job:
    values = dict(row)
    for name in _JSON_COLUMNS:
        values[name] = None if values[name] is None else json.loads(values[name])
    return Job(**values)


def _encode(fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - _WRITABLE
    if unknown:
        raise ValueError(f"job fields: unknown {sorted(unknown)}; expected some of {sorted(_WRITABLE)}")
    if "state" in fields and fields["state"] not in STATES:
        raise ValueError(f"job state: expected one of {STATES}, got {fields['state']!r}")
    values = {k: (json.dumps(v) if k in _JSON_COLUMNS and v is not None else v) for k, v in fields.items()}
    return values | {"updated_at": utc_now()}


def _sqlite_pragmas(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    for pragma in ("journal_mode=WAL", f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def open_engine(url: str) -> Engine:
    """An engine for ``url``: SQLite (its folder created, WAL and the other pragmas on every
    connection) or any other SQLAlchemy URL (``postgresql+psycopg://``) as is."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(parsed, pool_pre_ping=True)


class JobStore:
    """The job records in the database at ``url`` (see the module docstring).

    Raises:
        SchemaVersionError: the database holds another schema version than :data:`SCHEMA_VERSION`.
        sqlalchemy.exc.OperationalError: the database cannot be reached.
    """

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.engine = open_engine(url)
        self._check_schema()

    def __repr__(self) -> str:
        return f"JobStore({self.url.render_as_string(hide_password=True)})"

    def _check_schema(self) -> None:
        """Create the tables in an empty database; refuse one of another schema version."""
        with self.engine.begin() as conn:
            metadata.create_all(conn, checkfirst=True)
            versions = conn.execute(sa.select(schema_version.c.version)).scalars().all()
            if not versions:
                conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
                return
        if versions != [SCHEMA_VERSION]:
            where = self.url.render_as_string(hide_password=True)
            raise SchemaVersionError(f"jobs database {where}: schema version {versions[0] if len(versions) == 1 else versions}"
                                     f", but this program reads version {SCHEMA_VERSION}; "
                                     "use the program that wrote it, or another database")

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        """Run ``SELECT 1``; raises the driver's error when the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(sa.select(1))

    def create(self, job_id: str, kind: str, model: str, params: Mapping[str, Any], output_dir: str | Path,
               input_path: str | Path | None = None, total: int | None = None) -> Job:
        """Insert a queued job and return it."""
        if kind not in KINDS:
            raise ValueError(f"job kind: expected one of {KINDS}, got {kind!r}")
        now = utc_now()
        row = {"id": job_id, "kind": kind, "state": "queued", "model": model, "params": json.dumps(dict(params)),
               "input_path": None if input_path is None else str(input_path), "output_dir": str(output_dir),
               "created_at": now, "updated_at": now, "processed": 0, "total": total, "checkpoint_frame": 0,
               "attempts": 0}
        with self.engine.begin() as conn:
            conn.execute(jobs.insert().values(**row))
        return self.get(job_id)

    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
        return None if row is None else _job(row)

    def list(self, limit: int = 20, offset: int = 0, state: str | None = None) -> tuple[list[Job], int]:
        """One page of jobs, newest first, and how many there are in all (of ``state``, if given)."""
        if state is not None and state not in STATES:
            raise ValueError(f"job state: expected one of {STATES}, got {state!r}")
        where = [] if state is None else [jobs.c.state == state]
        page = (sa.select(jobs).where(*where).order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
                .limit(limit).offset(offset))
        with self.engine.connect() as conn:
            rows = conn.execute(page).mappings().all()
            total = conn.execute(sa.select(sa.func.count()).select_from(jobs).where(*where)).scalar_one()
        return [_job(r) for r in rows], total

    def update(self, job_id: str, when: Iterable[str] | None = None, **fields: Any) -> bool:
        """Set ``fields`` (and ``updated_at``) of the job, only while its state is one of ``when``
        (any state when None); returns whether the row was changed."""
        statement = sa.update(jobs).where(jobs.c.id == job_id).values(**_encode(fields))
        if when is not None:
            statement = statement.where(jobs.c.state.in_(list(when)))
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def transition(self, job_id: str, from_states: Iterable[str], to_state: str, **fields: Any) -> bool:
        """Move the job to ``to_state`` (setting ``fields``) if it is in one of ``from_states``;
        returns whether it was (``False``: another worker or a cancel got there first)."""
        return self.update(job_id, when=from_states, state=to_state, **fields)

    def claim(self) -> Job | None:
        """Take the oldest queued job: it becomes ``running`` (``attempts`` + 1, ``started_at``
        set on its first run) and is returned; None when no job waits. Safe between threads and
        processes: the update is guarded by ``state = 'queued'``, and a lost race tries the next."""
        oldest = sa.select(jobs.c.id).where(jobs.c.state == "queued").order_by(jobs.c.created_at, jobs.c.id).limit(1)
        while True:
            with self.engine.connect() as conn:
                job_id = conn.execute(oldest).scalar()
            if job_id is None:
                return None
            now = utc_now()
            taken = (sa.update(jobs).where(jobs.c.id == job_id, jobs.c.state == "queued")
                     .values(state="running", attempts=jobs.c.attempts + 1, updated_at=now, rate=None,
                             started_at=sa.func.coalesce(jobs.c.started_at, sa.literal(now, UtcDateTime()))))
            with self.engine.begin() as conn:
                won = conn.execute(taken).rowcount == 1
            if won:
                return self.get(job_id)

    def counts_by_state(self) -> dict[str, int]:
        """How many jobs are in each state (every state listed, 0 included)."""
        query = sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)
        with self.engine.connect() as conn:
            found = dict(conn.execute(query).all())
        return {state: found.get(state, 0) for state in STATES}

    def interrupted(self) -> list[Job]:
        """Jobs left ``running``, oldest first: at a server's start, those its predecessor never finished."""
        query = sa.select(jobs).where(jobs.c.state == "running").order_by(jobs.c.created_at, jobs.c.id)
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(query).mappings().all()]
