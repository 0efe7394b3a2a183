"""Column types shared by the engine's and the domain's tables."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, Numeric, TypeDecorator

# SQLite has no BIGINT autoincrement; the variant keeps ids 64-bit on PostgreSQL.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, also on SQLite (which stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """Decimal to the cent in and out; SQLite's NUMERIC would otherwise hand back floats."""

    impl = Numeric(18, 2, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        # SQLite stores NUMERIC as REAL; text keeps every cent exact.
        if dialect.name == "sqlite":
            from sqlalchemy import String

            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(18, 2, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money must be Decimal, not float")
        amount = Decimal(value).quantize(Decimal("0.01"))
        return str(amount) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))
