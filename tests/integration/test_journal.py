"""Postings (DOMAIN §5) on a real migrated database: balanced, immutable, reversible."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from api.bootstrap import Container
from domain.errors import UnbalancedEntry
from domain.journal import AccountMap, Line, post, reverse
from domain.records import JournalEntry, JournalLine

ACCOUNTS = AccountMap.from_config()


def _invoice_lines() -> list[Line]:
    dims = {"customer_id": "C-1", "invoice_no": "INV-1", "order_no": "SO-1"}
    return [
        Line("ar", debit=Decimal("113.00"), dims=dims),
        Line("revenue", credit=Decimal("100.00"), dims=dims),
        Line("output_vat", credit=Decimal("13.00"), dims=dims),
    ]


def test_invoice_entry_is_posted_balanced_with_its_dimensions(container: Container) -> None:
    with container.runtime.uow() as uow:
        post(
            uow.session,
            ACCOUNTS,
            kind="customer_invoice",
            source_key="inv:1",
            lines=_invoice_lines(),
        )
        uow.commit()
    with container.runtime.uow() as uow:
        entry = uow.session.scalars(select(JournalEntry)).one()
        assert [(line.account, line.debit, line.credit) for line in entry.lines] == [
            ("1122", Decimal("113.00"), Decimal("0.00")),
            ("6001", Decimal("0.00"), Decimal("100.00")),
            ("22210106", Decimal("0.00"), Decimal("13.00")),
        ]
        assert {line.invoice_no for line in entry.lines} == {"INV-1"}


def test_unbalanced_entry_is_refused_and_nothing_is_written(container: Container) -> None:
    lines = [Line("ar", debit=Decimal("113.00")), Line("revenue", credit=Decimal("113.01"))]
    with container.runtime.uow() as uow:
        with pytest.raises(UnbalancedEntry, match=re.escape("113.00 != credits 113.01")):
            post(uow.session, ACCOUNTS, kind="customer_invoice", source_key="inv:2", lines=lines)
        uow.commit()
    with container.runtime.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(JournalLine)) == 0


def test_float_amounts_are_refused(container: Container) -> None:
    with container.runtime.uow() as uow, pytest.raises(TypeError, match="Decimal"):
        post(
            uow.session,
            ACCOUNTS,
            kind="x",
            source_key="x",
            lines=[Line("ar", debit=1.1), Line("bank", credit=1.1)],
        )  # type: ignore[arg-type]


def test_reposting_the_same_event_returns_the_first_entry(container: Container) -> None:
    with container.runtime.uow() as uow:
        first = post(
            uow.session,
            ACCOUNTS,
            kind="customer_invoice",
            source_key="inv:3",
            lines=_invoice_lines(),
        )
        again = post(
            uow.session,
            ACCOUNTS,
            kind="customer_invoice",
            source_key="inv:3",
            lines=_invoice_lines(),
        )
        assert again.id == first.id
        uow.commit()


def test_cancellation_writes_a_mirror_entry_and_the_books_net_to_zero(
    container: Container,
) -> None:
    with container.runtime.uow() as uow:
        entry = post(
            uow.session,
            ACCOUNTS,
            kind="customer_invoice",
            source_key="inv:4",
            lines=_invoice_lines(),
        )
        mirror = reverse(uow.session, entry, "order cancelled")
        uow.commit()
    with container.runtime.uow() as uow:
        net = uow.session.execute(
            select(JournalLine.account, func.count(), JournalLine.invoice_no).group_by(
                JournalLine.account, JournalLine.invoice_no
            )
        ).all()
        assert {row[1] for row in net} == {2}
        lines = uow.session.scalars(select(JournalLine)).all()
        for account in {line.account for line in lines}:
            debit = sum(line.debit for line in lines if line.account == account)
            credit = sum(line.credit for line in lines if line.account == account)
            assert debit == credit, account
        original = uow.session.get(JournalEntry, entry.id)
        assert original is not None and original.reversed_by_id == mirror.id


def test_account_map_overrides_are_configuration() -> None:
    assert AccountMap.from_config({"ar": "1131"})["ar"] == "1131"
    with pytest.raises(ValueError, match="unknown account"):
        AccountMap.from_config({"receivables": "1131"})
