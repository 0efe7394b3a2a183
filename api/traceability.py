"""Recall query (DOMAIN §2): every customer, order, shipment, invoice and UDI that got a lot."""

from __future__ import annotations

from flask import Blueprint
from sqlalchemy import select

from api.lots import _gtin
from api.requests import runtime
from domain.inventory import get_lot, lot_as_dict
from domain.records import JournalLine
from domain.sales import Shipment, ShipmentUnit

bp = Blueprint("traceability", __name__, url_prefix="/api/v1/traceability")


@bp.get("/lots/<gtin>/<lot>")
def lot_recipients(gtin: str, lot: str):
    gtin = _gtin(gtin)
    with runtime().uow(write=False) as uow:
        session = uow.session
        units = session.execute(
            select(ShipmentUnit, Shipment.ship_date)
            .join(Shipment, Shipment.id == ShipmentUnit.shipment_id)
            .where(ShipmentUnit.gtin == gtin, ShipmentUnit.lot == lot)
            .order_by(ShipmentUnit.id)
        ).all()
        entry_ids = session.scalars(
            select(JournalLine.entry_id)
            .where(JournalLine.gtin == gtin, JournalLine.lot == lot)
            .distinct()
        ).all()
        master = get_lot(session, gtin, lot)
        customers: dict[str, dict] = {}
        for unit, _ship_date in units:
            who = customers.setdefault(
                unit.customer_id, {"customer_id": unit.customer_id, "qty": 0, "orders": []}
            )
            who["qty"] += unit.qty
            if unit.order_no not in who["orders"]:
                who["orders"].append(unit.order_no)
        return {
            "gtin": gtin,
            "lot": lot,
            "lot_master": lot_as_dict(master) if master else None,
            "customers": list(customers.values()),
            "shipments": sorted({u.shipment_id for u, _ in units}),
            "orders": sorted({u.order_no for u, _ in units}),
            "invoices": sorted({u.invoice_no for u, _ in units if u.invoice_no}),
            "units": [
                {
                    "customer_id": u.customer_id,
                    "order_no": u.order_no,
                    "shipment_id": u.shipment_id,
                    "ship_date": ship_date.isoformat(),
                    "invoice_no": u.invoice_no,
                    "line_no": u.line_no,
                    "qty": u.qty,
                    "udi": u.udi,
                    "serial": u.serial,
                }
                for u, ship_date in units
            ],
            "journal_entry_ids": sorted(entry_ids),
        }
