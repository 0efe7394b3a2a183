"""Operations: liveness, readiness, Prometheus metrics, the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Response
from sqlalchemy import func, select, text

from api.openapi import openapi_document
from api.requests import runtime
from engine.store.tables import HumanTask, Instance, OutboxMessage, Timer

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    try:
        with runtime().uow(write=False) as uow:
            uow.session.execute(text("SELECT 1"))
    except Exception:
        return {"status": "unavailable", "database": "down"}, 503
    return {"status": "ready", "database": "up"}


@bp.get("/metrics")
def metrics():
    lines = []
    with runtime().uow(write=False) as uow:
        session = uow.session
        lines.append("# TYPE flowgate_instances gauge")
        for status, count in session.execute(
            select(Instance.status, func.count()).group_by(Instance.status)
        ):
            lines.append(f'flowgate_instances{{status="{status}"}} {count}')
        open_tasks = session.execute(
            select(func.count()).select_from(HumanTask).where(HumanTask.status == "open")
        ).scalar_one()
        lines += ["# TYPE flowgate_open_tasks gauge", f"flowgate_open_tasks {open_tasks}"]
        timers = session.execute(select(func.count()).select_from(Timer)).scalar_one()
        lines += ["# TYPE flowgate_waiting_timers gauge", f"flowgate_waiting_timers {timers}"]
        lines.append("# TYPE flowgate_outbox gauge")
        for status, count in session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        ):
            lines.append(f'flowgate_outbox{{status="{status}"}} {count}')
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")


@bp.get("/openapi.json")
def openapi():
    return openapi_document()


@bp.get("/docs")
def docs():
    rows = "".join(
        f"<tr><td>{method.upper()}</td><td><code>{path}</code></td>"
        f"<td>{op.get('summary', '')}</td></tr>"
        for path, item in openapi_document()["paths"].items()
        for method, op in item.items()
    )
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>flowgate API</title></head>"
        "<body><h1>flowgate API</h1><p>Machine-readable: <a href='/openapi.json'>/openapi.json</a>"
        f"</p><table border='1' cellpadding='4'>{rows}</table></body></html>"
    )
    return Response(html, mimetype="text/html")
