"""Journal entries for the finance system (DESIGN §4, DOMAIN §5), read only."""

from __future__ import annotations

from flask import Blueprint, request
from sqlalchemy import select

from api.errors import BadRequest
from api.requests import page_args, runtime
from domain.journal import entry_as_dict
from domain.records import JournalEntry, JournalLine

bp = Blueprint("journal", __name__, url_prefix="/api/v1/journal-entries")

# source_type -> the line dimension it filters on
SOURCE_TYPES = {
    "order": JournalLine.order_no,
    "invoice": JournalLine.invoice_no,
    "customer": JournalLine.customer_id,
    "supplier": JournalLine.supplier_id,
    "po": JournalLine.po_no,
    "lot": JournalLine.lot,
    "gtin": JournalLine.gtin,
}


@bp.get("")
def list_entries():
    page, size = page_args()
    stmt = select(JournalEntry).order_by(JournalEntry.id)
    source_type, source_id = request.args.get("source_type"), request.args.get("source_id")
    if source_type:
        if source_type == "instance":
            stmt = stmt.where(JournalEntry.instance_id == source_id)
        elif source_type in SOURCE_TYPES:
            if not source_id:
                raise BadRequest("source_id is required with source_type")
            ids = select(JournalLine.entry_id).where(SOURCE_TYPES[source_type] == source_id)
            stmt = stmt.where(JournalEntry.id.in_(ids))
        else:
            raise BadRequest(
                f"source_type must be one of instance, {', '.join(SOURCE_TYPES)}",
                [{"field": "source_type", "message": "unknown source type"}],
            )
    if request.args.get("kind"):
        stmt = stmt.where(JournalEntry.kind == request.args["kind"])
    with runtime().uow(write=False) as uow:
        rows = uow.session.scalars(stmt.offset((page - 1) * size).limit(size))
        return {"items": [entry_as_dict(e) for e in rows], "page": page, "page_size": size}
