"""The jobs database on SQLite and PostgreSQL: records round-trip, pages, guarded transitions, one
claim a job under racing workers, the schema version, SQLite's pragmas."""

from __future__ import annotations

import threading
from datetime import UTC, timedelta

import pytest
import sqlalchemy as sa

from detect.serve.jobs.store import SCHEMA_VERSION, STATES, JobStore, SchemaVersionError, utc_now


def new(store: JobStore, n: int, kind: str = "detect", **kw) -> str:
    job_id = f"{n:032x}"
    store.create(job_id, kind, "tiny", {"conf": 0.3, "classes": ["1", "cat"]}, f"/jobs/{job_id}", **kw)
    return job_id


def test_a_record_round_trips_with_json_and_utc_times(database_url: str) -> None:
    store = JobStore(database_url)
    job = store.create("a" * 32, "track", "tiny", {"conf": 0.3, "classes": ["1", "cat"]}, "/jobs/a",
                       input_path="/up/a.avi", total=20)
    assert (job.state, job.processed, job.total, job.checkpoint_frame, job.attempts) == ("queued", 0, 20, 0, 0)
    assert job.params == {"conf": 0.3, "classes": ["1", "cat"]} and job.input_path == "/up/a.avi"
    assert job.created_at.tzinfo is not None and abs(job.created_at - utc_now()) < timedelta(seconds=30)
    assert store.get("b" * 32) is None and store.counts_by_state() == dict.fromkeys(STATES, 0) | {"queued": 1}
    store.ping()
    with pytest.raises(ValueError, match="job kind: expected one of"):
        store.create("c" * 32, "segment", "tiny", {}, "/jobs/c")
    with pytest.raises(ValueError, match="unknown \\['colour'\\]"):
        store.update(job.id, colour="red")


def test_pages_are_newest_first_with_the_total_and_a_state_filter(database_url: str) -> None:
    store = JobStore(database_url)
    ids = [new(store, n) for n in range(5)]
    assert store.transition(ids[1], ("queued",), "cancelled", finished_at=utc_now())
    page, total = store.list(limit=2, offset=0)
    assert [j.id for j in page] == [ids[4], ids[3]] and total == 5
    page, total = store.list(limit=2, offset=4)
    assert [j.id for j in page] == [ids[0]] and total == 5
    page, total = store.list(state="cancelled")
    assert [j.id for j in page] == [ids[1]] and total == 1
    with pytest.raises(ValueError, match="job state: expected one of"):
        store.list(state="done")


def test_transitions_are_guarded_so_a_cancelled_job_never_runs_again(database_url: str) -> None:
    store = JobStore(database_url)
    job_id = new(store, 1)
    claimed = store.claim()
    assert claimed.id == job_id and claimed.state == "running" and claimed.attempts == 1 and claimed.started_at
    assert store.claim() is None
    assert store.transition(job_id, ("queued", "running"), "cancelled", finished_at=utc_now())
    assert not store.transition(job_id, ("running",), "succeeded", result={"frames": 3})
    assert not store.update(job_id, when=("running",), processed=5)
    job = store.get(job_id)
    assert job.state == "cancelled" and job.result is None and job.processed == 0 and job.finished
    assert store.interrupted() == []


def test_progress_and_eta_come_from_the_last_checkpoint(database_url: str) -> None:
    store = JobStore(database_url)
    job_id = new(store, 1, total=100)
    store.claim()
    store.update(job_id, when=("running",), processed=40, checkpoint_frame=40, rate=20.0)
    job = store.get(job_id)
    assert job.progress == pytest.approx(0.4)
    assert job.eta_seconds(job.updated_at) == pytest.approx(3.0)
    assert job.eta_seconds(job.updated_at + timedelta(seconds=2)) == pytest.approx(1.0)
    assert [j.id for j in store.interrupted()] == [job_id]
    store.transition(job_id, ("running",), "succeeded", processed=100, finished_at=utc_now())
    assert store.get(job_id).progress == 1.0 and store.get(job_id).eta_seconds() is None


def test_racing_workers_never_claim_the_same_job(database_url: str) -> None:
    stores = [JobStore(database_url) for _ in range(4)]
    ids = {new(stores[0], n) for n in range(12)}
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(store: JobStore) -> None:
        while (job := store.claim()) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claimed) == sorted(ids)
    assert stores[1].counts_by_state()["running"] == 12


def test_a_newer_schema_is_refused_and_an_empty_database_gets_the_current_one(database_url: str) -> None:
    store = JobStore(database_url)
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version FROM schema_version")).scalars().all() == [SCHEMA_VERSION]
    JobStore(database_url)  # reopening keeps the one row
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_version SET version = :v"), {"v": SCHEMA_VERSION + 1})
    with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 1}, but this program reads "
                                                 f"version {SCHEMA_VERSION}"):
        JobStore(database_url)


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout_and_foreign_keys(tmp_path) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'new' / 'jobs.sqlite'}")
    with store.engine.connect() as conn:
        pragmas = [conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("journal_mode", "busy_timeout", "foreign_keys")]
    assert pragmas == ["wal", 10_000, 1]
    job = store.create("a" * 32, "evaluate", "tiny", {"dataset": "scenes/coco"}, "/jobs/a")
    assert job.created_at.tzinfo == UTC
