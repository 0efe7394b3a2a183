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
    places = 2

    def load_dialect_impl(self, dialect: Any) -> Any:
        # SQLite stores NUMERIC as REAL; text keeps every cent exact.
        if dialect.name == "sqlite":
            from sqlalchemy import String

            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(18, self.places, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("money must be Decimal, not float")
        amount = Decimal(value).quantize(Decimal(1).scaleb(-self.places))
        return str(amount) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)).quantize(Decimal(1).scaleb(-self.places))


class UnitPrice(Money):
    """A price per unit or a rate, to 4 decimals: a vendor quotes 0.125 a unit, a tax rate may
    be 6.5 %. As Money, these were rounded to the cent on the way in, and a receipt of 1,000 at
    0.125 posted 120.00, not 125.00."""

    impl = Numeric(18, 4, asdecimal=True)
    cache_ok = True
    places = 4
