"""`flowgate serve --workers N`: the same app in N gunicorn processes (gthread workers).

One Python process runs Flask, SpiffWorkflow and the JSON work on one core at a time (the
GIL); with N processes the parts of a request that do not hold the database write lock run in
parallel. The master has already migrated, deployed and seeded before it forks; each worker
builds its own container (engine, caches, scheduler) after the fork, because SQLite
connections and scheduler threads must not cross a fork. Every worker runs the scheduler tick:
claiming rows makes that safe (DESIGN §5), as with several hosts.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from api.settings import Settings


class FlowgateServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, host: str, port: int, workers: int) -> None:
        self.settings = settings
        self.options = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": settings.threads,
            # Keep-alive as an ERP adapter or inbox UI holds connections between calls.
            "keepalive": 30,
            "timeout": 120,
            "graceful_timeout": 10,
            # Our own JSON access log (api/logging.py) records each request once.
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "when_ready": self._ready,
            "worker_exit": self._worker_exit,
        }
        self._container: Any = None
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        from api.app import create_app
        from api.bootstrap import bootstrap, freeze_heap

        self._container = bootstrap(self.settings, migrate=False)
        if self.settings.scheduler:
            self._container.start_scheduler()
        app = create_app(container=self._container)
        freeze_heap()
        return app

    def _ready(self, server: Any) -> None:
        print(
            f"flowgate serving on http://{self.options['bind']} "
            f"({self.options['workers']} workers)",
            flush=True,
        )

    def _worker_exit(self, _server: Any, _worker: Any) -> None:
        if self._container is not None:
            self._container.close()
