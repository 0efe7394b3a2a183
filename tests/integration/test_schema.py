"""The migrations build exactly the schema the models describe, indexes included."""

from __future__ import annotations

import importlib
import pkgutil

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import domain
import engine.store.audit  # noqa: F401 - the audit table's model
from domain.records import DomainBase
from engine.store.db import make_engine
from engine.store.migrate import upgrade
from engine.store.tables import Base


def _not_a_test_model(obj, name, type_, reflected, compare_to) -> bool:
    """Leave out tables that tests declare on the same metadata (an audited probe model)."""
    table = obj if type_ == "table" else getattr(obj, "table", None)
    if table is None or reflected:
        return True
    return not any(
        mapper.class_.__module__.startswith("tests.")
        for base in (Base, DomainBase)
        for mapper in base.registry.mappers
        if mapper.local_table is table
    )


def test_migrated_database_matches_every_model_table_column_and_index(database_url):
    upgrade(database_url)
    for module in pkgutil.iter_modules(domain.__path__):  # every domain model, new ones too
        importlib.import_module(f"domain.{module.name}")
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"include_object": _not_a_test_model}
            )
            differences = compare_metadata(context, [Base.metadata, DomainBase.metadata])
    finally:
        engine.dispose()
    # A model index without its migration (or the reverse) shows here as add_/remove_index.
    assert differences == []
