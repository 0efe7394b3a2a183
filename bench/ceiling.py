"""The stack's own ceiling on this machine: what Flask under the same server does with no engine.

`bench_engine` measures W1 beside two servers that keep everything of flowgate's serving path
except the engine: the same Flask, the same werkzeug process or gunicorn gthread workers with
the same options, the same SQLite engine (WAL, BEGIN IMMEDIATE, the cross-process writer lock)
and the same client. `hello` answers a POST with a small JSON body; `insert` also stores the
body as one row through a SQLAlchemy ORM session and commits, i.e. the least a start command
that keeps anything can do. W1 can never be faster than `insert`, so the ratio of W1 to it says
how much the engine itself costs, apart from what the stack and the machine allow.

Run as a server: python -m bench.ceiling --port P --workers N --mode hello|insert --data DIR
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request
from sqlalchemy import JSON, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from engine.store.db import WRITE, make_engine
from tests.e2e.conftest import Server, free_port, spawn_module, wait_until_ready


class _Base(DeclarativeBase):
    pass


class Note(_Base):
    __tablename__ = "note"
    id: Mapped[int] = mapped_column(primary_key=True)
    business_key: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


def database_url(data: Path) -> str:
    return f"sqlite:///{data / 'ceiling.db'}"


def make_app(mode: str, data: Path) -> Flask:
    app = Flask(__name__)
    sessions = None
    if mode == "insert":
        engine = make_engine(database_url(data))
        sessions = sessionmaker(bind=engine.execution_options(**{WRITE: True}))

    @app.post("/rows")
    def add_row() -> Any:
        body = request.get_json()
        if sessions is None:
            return jsonify({"id": None, "status": "completed"}), 201
        with sessions() as session:
            row = Note(
                business_key=body.get("business_key"), body=body, created_at=datetime.now(UTC)
            )
            session.add(row)
            session.commit()
            return jsonify({"id": row.id, "status": "completed"}), 201

    @app.get("/readyz")
    def ready() -> Any:
        return {"status": "ready"}

    return app


def serve_ceiling(tmp: Path, workers: int, mode: str) -> Server:
    """Start the ceiling server in its own process, as `bench_engine` starts flowgate."""
    port = free_port()
    data = tmp / f"ceiling-{mode}-{workers}"
    data.mkdir(parents=True, exist_ok=True)
    log = data / "server.log"
    argv = ["bench.ceiling", "--port", str(port), "--workers", str(workers), "--mode", mode]
    process = spawn_module([*argv, "--data", str(data)], log)
    base = f"http://127.0.0.1:{port}"
    wait_until_ready(process, base, log)
    return Server(base, {}, process, log)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--mode", choices=["hello", "insert"], default="insert")
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args(argv)
    # Before any fork, as flowgate's master migrates before its workers start.
    _Base.metadata.create_all(make_engine(database_url(args.data)))
    if args.workers == 1:
        from werkzeug.serving import make_server

        app = make_app(args.mode, args.data)
        make_server("127.0.0.1", args.port, app, threaded=True).serve_forever()
        return
    from gunicorn.app.base import BaseApplication

    class Ceiling(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            # The options flowgate's own gunicorn server uses (api/workers.py).
            for name, value in {
                "bind": f"127.0.0.1:{args.port}",
                "workers": args.workers,
                "worker_class": "gthread",
                "threads": 8,
                "keepalive": 30,
                "accesslog": None,
                "loglevel": "warning",
            }.items():
                self.cfg.set(name, value)

        def load(self) -> Flask:
            return make_app(args.mode, args.data)

    Ceiling().run()


if __name__ == "__main__":
    main()
