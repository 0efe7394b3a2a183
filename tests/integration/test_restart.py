"""Durability: nothing is lost across a crash, a restart, or two schedulers."""

from __future__ import annotations

import threading
import time

from sqlalchemy import func, select

from engine.definitions.compile import SourceFile
from engine.runtime import commands
from engine.scheduler import sweep_timers
from engine.store.tables import Instance, InstanceEvent
from tests.integration.conftest import CAROL, ERP, make_container


def test_crash_between_commands_loses_nothing(database_url, tmp_path, approval_bpmn):
    first = make_container(database_url, tmp_path)
    with first.runtime.uow() as uow:
        first.runtime.catalog.deploy(uow, [SourceFile("approval.bpmn", approval_bpmn)], "t")
        uow.commit()
    body = commands.start(
        first.runtime, "approval", "SO-1", {"amount": 5000, "approval_timeout": "P1D"}, ERP
    ).body
    first.engine.dispose()  # the process dies: no clean shutdown, fresh caches next time

    second = make_container(database_url, tmp_path)
    after = commands.complete_task(
        second.runtime, body["active_tasks"][0]["id"], {"decision": "approve"}, CAROL
    ).body
    assert after["waiting_for"][0]["name"] == "payment_received"
    second.close()


def test_timer_fires_after_a_server_restart(database_url, tmp_path, approval_bpmn):
    first = make_container(database_url, tmp_path)
    with first.runtime.uow() as uow:
        first.runtime.catalog.deploy(uow, [SourceFile("approval.bpmn", approval_bpmn)], "t")
        uow.commit()
    body = commands.start(
        first.runtime, "approval", "SO-1", {"amount": 5000, "approval_timeout": "PT0.5S"}, ERP
    ).body
    first.close()
    time.sleep(0.7)
    second = make_container(database_url, tmp_path)
    assert sweep_timers(second.runtime) == 1
    with second.runtime.uow(write=False) as uow:
        assert uow.session.get(Instance, body["id"]).status == "completed"
    second.close()


def test_two_schedulers_fire_each_timer_exactly_once(database_url, tmp_path, approval_bpmn):
    a = make_container(database_url, tmp_path)
    b = make_container(database_url, tmp_path)
    with a.runtime.uow() as uow:
        a.runtime.catalog.deploy(uow, [SourceFile("approval.bpmn", approval_bpmn)], "t")
        uow.commit()
    for n in range(8):
        commands.start(
            a.runtime, "approval", f"SO-{n}", {"amount": 5000, "approval_timeout": "PT0.3S"}, ERP
        )
    time.sleep(0.5)
    fired: list[int] = []
    workers = [
        threading.Thread(target=lambda c=c: fired.append(sweep_timers(c.runtime))) for c in (a, b)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sum(fired) == 8
    with a.runtime.uow(write=False) as uow:
        per_instance = uow.session.execute(
            select(InstanceEvent.instance_id, func.count())
            .where(InstanceEvent.type == "timer_fired")
            .group_by(InstanceEvent.instance_id)
        ).all()
        assert sorted(count for _, count in per_instance) == [1] * 8
    a.close()
    b.close()
