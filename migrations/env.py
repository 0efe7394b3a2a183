"""Alembic environment: the URL comes from `flowgate db upgrade` or FLOWGATE_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context

from domain.records import DomainBase
from engine.store.db import make_engine
from engine.store.tables import Base

config = context.config
target_metadata = [Base.metadata, DomainBase.metadata]


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or os.environ.get(
        "FLOWGATE_DATABASE_URL", "sqlite:///var/flowgate.db"
    )


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
