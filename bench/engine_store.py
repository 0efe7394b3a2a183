"""In-process figures on a real SQLite store: load time against table size, blob size.

These call the engine's commands directly (no HTTP), through the same composition root as
`flowgate serve`, so they isolate what the store and the state blob cost.
"""

from __future__ import annotations

import statistics
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select

from api.bootstrap import Container, bootstrap, deploy_directory
from api.settings import Settings
from bench.measure import Throughput
from engine.runtime import commands
from engine.runtime.commands import Actor
from engine.store.tables import HumanTask, Instance, InstanceEvent, TaskCandidate

ERP = Actor("key:bench-erp", frozenset({"erp_system"}))
CREDIT_MANAGER = Actor("carol", frozenset({"credit_manager"}), frozenset({"credit_manager"}))
SEED_CHUNK = 5_000


def embedded_container(data_dir: Path, models: Path) -> Container:
    """The embedded-mode container on its own SQLite file, with the bench models deployed."""
    settings = Settings.from_env({"FLOWGATE_DATA_DIR": str(data_dir), "FLOWGATE_SCHEDULER": "off"})
    container = bootstrap(settings)
    deploy_directory(container, models)
    return container


def open_task_id(container: Container, instance_id: str) -> str:
    with container.runtime.uow(write=False) as uow:
        return uow.session.execute(
            select(HumanTask.id).where(
                HumanTask.instance_id == instance_id, HumanTask.status == "open"
            )
        ).scalar_one()


def start_waiting(container: Container, process_key: str, count: int) -> list[str]:
    return [
        commands.start(container.runtime, process_key, f"WAIT-{n}", {}, ERP).body["id"]
        for n in range(count)
    ]


def in_process_starts(container: Container, process_key: str, count: int) -> Throughput:
    """`commands.start` in a loop, one thread: the engine without Flask, auth or sockets."""
    latencies = []
    started = time.perf_counter()
    for n in range(count):
        begun = time.perf_counter()
        commands.start(container.runtime, process_key, f"INPROC-{n}", {}, ERP)
        latencies.append(time.perf_counter() - begun)
    return Throughput(count, time.perf_counter() - started, latencies)


# Load time against the number of finished instances -----------------------------------------


@dataclass(frozen=True)
class LoadTimes:
    completed_instances: int
    load_ms: float
    complete_ms: float


def time_loads(container: Container, instance_ids: list[str], rounds: int = 5) -> float:
    """Median of `_load` (select and lock the row, inflate the blob, re-attach the cached spec)."""
    rt = container.runtime
    samples = []
    for _ in range(rounds):
        for instance_id in instance_ids:
            with rt.uow() as uow:
                begun = time.perf_counter()
                commands._load(rt, uow, instance_id, CREDIT_MANAGER)
                samples.append(time.perf_counter() - begun)
    return statistics.median(samples) * 1e3


def time_completions(container: Container, instance_ids: list[str]) -> float:
    """Median of the whole `complete_task` command on waiting instances, commit included."""
    samples = []
    for instance_id in instance_ids:
        task_id = open_task_id(container, instance_id)
        begun = time.perf_counter()
        commands.complete_task(container.runtime, task_id, {}, CREDIT_MANAGER)
        samples.append(time.perf_counter() - begun)
    return statistics.median(samples) * 1e3


@dataclass(frozen=True)
class FinishedInstance:
    """The rows one real finished instance left behind, copied to fill the store."""

    instance: dict[str, Any]
    events: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    candidates: list[dict[str, Any]]


def take_finished_instance(container: Container, process_key: str) -> FinishedInstance:
    """Run one instance to the end, keep its rows as a template, and remove it from the store."""
    instance_id = start_waiting(container, process_key, 1)[0]
    commands.complete_task(
        container.runtime, open_task_id(container, instance_id), {}, CREDIT_MANAGER
    )
    with container.engine.begin() as conn:
        instance = (
            conn.execute(select(Instance.__table__).where(Instance.id == instance_id))
            .one()
            ._asdict()
        )
        events = [
            r._asdict()
            for r in conn.execute(
                select(InstanceEvent.__table__).where(InstanceEvent.instance_id == instance_id)
            )
        ]
        tasks = [
            r._asdict()
            for r in conn.execute(
                select(HumanTask.__table__).where(HumanTask.instance_id == instance_id)
            )
        ]
        task_ids = [t["id"] for t in tasks]
        candidates = [
            r._asdict()
            for r in conn.execute(
                select(TaskCandidate.__table__).where(TaskCandidate.task_id.in_(task_ids))
            )
        ]
        conn.execute(delete(TaskCandidate).where(TaskCandidate.task_id.in_(task_ids)))
        conn.execute(delete(HumanTask).where(HumanTask.instance_id == instance_id))
        conn.execute(delete(InstanceEvent).where(InstanceEvent.instance_id == instance_id))
        conn.execute(delete(Instance).where(Instance.id == instance_id))
    assert instance["status"] == "completed"
    return FinishedInstance(instance, events, tasks, candidates)


def seed_finished(container: Container, template: FinishedInstance, count: int) -> None:
    """Bulk-insert `count` copies of a finished instance with its history and task rows."""
    for first in range(0, count, SEED_CHUNK):
        instances, events, tasks, candidates = [], [], [], []
        for n in range(first, min(first + SEED_CHUNK, count)):
            instance_id = uuid.uuid4().hex
            instances.append({**template.instance, "id": instance_id, "business_key": f"DONE-{n}"})
            for event in template.events:
                row = {**event, "instance_id": instance_id}
                del row["id"]
                events.append(row)
            for task in template.tasks:
                task_id = str(uuid.uuid4())
                tasks.append({**task, "id": task_id, "instance_id": instance_id})
                candidates += [
                    {**c, "task_id": task_id}
                    for c in template.candidates
                    if c["task_id"] == task["id"]
                ]
        with container.engine.begin() as conn:
            conn.execute(insert(Instance.__table__), instances)
            conn.execute(insert(InstanceEvent.__table__), events)
            conn.execute(insert(HumanTask.__table__), tasks)
            if candidates:
                conn.execute(insert(TaskCandidate.__table__), candidates)


def load_times_against_history(
    container: Container, process_key: str, seeded: int, sample: int = 100
) -> tuple[LoadTimes, LoadTimes, float, int]:
    """Load and complete waiting instances with 0, then `seeded`, finished instances stored."""
    template = take_finished_instance(container, process_key)
    waiting = start_waiting(container, process_key, 4 * sample)
    empty = LoadTimes(
        0,
        time_loads(container, waiting[:sample]),
        time_completions(container, waiting[sample : 2 * sample]),
    )
    begun = time.perf_counter()
    seed_finished(container, template, seeded)
    seed_seconds = time.perf_counter() - begun
    full = LoadTimes(
        seeded,
        time_loads(container, waiting[2 * sample : 3 * sample]),
        time_completions(container, waiting[3 * sample :]),
    )
    rows_per_instance = 1 + len(template.events) + len(template.tasks) + len(template.candidates)
    return empty, full, seed_seconds, rows_per_instance


# Blob size ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobSize:
    waiting_at: str
    compressed: int
    uncompressed: int


def blob_sizes(container: Container, process_key: str) -> list[BlobSize]:
    """The stored state of one instance at each of its wait points (user task, message)."""
    rt = container.runtime
    started = commands.start(rt, process_key, "SO-BLOB", {"amount": 5000}, ERP)
    instance_id = started.body["id"]
    sizes = [_blob_size(container, instance_id, "user task + boundary timer")]
    commands.complete_task(
        rt, open_task_id(container, instance_id), {"decision": "approve"}, CREDIT_MANAGER
    )
    sizes.append(_blob_size(container, instance_id, "message catch"))
    return sizes


def _blob_size(container: Container, instance_id: str, waiting_at: str) -> BlobSize:
    with container.runtime.uow(write=False) as uow:
        state = uow.session.execute(
            select(Instance.state).where(Instance.id == instance_id)
        ).scalar_one()
    return BlobSize(waiting_at, len(state), len(zlib.decompress(state)))
