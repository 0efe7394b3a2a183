"""The lot master from the ERP: expiry, QA status, cost (DESIGN §4, DOMAIN §2)."""

from __future__ import annotations

from flask import Blueprint

from api.customers import date_field, int_field, money_field
from api.errors import BadRequest
from api.requests import actor, field, json_body, runtime
from domain.inventory import LOT_STATUSES, get_lot, lot_as_dict, normalize_gtin, upsert_lot
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
    qty = int_field(body, "qty_on_hand")
    with runtime().uow() as uow:
        existing = get_lot(uow.session, gtin, lot)
        # A recall has no override (DOMAIN §2): nothing through this API makes it shippable.
        if (
            existing is not None
            and existing.status == "recalled"
            and status
            not in (
                None,
                "recalled",
                "returned",
            )
        ):
            raise Conflict(f"lot {lot} is recalled; a recall cannot be released")
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
            reason=field(body, "reason", str, required=False) or "ERP master data",
        )
        body = lot_as_dict(row)
        uow.commit()
    return body, 201 if existing is None else 200


@bp.get("/<gtin>/<lot>")
def get_lot_view(gtin: str, lot: str):
    with runtime().uow(write=False) as uow:
        row = get_lot(uow.session, _gtin(gtin), lot)
        if row is None:
            raise NotFound(f"no lot {lot} of GTIN {gtin}")
        return lot_as_dict(row)
