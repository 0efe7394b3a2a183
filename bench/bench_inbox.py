"""Inbox latency at 1,000,000 task rows: `python -m bench.bench_inbox [--rows N] [--backend B]`.

Seeds a migrated database with bulk inserts (no engine commands: a million BPMN runs would
take hours and say nothing about the query), then times one user's inbox the way
`GET /tasks?scope=mine&sort=due_at` runs it: the total count plus the first page of 50, and
the whole HTTP request through the Flask app with a signed token.

The mix is a distributor's year of approvals: 95 % of tasks closed, 5 % open; each task
offered to one of the nine approver groups, one in ten also to a named user; 30 % of open
tasks claimed. 20 users per group, so one user's inbox holds a few thousand open tasks.

PostgreSQL runs when FLOWGATE_BENCH_POSTGRES_URL is set (a database the bench may fill; it
works in its own schema `bench_inbox` and drops it afterwards unless --keep). A seeded SQLite
file or kept schema is measured again without seeding unless --fresh.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.orm import Session

from api.permissions import APPROVERS
from api.tasks import InboxQuery, inbox_page
from engine.runtime.commands import Actor
from engine.store.migrate import upgrade
from engine.store.tables import Definition, HumanTask, Instance, TaskCandidate

GROUPS = sorted(APPROVERS)
USERS_PER_GROUP = 20
TASKS_PER_INSTANCE = 100
CHUNK = 10_000
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def users() -> list[tuple[str, str]]:
    return [(f"{g}_{n:02d}", g) for g in GROUPS for n in range(USERS_PER_GROUP)]


def _tasks(rows: int, rng: random.Random) -> Iterator[tuple[dict[str, Any], list[dict]]]:
    people = users()
    for n in range(rows):
        group = rng.choice(GROUPS)
        member = f"{group}_{rng.randrange(USERS_PER_GROUP):02d}"
        created = NOW - timedelta(minutes=rng.randrange(365 * 24 * 60))
        is_open = rng.random() < 0.05
        claimed = is_open and rng.random() < 0.3
        status = "open" if is_open else rng.choice(("completed",) * 9 + ("cancelled",))
        extra_user = rng.choice(people)[0] if rng.random() < 0.1 else None
        task_id = str(uuid.UUID(int=rng.getrandbits(128)))
        task = {
            "id": task_id,
            "instance_id": f"{n // TASKS_PER_INSTANCE:032x}",
            "element_id": "approve_order",
            "name": "Approve order",
            "process_key": rng.choice(("order_to_cash", "procure_to_pay")),
            "business_key": f"SO-{n:07d}",
            "status": status,
            "state": "claimed" if claimed else ("created" if is_open else status),
            "assignee": member if claimed or not is_open else None,
            "claimed_by": member if claimed else None,
            "candidate_groups": [group],
            "candidate_users": [extra_user] if extra_user else [],
            "due_at": created + timedelta(days=rng.choice((1, 2, 3, 5))),
            "form": [],
            "properties": {},
            "created_at": created,
            "completed_at": None if is_open else created + timedelta(hours=5),
            "completed_by": None if is_open else member,
            "escalation_level": 0,
        }
        offer = {
            "task_id": task_id,
            "status": status if not is_open else ("assigned" if claimed else "open"),
            "due_at": task["due_at"],
            "created_at": created,
        }
        candidates = [{**offer, "kind": "group", "name": group}]
        if extra_user:
            candidates.append({**offer, "kind": "user", "name": extra_user})
        yield task, candidates


def seed(url: str, rows: int) -> float:
    """Fill the tables with bulk inserts; return the seconds it took."""
    started = time.perf_counter()
    engine = create_engine(url)
    rng = random.Random(6)
    with engine.begin() as conn:
        definition = conn.execute(
            insert(Definition).returning(Definition.id),
            {
                "key": "order_to_cash",
                "version": 1,
                "checksum": "0" * 64,
                "files": [],
                "elements": {},
                "deployed_at": NOW,
            },
        ).scalar_one()
        instances = [
            {
                "id": f"{i:032x}",
                "definition_id": definition,
                "process_key": "order_to_cash",
                "version": 1,
                "business_key": f"SO-{i:07d}",
                "status": "running",
                "state": b"",
                "variables": {},
                "created_at": NOW,
                "updated_at": NOW,
            }
            for i in range((rows + TASKS_PER_INSTANCE - 1) // TASKS_PER_INSTANCE)
        ]
        for start in range(0, len(instances), CHUNK):
            conn.execute(insert(Instance), instances[start : start + CHUNK])
    tasks: list[dict[str, Any]] = []
    candidates: list[dict[str, Any]] = []
    for task, offered in _tasks(rows, rng):
        tasks.append(task)
        candidates += offered
        if len(tasks) >= CHUNK:
            _flush(engine, tasks, candidates)
    _flush(engine, tasks, candidates)
    # Steady state: autovacuum would have marked the pages visible, so index-only scans stay
    # index-only (a fresh bulk load would otherwise visit the heap for every entry).
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


def _flush(engine: Any, tasks: list[dict], candidates: list[dict]) -> None:
    if tasks:
        with engine.begin() as conn:
            conn.execute(insert(HumanTask), tasks)
            conn.execute(insert(TaskCandidate), candidates)
    tasks.clear()
    candidates.clear()


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99


def timed(runs: int, call: Callable[[int], Any], warmup: int = 20) -> tuple[float, float]:
    for n in range(warmup):
        call(n)
    samples = []
    for n in range(runs):
        began = time.perf_counter()
        call(n)
        samples.append((time.perf_counter() - began) * 1000)
    return percentiles(samples)


def measure(url: str, runs: int) -> list[tuple[str, float, float, int]]:
    from api.app import create_app
    from api.bootstrap import bootstrap
    from api.settings import Settings

    engine = create_engine(url)
    people = users()
    actors = [Actor(u, frozenset({g}), frozenset({g})) for u, g in people]
    results = []

    def query(scope: str, page: int = 1, overdue: bool = False) -> Callable[[int], int]:
        def run(n: int) -> int:
            who = actors[(n * 37) % len(actors)]
            query = InboxQuery(who, scope, "open", {}, "due_at", NOW if overdue else None)
            with Session(bind=engine) as session:
                total, _ = inbox_page(session, query, page, 50)
            return total

        return run

    for label, call in (
        ("mine, page 1 by due date, with total", query("mine")),
        ("mine, page 20", query("mine", page=20)),
        ("group, page 1", query("group")),
        ("mine, overdue only", query("mine", overdue=True)),
    ):
        p50, p99 = timed(runs, call)
        results.append((label, p50, p99, call(0)))

    data_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "flowgate-bench-inbox"
    settings = Settings.from_env(
        {},
        database_url=url,
        data_dir=data_dir,
        secret_key="bench",
        log_level="WARNING",
        scheduler=False,
        processes_dir=data_dir / "none",
    )
    container = bootstrap(settings, migrate=False)
    client = create_app(container=container).test_client()
    tokens = [container.tokens.issue(u, [g], [g]) for u, g in people]

    def http(n: int) -> int:
        response = client.get(
            "/api/v1/tasks?scope=mine&sort=due_at",
            headers={"Authorization": f"Bearer {tokens[(n * 37) % len(tokens)]}"},
        )
        assert response.status_code == 200, response.data
        return response.json["total"]

    p50, p99 = timed(runs, http)
    results.append(("GET /tasks?scope=mine&sort=due_at (HTTP, in process)", p50, p99, http(0)))
    container.close()
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(HumanTask)).scalar_one()
    engine.dispose()
    results.insert(0, ("task rows", 0.0, 0.0, count))
    return results


def _sqlite(rows: int, fresh: bool) -> tuple[str, Callable[[], None]]:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"flowgate-inbox-{rows}.db"
    if fresh and path.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}", lambda: None


def _postgres(base: str, fresh: bool, keep: bool) -> tuple[str, Callable[[], None]]:
    schema = "bench_inbox"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if fresh:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    sep = "&" if "?" in base else "?"

    def drop() -> None:
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    return f"{base}{sep}options=-csearch_path%3D{schema}", drop


def run_backend(name: str, url: str, rows: int, runs: int) -> None:
    upgrade(url)
    with create_engine(url).connect() as conn:
        present = conn.execute(select(func.count()).select_from(HumanTask)).scalar_one()
    if present == 0:
        print(f"[{name}] seeding {rows:,} tasks ...", flush=True)
        print(f"[{name}] seeded in {seed(url, rows):.0f} s", flush=True)
    print(f"\n{name}: {'query':<58} {'p50 ms':>8} {'p99 ms':>8} {'rows':>9}")
    for label, p50, p99, total in measure(url, runs):
        if label == "task rows":
            print(f"{name}: {label:<58} {'':>8} {'':>8} {total:>9,}")
        else:
            print(f"{name}: {label:<58} {p50:>8.2f} {p99:>8.2f} {total:>9,}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--fresh", action="store_true", help="seed again from scratch")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL schema")
    args = parser.parse_args(argv)
    if args.backend in ("sqlite", "both"):
        url, done = _sqlite(args.rows, args.fresh)
        run_backend("sqlite", url, args.rows, args.runs)
        done()
    pg = os.environ.get("FLOWGATE_BENCH_POSTGRES_URL")
    if args.backend in ("postgres", "both"):
        if not pg:
            print("postgres: skipped (set FLOWGATE_BENCH_POSTGRES_URL)")
            return
        url, done = _postgres(pg, args.fresh, args.keep)
        try:
            run_backend("postgres", url, args.rows, args.runs)
        finally:
            done()


if __name__ == "__main__":
    main()
