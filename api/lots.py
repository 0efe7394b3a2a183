"""The lot master from the ERP: expiry, QA status, cost (DESIGN §4, DOMAIN §2)."""

from __future__ import annotations

from datetime import date

from flask import Blueprint

from api.customers import date_field, int_field, money_field
from api.errors import BadRequest
from api.requests import actor, field, json_body, refused, runtime, text_field
from domain.inventory import (
    LOT_STATUSES,
    Lot,
    RecallIsFinal,
    get_lot,
    lot_as_dict,
    normalize_gtin,
    upsert_lot,
)
from engine.errors import Conflict, NotFound
from rules.udi import is_valid_gtin

bp = Blueprint("lots", __name__, url_prefix="/api/v1/lots")


def _gtin(gtin: str) -> str:
    try:
        padded = normalize_gtin(gtin)
    except ValueError as exc:
        raise BadRequest(str(exc), [{"field": "gtin", "message": str(exc)}]) from None
    if not is_valid_gtin(padded):
        raise BadRequest("GTIN check digit is wrong", [{"field": "gtin", "message": "check digit"}])
    return padded


@bp.put("/<gtin>/<lot>")
def put_lot(gtin: str, lot: str):
    gtin = _gtin(gtin)
    if not 0 < len(lot) <= 20:
        raise BadRequest(
            "lot is 1 to 20 characters", [{"field": "lot", "message": "1 to 20 characters"}]
        )
    body = json_body()
    status = field(body, "status", str, required=False)
    if status is not None and status not in LOT_STATUSES:
        raise BadRequest(
            f"status must be one of {', '.join(LOT_STATUSES)}",
            [{"field": "status", "message": f"one of {', '.join(LOT_STATUSES)}"}],
        )
    expiry = date_field(body, "expiry_date")
    production = date_field(body, "production_date", required=False)
    unit_cost = money_field(body, "unit_cost", required=False)
    if unit_cost is not None and unit_cost <= 0:
        # Goods issue posts cost of sales at this price; at zero there is no entry to post
        # and every shipment of the lot stopped as an incident.
        raise refused("unit_cost", "must be more than zero")
    qty = int_field(body, "qty_on_hand")
    with runtime().uow() as uow:
        existing = get_lot(uow.session, gtin, lot)
        _produced_before_expiry(production, expiry, existing)
        # A recall has no override (DOMAIN §2): nothing through this API makes it shippable,
        # not even by way of another status first (domain.inventory.RecallIsFinal).
        try:
            row = upsert_lot(
                uow.session,
                gtin,
                lot,
                expiry_date=expiry,
                status=status,
                unit_cost=unit_cost,
                production_date=production,
                qty_on_hand=qty,
                actor=actor().user,
                # The status-change record's width; checked even when the status stays the same.
                reason=text_field(body, "reason", 400, required=False) or "ERP master data",
            )
        except RecallIsFinal as exc:
            raise Conflict(str(exc)) from None
        body = lot_as_dict(row)
        uow.commit()
    return body, 201 if existing is None else 200


def _produced_before_expiry(production: date | None, expiry: date, existing: Lot | None) -> None:
    """Shelf life runs from production to expiry; a lot that expires before it was made is a
    typo in one of the dates. Without a production date in the body, the stored one counts."""
    if production is not None and production > expiry:
        raise refused("production_date", "must not be after expiry_date")
    stored = existing.production_date if existing is not None else None
    if production is None and stored is not None and stored > expiry:
        raise refused("expiry_date", f"must not be before the production date, {stored}")


@bp.get("/<gtin>/<lot>")
def get_lot_view(gtin: str, lot: str):
    with runtime().uow(write=False) as uow:
        row = get_lot(uow.session, _gtin(gtin), lot)
        if row is None:
            raise NotFound(f"no lot {lot} of GTIN {gtin}")
        return lot_as_dict(row)
