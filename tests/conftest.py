"""Shared fixtures: a migrated database per test, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

FIXTURES = Path(__file__).parent / "fixtures"
POSTGRES_URL = os.environ.get("FLOWGATE_TEST_POSTGRES_URL")


@contextmanager
def postgres_schema_url(base: str, prefix: str = "t") -> Iterator[str]:
    """A fresh schema (for one test or one bench run), dropped afterwards; search_path on it."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _backends() -> list[object]:
    backends: list[object] = ["sqlite"]
    marks = [pytest.mark.postgres]
    if not POSTGRES_URL:
        marks.append(pytest.mark.skip(reason="FLOWGATE_TEST_POSTGRES_URL is not set"))
    backends.append(pytest.param("postgres", marks=marks))
    return backends


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'flowgate.db'}"
    else:
        with postgres_schema_url(POSTGRES_URL or "") as url:
            yield url


@pytest.fixture
def approval_bpmn() -> bytes:
    return (FIXTURES / "approval.bpmn").read_bytes()
