"""Decision records: what a business rule task decided, with everything to replay it."""

from __future__ import annotations

from flask import Blueprint, request

from api.requests import page_args, runtime
from engine.store import decision_records

bp = Blueprint("decisions", __name__, url_prefix="/api/v1/decisions")


@bp.get("")
def list_decisions():
    page, page_size = page_args()
    with runtime().uow(write=False) as uow:
        items = decision_records.list_decisions(
            uow,
            instance_id=request.args.get("instance_id"),
            ruleset_key=request.args.get("ruleset_key"),
            page=page,
            page_size=page_size,
        )
    return {"items": items, "page": page, "page_size": page_size}


@bp.get("/<int(max=9223372036854775807):decision_id>")
def get_decision(decision_id: int):
    with runtime().uow(write=False) as uow:
        return decision_records.get_decision(uow, decision_id)
