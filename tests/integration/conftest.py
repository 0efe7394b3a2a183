"""Integration fixtures: a real migrated database and a wired runtime with demo handlers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from api.bootstrap import Container, bootstrap
from api.settings import Settings
from domain.inventory import Lot
from engine.definitions.compile import SourceFile
from engine.errors import BusinessError
from engine.runtime.commands import Actor
from engine.services import ServiceCall, ServiceRegistry, default_registry

ERP = Actor("key:erp", frozenset({"erp_system"}))
CAROL = Actor("carol", frozenset({"credit_manager"}), frozenset({"credit_manager"}))


def lookup_customer(call: ServiceCall) -> dict[str, Any]:
    """Demo handler: a blocked customer takes the error boundary; `explode` is a crash.

    `unstorable` queues a row the database refuses. With `write_first`, it queues an outbox
    row before anything else, so a test can see whether a failure after a write keeps it.
    """
    if call.variables.get("write_first"):
        call.emit("demo.lookup_begun", {"order": call.business_key})
    if call.variables.get("explode"):
        raise RuntimeError("ERP lookup timed out")
    if call.variables.get("unstorable"):
        # A row the database refuses when it is flushed (past any 64-bit integer column).
        call.session.add(
            Lot(gtin="06901234567892", lot="L-BIG", expiry_date=date(2030, 1, 1), qty_on_hand=2**70)
        )
    if call.variables.get("blocked"):
        raise BusinessError("customer_blocked", "customer is blocked")
    return {"approver_group": "credit_manager", "looked_up": True}


def demo_services() -> ServiceRegistry:
    services = default_registry()
    services.register("demo.lookup", lookup_customer)
    return services


@dataclass
class ApiClient:
    """A user of the API through Flask's test client, with a token per demo user."""

    container: Container
    client: FlaskClient
    tokens: dict[str, str]

    def call(self, method: str, path: str, who: str = "erp", **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}", **kwargs.pop("headers", {})}
        return self.client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    def ok(self, method: str, path: str, who: str = "erp", **kwargs: Any) -> Any:
        response = self.call(method, path, who, **kwargs)
        assert response.status_code < 300, (method, path, response.status_code, response.json)
        return response.json


def make_container(database_url: str, tmp_path: Path, **settings: Any) -> Container:
    config = Settings.from_env(
        {},
        database_url=database_url,
        data_dir=tmp_path / "var",
        secret_key="test-secret-key",
        scheduler=False,
        processes_dir=tmp_path / "none",
        **settings,
    )
    return bootstrap(config, services=demo_services())


@contextmanager
def sqlite_container(directory: Path, **settings: Any) -> Iterator[Container]:
    """A container on its own SQLite file, for what only SQLite has (query plans, its log)."""
    directory.mkdir(exist_ok=True)
    container = make_container(f"sqlite:///{directory / 'flowgate.db'}", directory, **settings)
    try:
        yield container
    finally:
        container.close()


def deploy_approval(container: Container, approval_bpmn: bytes) -> None:
    with container.runtime.uow() as uow:
        container.runtime.catalog.deploy(uow, [SourceFile("approval.bpmn", approval_bpmn)], "test")
        uow.commit()


@pytest.fixture
def container(database_url: str, tmp_path: Path) -> Iterator[Container]:
    c = make_container(database_url, tmp_path)
    yield c
    c.close()


@pytest.fixture
def rt(container: Container, approval_bpmn: bytes):
    deploy_approval(container, approval_bpmn)
    return container.runtime
