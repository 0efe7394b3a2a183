"""The lot master (DOMAIN §2) on a migrated database: receipts, QA status, FEFO."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select

from api.bootstrap import Container
from domain.inventory import (
    LotStatusChange,
    fefo_lots,
    get_lot,
    issue_lot,
    receive_lot,
    set_status,
    upsert_lot,
)


def test_received_lot_waits_in_quarantine_until_qa_releases_it(container: Container) -> None:
    with container.runtime.uow() as uow:
        lot = receive_lot(
            uow.session,
            "6901234567892",
            "L1",
            qty=10,
            expiry_date=date(2028, 1, 31),
            unit_cost=Decimal("50.00"),
        )
        assert (lot.gtin, lot.status) == ("06901234567892", "quarantined")
        receive_lot(
            uow.session,
            "06901234567892",
            "L1",
            qty=10,
            expiry_date=date(2028, 1, 31),
            unit_cost=Decimal("60.00"),
        )
        set_status(uow.session, "06901234567892", "L1", "released", reason="QC ok", actor="quinn")
        uow.commit()
    with container.runtime.uow() as uow:
        lot = get_lot(uow.session, "06901234567892", "L1")
        assert lot is not None
        assert (lot.status, lot.qty_on_hand, lot.unit_cost) == ("released", 20, Decimal("55.00"))
        changes = uow.session.scalars(select(LotStatusChange).order_by(LotStatusChange.id)).all()
        assert [(c.old_status, c.new_status, c.actor) for c in changes] == [
            (None, "quarantined", "goods_receipt"),
            ("quarantined", "released", "quinn"),
        ]


def test_fefo_picks_the_first_expiring_released_lot_with_enough_shelf_life(
    container: Container,
) -> None:
    gtin = "06901234567892"
    with container.runtime.uow() as uow:
        for lot, expiry, status in (
            ("SHORT", date(2027, 1, 31), "released"),
            ("LATE", date(2029, 1, 31), "released"),
            ("EARLY", date(2028, 1, 31), "released"),
            ("QUAR", date(2027, 12, 31), "quarantined"),
        ):
            upsert_lot(uow.session, gtin, lot, expiry_date=expiry, status=status, qty_on_hand=5)
        issue_lot(uow.session, gtin, "EARLY", 2)
        picks = fefo_lots(uow.session, gtin, date(2026, 11, 23), 180)
        assert [lot.lot for lot in picks] == ["EARLY", "LATE"]
        assert picks[0].qty_on_hand == 3
