"""Service-task handlers and the segregation-of-duties completion guard of
`processes/procure_to_pay.bpmn` (DOMAIN §4, §5; DESIGN §4 P2P payloads).

Each handler runs inside the engine command's transaction: it reads and writes the P2P records
(`domain/procurement.py`), lots (`domain/inventory.py`) and journal entries, records every
rules evaluation as a decision record, queues events to the ERP in the outbox, and returns the
small facts the model's gateways branch on. Thresholds come from the rulesets; the model's
element properties carry only timer cadences and escalation targets, which analysts own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import inventory
from domain import procurement as p2p
from domain.errors import BusinessError, InvalidInput
from domain.fields import (
    cents_at,
    date_at,
    decimal_at,
    numbered_lines,
    optional_text_at,
    positive_int_at,
)
from domain.journal import AccountMap, Line, reverse
from domain.records import JournalEntry
from engine import decisions as engine_decisions
from engine.definitions.durations import timer_problem
from engine.errors import Forbidden
from engine.handlers.postings import announce, post_entry
from engine.services import ServiceCall, ServiceRegistry
from engine.store.tables import CorrelationAlias, HumanTask, TaskCandidate
from rules import procurement as rules_p2p
from rules.decision import Decision
from rules.escalation import WaitingItem, decide_escalation
from rules.service import RulesService
from rules.udi import UdiError, normalize_gtin, parse_udi

CENT = Decimal("0.01")
RECEIPT_RULESET = "goods_receipt"
EXCEPTION_RULESET = "invoice_exception"
APPROVAL_TASK = "approve_requisition"
# A reason travels in the `po.closed` event and the process variables, as a hold's does.
MAX_CLOSE_REASON = 400


# --- plumbing -------------------------------------------------------------------------------


def rules_of(execution: Any) -> RulesService:
    service = getattr(execution.rules, "rules", None)
    if not isinstance(service, RulesService):
        raise LookupError("procure-to-pay needs the rules service wired into the runtime")
    return service


def record_decision(execution: Any, element_id: str | None, decision: Decision) -> int:
    return engine_decisions.record_decision(execution, element_id, decision.to_record()).id


def _decide(call: ServiceCall, decision: Decision) -> Decision:
    record_decision(call.execution, call.element_id, decision)
    return decision


def _emit(call: ServiceCall, event: str, payload: dict[str, Any], suffix: str = "") -> None:
    """Outbox row with a key stable per task and subject, so one task may send several."""
    key = f"{call.task_id}:{event}:{suffix}" if suffix else f"{call.task_id}:{event}"
    call.execution.emit(event, {"business_key": call.business_key, **payload}, key=key)


def _signed(account: str, amount: Decimal, dims: Mapping[str, str | None]) -> Line:
    """A debit for a positive amount, a credit for a negative one (variances go both ways)."""
    if amount >= 0:
        return Line(account, debit=amount, dims=dims)
    return Line(account, credit=-amount, dims=dims)


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def _as_of(call: ServiceCall) -> date:
    return call.now.date()


def gtin_at(value: Any, field: str) -> str:
    try:
        return normalize_gtin(str(value or ""))
    except UdiError as exc:
        raise InvalidInput(field, str(exc)) from None


def _message(call: ServiceCall, name: str) -> dict[str, Any]:
    payload = call.variables.get(name)
    if not isinstance(payload, dict):
        raise p2p.ProcurementError(name, "the message payload must be an object")
    return payload


def _po(call: ServiceCall) -> p2p.PurchaseOrder:
    return p2p.require_po(call.session, call.variables["po_no"])


def _refuse_other_po(call: ServiceCall, message: Mapping[str, Any], name: str, po_no: str) -> None:
    """A message whose payload names another PO than the one it was correlated to is refused:
    applied here, a receipt, invoice, payment or closure meant for one PO changed another.

    Either number of this PO will do (the ERP's own is an alias, see `adopt_erp_po_number`),
    and a payload without `po_no` is taken as meant for the PO it was correlated to.
    """
    named = message.get("po_no")
    if named is None or named == "":
        return
    if isinstance(named, bool) or not isinstance(named, str | int):
        raise p2p.ProcurementError(f"{name}.po_no", "must be a PO number")
    named = str(named).strip()
    if named == po_no:
        return
    alias = call.session.get(CorrelationAlias, named[:64])
    if alias is not None and alias.canonical == po_no:
        return
    raise p2p.ProcurementError(
        f"{name}.po_no", f"names PO {named[:64]}, but the message was correlated to PO {po_no}"
    )


def _po_dims(po: p2p.PurchaseOrder, **extra: str | None) -> dict[str, str | None]:
    return {
        "supplier_id": po.supplier_id,
        "po_no": po.po_no,
        "cost_centre": po.cost_center,
        **extra,
    }


# --- requisition and approval chain ---------------------------------------------------------


def planned_po_no(requisition: dict[str, Any], req_no: str) -> str:
    return str(requisition.get("po_no") or f"PO-{req_no}")


def receive_requisition(call: ServiceCall) -> dict[str, Any]:
    """Store the requisition and ask the `procurement` ruleset for the approval chain."""
    try:
        requisition, _ = p2p.register_requisition(
            call.session,
            call.variables.get("requisition"),
            instance_id=call.instance_id,
            now=call.now,
        )
    except p2p.RequisitionTaken:
        raise
    except InvalidInput as exc:
        # Bad data from the ERP: no retry can fix it, so the model refuses it (not an incident).
        raise BusinessError("requisition_invalid", str(exc)) from exc
    p2p.require_supplier(call.session, requisition.supplier_id)
    chain, decision = rules_p2p.approval_chain(
        rules_of(call.execution),
        amount=requisition.amount,
        category=requisition.category,
        as_of=_as_of(call),
    )
    _decide(call, decision)
    requisition.approval_chain = list(chain)
    # Timer cadences default to the element's properties; a start variable may override them,
    # and one the timer could not read is refused now rather than an incident at the timer.
    cadences = {}
    for name, cycle in (("approval_escalation_cycle", True), ("payment_recheck_after", False)):
        given = call.variables.get(name)
        problem = None if given is None else timer_problem(given, cycle)
        if problem:
            raise p2p.ProcurementError(name, problem)
        cadences[name] = given or call.properties.get(name)
    missing = [name for name, value in cadences.items() if not value]
    if missing:
        raise p2p.ProcurementError(call.element_id, f"model property {missing[0]} is not set")
    return {
        "req_no": requisition.req_no,
        # Known from here on, so that `po_closed` is correlated by it from the start.
        "po_no": planned_po_no(call.variables["requisition"], requisition.req_no),
        "requester": requisition.requester,
        "requisition_amount": str(requisition.amount),
        "approval_chain": list(chain),
        "approval_step": 0,
        "approval_group": chain[0] if chain else None,
        "approval_rejected": False,
        **cadences,
    }


def refuse_invalid_requisition(call: ServiceCall) -> dict[str, Any]:
    """Tell the ERP which field made the requisition unusable."""
    payload = call.variables.get("requisition")
    try:
        p2p.check_requisition(call.session, payload, call.instance_id)
        field, reason = "requisition", "invalid"
    except InvalidInput as exc:
        field, reason = exc.field, exc.message
    req_no = payload.get("req_no") if isinstance(payload, dict) else None
    _emit(
        call,
        "requisition.rejected",
        {
            "req_no": req_no,
            "reason": f"{field} {reason}",
            "errors": [{"field": field, "message": reason}],
        },
    )
    return {"requisition_error": {"field": field, "message": reason}}


def record_approval(call: ServiceCall) -> dict[str, Any]:
    """Record the step just decided; a rejection ends the requisition."""
    req_no = call.variables["req_no"]
    step = int(call.variables["approval_step"])
    chain = list(call.variables["approval_chain"])
    decision = call.variables.get("decision")
    p2p.record_approval(
        call.session,
        req_no,
        step=step + 1,
        approver_group=chain[step],
        approver=call.execution.actor or "unknown",
        decision=decision,
        comment=str(call.variables.get("comment") or ""),
        at=call.now,
    )
    if decision != "approve":
        requisition = call.session.get(p2p.Requisition, req_no)
        requisition.status = "rejected"
        _emit(
            call,
            "requisition.rejected",
            {"req_no": req_no, "rejected_by": call.execution.actor, "group": chain[step]},
        )
        return {"approval_rejected": True, "approval_group": None}
    following = step + 1
    return {
        "approval_step": following,
        "approval_group": chain[following] if following < len(chain) else None,
    }


def _escalation_targets(text: str) -> dict[str, str]:
    """`dept_manager>finance_director, finance_director>cfo` as a mapping."""
    pairs = (part.split(">", 1) for part in text.split(",") if ">" in part)
    return {source.strip(): target.strip() for source, target in pairs}


def escalate_approval(call: ServiceCall) -> dict[str, Any]:
    """An approval waits too long: the `escalation` ruleset decides remind / escalate / notify."""
    session = call.session
    row = session.scalar(
        select(HumanTask).where(
            HumanTask.instance_id == call.instance_id,
            HumanTask.element_id == APPROVAL_TASK,
            HumanTask.status == "open",
        )
    )
    if row is None:
        return {}
    group = call.variables.get("approval_group") or ""
    target = _escalation_targets(call.properties.get("escalate_to", "")).get(group, "")
    step = decide_escalation(
        rules_of(call.execution),
        WaitingItem(
            opened_on=row.created_at.date(),
            sla_business_days=int(call.properties.get("sla_business_days", "0")),
            level=row.escalation_level or 0,
            escalate_to=target or group,
        ),
        _as_of(call),
    )
    _decide(call, step.decision)
    if step.level == (row.escalation_level or 0):
        return {}
    row.escalation_level = step.level
    subject = {"req_no": call.variables.get("req_no"), "task_id": row.id, "group": group}
    if step.remind_assignee:
        _emit(call, "approval.reminded", subject, suffix=str(step.level))
    if step.escalate_to and step.escalate_to not in row.candidate_groups:
        # The next tier may now act too; the original group keeps the task.
        row.candidate_groups = [*row.candidate_groups, step.escalate_to]
        session.add(TaskCandidate(task_id=row.id, kind="group", name=step.escalate_to))
        _emit(call, "approval.escalated", {**subject, "to": step.escalate_to}, suffix="esc")
    if step.notify_process_owner:
        _emit(call, "approval.owner_notified", subject, suffix="owner")
    return {}


def issue_purchase_order(call: ServiceCall) -> dict[str, Any]:
    """The chain is complete: approve the requisition and send the PO to the ERP."""
    payload = call.variables["requisition"]
    requisition = call.session.get(p2p.Requisition, call.variables["req_no"])
    lines = p2p.parse_requisition_lines(payload.get("lines"))
    approvers = p2p.approvers_so_far(call.session, requisition.req_no)
    _emit(
        call,
        "requisition.approved",
        {"req_no": requisition.req_no, "approvers": approvers, "chain": requisition.approval_chain},
    )
    min_shelf_life = payload.get("min_shelf_life_days")
    if min_shelf_life is None:
        _, parameters = rules_of(call.execution).parameters(RECEIPT_RULESET, _as_of(call))
        min_shelf_life = parameters["p_default_min_shelf_life_days"]
    po_no = planned_po_no(payload, requisition.req_no)
    po = p2p.issue_purchase_order(
        call.session,
        requisition,
        lines,
        po_no=po_no,
        min_shelf_life_days=int(min_shelf_life),
        now=call.now,
    )
    # Built from what is in hand: a new PO has no receipts or invoices to read back.
    _emit(
        call,
        "po.issued",
        {
            "po_no": po.po_no,
            "req_no": po.req_no,
            "supplier_id": po.supplier_id,
            "currency": po.currency,
            "cost_center": po.cost_center,
            "min_shelf_life_days": po.min_shelf_life_days,
            "lines": [p2p.po_line_as_dict(line) for line in lines],
        },
    )
    return {"po_no": po_no, "po_fully_received": False}


# --- goods receipt and incoming inspection --------------------------------------------------


def _udi_facts(line: Mapping[str, Any], gtin: str, lot: str, expiry: date, as_of: date):
    """(valid, matches line): the UDI must parse and agree with the line's GTIN, lot, expiry."""
    text = line.get("udi")
    if not text:
        return False, False
    try:
        # Strict, as at shipment: a day-00 expiry after the cut-over does not read (DOMAIN §3).
        udi = parse_udi(str(text), reference_date=as_of, strict=True)
    except UdiError:
        return False, False
    matches = udi.gtin == gtin and udi.lot == lot and udi.expiry in (None, expiry)
    return True, matches


def _inspection_state(session: Session, po_no: str, queue: list[int]) -> dict[str, Any]:
    if not queue:
        return {
            "inspection_queue": [],
            "inspection_lot": None,
            "po_fully_received": p2p.fully_received(session, po_no),
        }
    row = p2p.receipt_line(session, queue[0])
    return {
        "inspection_queue": queue,
        "inspection_lot": {
            "receipt_line_id": row.id,
            "gtin": row.gtin,
            "lot": row.lot,
            "qty": row.qty,
            "expiry_date": row.expiry_date.isoformat(),
        },
    }


def _refuse_over_delivery(
    where: str, po_line: p2p.PurchaseOrderLine | None, in_stock: dict[int, int], qty: int
) -> None:
    """Count an accepted lot against its PO line; more than was ordered is refused.

    Nothing beyond the PO may enter stock or GR/IR: the surplus was never approved, and the
    three-way match would let an invoice for it through. Lots rejected at receipt or returned
    after inspection do not count, since their goods went back to the vendor.
    """
    if po_line is None:  # the receipt ruleset rejects a line the PO does not have
        return
    total = in_stock.get(po_line.line_no, 0) + qty
    if total > po_line.qty:
        raise p2p.ProcurementError(
            f"{where}.qty",
            f"would bring PO line {po_line.line_no} to {total} received, "
            f"over the {po_line.qty} ordered",
        )
    in_stock[po_line.line_no] = total


def check_goods_receipt(call: ServiceCall, accounts: AccountMap) -> dict[str, Any]:
    """Parse each lot's UDI, check shelf life against the PO minimum, store accepted lots in
    quarantine, reject short-dated ones back to the vendor, and post inventory / GR-IR."""
    session, as_of = call.session, _as_of(call)
    message = _message(call, "goods_received")
    po = _po(call)
    _refuse_other_po(call, message, "goods_received", po.po_no)
    # Limits are the columns' (domain/procurement.py): past them PostgreSQL refuses the row.
    receipt_no = optional_text_at(message, "receipt_no", "goods_received.receipt_no", 64)
    if not receipt_no:
        raise p2p.ProcurementError("goods_received.receipt_no", "is required")
    already = session.scalar(
        select(p2p.GoodsReceiptLine.id).where(
            p2p.GoodsReceiptLine.po_no == po.po_no, p2p.GoodsReceiptLine.receipt_no == receipt_no
        )
    )
    if already is not None:  # the ERP sent the same receipt again: nothing new arrived
        return _inspection_state(session, po.po_no, [])
    po_lines = p2p.po_lines(session, po.po_no)
    in_stock = p2p.received_quantities(session, po.po_no)
    rules = rules_of(call.execution)
    accepted: list[p2p.GoodsReceiptLine] = []
    received = numbered_lines(message.get("lines"), "goods_received.lines", also=("lot",))
    for where, line in received:
        line_no = line["line_no"]
        gtin = gtin_at(line.get("gtin"), f"{where}.gtin")
        lot = optional_text_at(line, "lot", f"{where}.lot", 64) or ""
        optional_text_at(line, "udi", f"{where}.udi", 200)
        qty = positive_int_at(line.get("qty"), f"{where}.qty")
        expiry = date_at(line.get("expiry_date"), f"{where}.expiry_date")
        po_line = po_lines.get(line_no)
        ordered_gtin = po_line.gtin.zfill(14) if po_line is not None and po_line.gtin else None
        if ordered_gtin not in (None, gtin):
            # The receipt contradicts the PO, as an over-delivery does: an ERP books a receipt
            # against the PO item's product, so this is a wrong line or GTIN in the message,
            # for the ERP to correct. Taken, another product was counted as the one ordered.
            raise p2p.ProcurementError(
                f"{where}.gtin", f"is not the GTIN {ordered_gtin} of PO line {line_no}"
            )
        valid, matches = _udi_facts(line, gtin, lot, expiry, as_of)
        decision = _decide(
            call,
            rules.evaluate(
                RECEIPT_RULESET,
                {
                    "po_number": po.po_no,
                    "line_ref": str(line_no),
                    "lot": lot,
                    "udi_valid": valid,
                    "udi_matches_line": matches and po_line is not None and qty > 0,
                    "remaining_shelf_life_days": (expiry - as_of).days,
                    "min_shelf_life_days": po.min_shelf_life_days,
                },
                as_of,
            ),
        )
        unit_cost = po_line.unit_price if po_line is not None else Decimal(0)
        row = p2p.record_receipt_line(
            session,
            po_no=po.po_no,
            receipt_no=receipt_no,
            line_no=line_no,
            gtin=gtin,
            lot=lot,
            expiry_date=expiry,
            udi=line.get("udi"),
            qty=qty,
            unit_cost=unit_cost,
            status="quarantined" if decision.outcome == "pass" else "rejected",
            reason="; ".join(f.reason for f in decision.fired),
            received_at=call.now,
        )
        subject = {"po_no": po.po_no, "receipt_no": receipt_no, "gtin": gtin, "lot": lot}
        if row.status == "rejected":
            _emit(call, "lot.rejected", {**subject, "reason": row.reason}, suffix=f"{gtin}:{lot}")
            continue
        _refuse_over_delivery(where, po_line, in_stock, qty)
        inventory.receive_lot(
            session, gtin, lot, qty=qty, expiry_date=expiry, unit_cost=unit_cost, actor="p2p"
        )
        accepted.append(row)
        _emit(
            call,
            "lot.quarantined",
            {**subject, "qty": qty, "expiry_date": expiry.isoformat()},
            suffix=f"{gtin}:{lot}",
        )
    if accepted:
        lines = []
        for row in accepted:
            dims = _po_dims(po, lot=row.lot, gtin=row.gtin, udi=row.udi)
            amount = _cents(row.unit_cost * row.qty)
            lines += [
                Line("inventory", debit=amount, dims=dims),
                Line("grir", credit=amount, dims=dims),
            ]
        post_entry(
            call,
            accounts,
            kind="goods_receipt",
            source_key=f"gr:{po.po_no}:{receipt_no}",
            lines=lines,
            description=f"Goods receipt {receipt_no} for {po.po_no}",
        )
    return _inspection_state(session, po.po_no, [row.id for row in accepted])


def record_inspection(call: ServiceCall, accounts: AccountMap) -> dict[str, Any]:
    """QA's verdict on one lot: pass releases it, fail returns it to the vendor."""
    session = call.session
    queue = list(call.variables.get("inspection_queue") or [])
    row = p2p.receipt_line(session, queue.pop(0))
    po = p2p.require_po(session, row.po_no)
    inspector = call.execution.actor or "unknown"
    comment = str(call.variables.get("comment") or "")
    row.inspected_by = inspector
    subject = {"po_no": po.po_no, "receipt_no": row.receipt_no, "gtin": row.gtin, "lot": row.lot}
    # The lot is one record: it stays in quarantine while another receipt of it waits for QA.
    pending = p2p.others_await_inspection(session, row)
    lot_row = inventory.require_lot(session, row.gtin, row.lot, lock=True)
    if call.variables.get("result") == "pass":
        row.status = "released"
        try:
            if not pending:
                inventory.set_status(
                    session,
                    row.gtin,
                    row.lot,
                    "released",
                    reason="incoming inspection passed",
                    actor=inspector,
                )
                _emit(call, "lot.released", {**subject, "inspected_by": inspector})
        except inventory.RecallIsFinal as refused:
            # Units received into a recalled lot never ship, whatever the inspection found.
            row.status, row.reason = "rejected", str(refused)
            _emit(call, "lot.rejected", {**subject, "reason": row.reason})
    else:
        row.status = "returned"
        row.reason = comment or "failed incoming inspection"
        lot_row.qty_on_hand -= row.qty
        # Only this receipt's units go back; units of the lot that passed before stay released.
        kept = lot_row.qty_on_hand > 0 and inventory.ever_released(session, lot_row)
        if not pending:
            inventory.set_status(
                session,
                row.gtin,
                row.lot,
                "released" if kept else "returned",
                reason=row.reason,
                actor=inspector,
            )
        dims = _po_dims(po, lot=row.lot, gtin=row.gtin, udi=row.udi)
        amount = _cents(row.unit_cost * row.qty)
        # The return undoes the receipt's posting for this lot: GR/IR against inventory.
        post_entry(
            call,
            accounts,
            kind="goods_return",
            source_key=f"return:{po.po_no}:{row.id}",
            lines=[
                Line("grir", debit=amount, dims=dims),
                Line("inventory", credit=amount, dims=dims),
            ],
            description=f"Return to vendor of lot {row.lot} ({row.reason})",
        )
        _emit(call, "lot.returned", {**subject, "qty": row.qty, "reason": row.reason})
    session.flush()
    return _inspection_state(session, po.po_no, queue)


# --- vendor invoice -------------------------------------------------------------------------


def _invoice(call: ServiceCall) -> p2p.VendorInvoice:
    return p2p.require_invoice(call.session, int(call.variables["invoice_id"]))


def _not_negative(value: Any, field: str) -> Decimal:
    """An invoice amount: a negative one passed the match and then unbalanced its posting."""
    amount = decimal_at(value, field)
    if amount < 0:
        raise p2p.ProcurementError(field, "must not be negative")
    return amount


def check_duplicate_invoice(call: ServiceCall) -> dict[str, Any]:
    """Register the invoice and look for a duplicate first, across fiscal years."""
    session = call.session
    message = _message(call, "vendor_invoice")
    po = _po(call)
    _refuse_other_po(call, message, "vendor_invoice", po.po_no)
    # The column widths (domain/procurement.py): past them PostgreSQL refuses the row.
    invoice_no = optional_text_at(message, "invoice_no", "vendor_invoice.invoice_no", 64) or ""
    invoice_no = invoice_no.strip()
    if not invoice_no:
        raise p2p.ProcurementError("vendor_invoice.invoice_no", "is required")
    entered_by = optional_text_at(message, "entered_by", "vendor_invoice.entered_by", 200)
    lines = p2p.parse_invoice_lines(message.get("lines"), p2p.po_lines(session, po.po_no))
    invoice = p2p.register_invoice(
        session,
        po,
        invoice_no=invoice_no,
        normalised_no=rules_p2p.normalise_invoice_number(invoice_no),
        invoice_date=date_at(message.get("invoice_date"), "vendor_invoice.invoice_date"),
        lines=lines,
        tax_amount=_not_negative(message.get("tax_amount", "0"), "vendor_invoice.tax_amount"),
        gross_total=_not_negative(message.get("total"), "vendor_invoice.total"),
        entered_by=entered_by,
        instance_id=call.instance_id,
        now=call.now,
    )
    prior = [
        rules_p2p.PriorInvoice(
            invoice_id=str(row.id),
            supplier_id=row.supplier_id,
            invoice_number=row.invoice_no,
            invoice_date=row.invoice_date,
            currency=row.currency,
            gross_amount=row.gross_total,
            # A rejected or superseded invoice was never owed, so its resend is no duplicate.
            cancelled=row.status in ("rejected", "superseded"),
        )
        for row in p2p.prior_invoices(session, invoice)
    ]
    decision = _decide(
        call,
        rules_p2p.check_duplicate_invoice(
            rules_of(call.execution),
            as_of=_as_of(call),
            supplier_id=po.supplier_id,
            invoice_number=invoice_no,
            invoice_date=invoice.invoice_date,
            currency=invoice.currency,
            gross_amount=invoice.gross_total,
            prior_invoices=prior,
        ),
    )
    suspected = decision.outcome in ("hold", "reject")
    if suspected:
        invoice.status = "duplicate_hold"
    return {
        "invoice_id": invoice.id,
        "invoice_no": invoice_no,
        "invoice_entered_by": invoice.entered_by,
        "duplicate_suspected": suspected,
        "duplicate_reasons": [f.reason for f in decision.fired],
        "invoice_rejected": False,
    }


def record_duplicate_review(call: ServiceCall) -> dict[str, Any]:
    invoice = _invoice(call)
    if call.variables.get("verdict") == "duplicate":
        invoice.status = "rejected"
        _emit(call, "invoice.rejected", {"invoice_no": invoice.invoice_no, "reason": "duplicate"})
        return {"invoice_rejected": True}
    invoice.status = "registered"
    return {"invoice_rejected": False}


def _match_inputs(session: Session, invoice: p2p.VendorInvoice, po: p2p.PurchaseOrder):
    received = p2p.received_quantities(session, po.po_no)
    invoiced = p2p.invoiced_quantities(session, po.po_no, invoice.id)
    po_lines = p2p.po_lines(session, po.po_no)
    order = rules_p2p.PurchaseOrder(
        po_number=po.po_no,
        is_open=po.status == "open",
        lines={
            str(n): rules_p2p.PurchaseOrderLine(
                line_ref=str(n),
                unit_price=line.unit_price,
                quantity_received=Decimal(received.get(n, 0)),
                quantity_previously_invoiced=Decimal(invoiced.get(n, 0)),
            )
            for n, line in po_lines.items()
        },
    )
    lines = tuple(
        rules_p2p.InvoiceLine(
            line_ref=str(line.line_no),
            po_line_ref=str(line.line_no),
            quantity=Decimal(line.qty),
            unit_price=line.unit_price,
        )
        for line in p2p.invoice_lines(session, invoice.id)
    )
    document = rules_p2p.VendorInvoice(
        supplier_id=invoice.supplier_id,
        invoice_number=invoice.invoice_no,
        invoice_date=invoice.invoice_date,
        currency=invoice.currency,
        po_number=po.po_no,
        net_total=invoice.net_total,
        lines=lines,
    )
    return order, document, po_lines, received, invoiced


def match_invoice(call: ServiceCall, accounts: AccountMap) -> dict[str, Any]:
    """Three-way match per line and in total; post the invoice, with a payment block when out
    of tolerance (DOMAIN §4, §5)."""
    session = call.session
    invoice = _invoice(call)
    po = p2p.require_po(session, invoice.po_no)
    supplier = p2p.require_supplier(session, po.supplier_id)
    order, document, po_lines, received, invoiced = _match_inputs(session, invoice, po)
    match = rules_p2p.three_way_match(
        rules_of(call.execution),
        document,
        order,
        rules_p2p.SupplierStanding(supplier.id, supplier.blocked, supplier.bank_account_trusted),
        as_of=_as_of(call),
    )
    for _, decision in match.line_decisions:
        _decide(call, decision)
    _decide(call, match.invoice_decision)

    dims = _po_dims(po, invoice_no=invoice.invoice_no)
    lines: list[Line] = []
    matched_total = Decimal(0)
    over_billed = Decimal(0)
    for line in document.lines:
        po_line = po_lines.get(int(line.line_ref))
        po_price = po_line.unit_price if po_line is not None else Decimal(0)
        matched = _cents(po_price * line.quantity)
        matched_total += matched
        lines.append(Line("grir", debit=matched, dims={**dims, "gtin": po_line and po_line.gtin}))
        number = int(line.line_ref)
        excess = invoiced.get(number, 0) + line.quantity - received.get(number, 0)
        over_billed += max(excess, Decimal(0)) * po_price
    rounding = _cents(match.rounding_difference)
    # What the lines and the header differ from the PO prices, less the rounding accepted: the
    # remainder of the invoice's net, so the entry balances to the cent even when the vendor's
    # lines have sub-cent amounts. A header difference not accepted as rounding is a variance.
    price_difference = invoice.gross_total - invoice.tax_amount - rounding - matched_total
    lines += [
        _signed("price_difference", price_difference, dims),
        _signed("rounding", rounding, dims),
        Line("input_vat", debit=invoice.tax_amount, dims=dims),
        Line("ap", credit=invoice.gross_total, dims=dims),
    ]
    entry = post_entry(
        call,
        accounts,
        kind="vendor_invoice",
        source_key=f"invoice:{invoice.id}",
        lines=lines,
        description=f"Vendor invoice {invoice.invoice_no} for {po.po_no}",
    )
    invoice.journal_entry_id = entry.id
    reasons = [f.reason for _, d in match.line_decisions for f in d.fired if f.outcome != "pass"]
    reasons += [f.reason for f in match.invoice_decision.fired if f.outcome != "pass"]
    variance = _cents(abs(price_difference) + over_billed)
    subject = {"po_no": po.po_no, "invoice_no": invoice.invoice_no}
    if match.payment_block:
        p2p.set_payment_block(session, invoice, "; ".join(reasons), call.now)
        _emit(call, "invoice.blocked", {**subject, "reasons": reasons, "variance": str(variance)})
    else:
        invoice.status = "posted"
    return {
        "invoice_blocked": match.payment_block,
        "exception_reasons": reasons,
        "invoice_variance": str(variance),
        "await_new_invoice": False,
        "needs_manager": False,
    }


def _withdraw_invoice(call: ServiceCall, status: str, event: str, reason: str) -> None:
    """Credit note requested or invoice rejected: reverse its posting and wait for another."""
    session = call.session
    invoice = _invoice(call)
    if invoice.journal_entry_id is not None:
        entry = session.get(JournalEntry, invoice.journal_entry_id)
        mirror = reverse(session, entry, reason)
        announce(call, mirror)
    p2p.release_payment_blocks(
        session, invoice, by=call.execution.actor or "unknown", reason=reason, at=call.now
    )
    invoice.status = status
    _emit(call, event, {"po_no": invoice.po_no, "invoice_no": invoice.invoice_no, "reason": reason})


def _release_invoice(call: ServiceCall, reason: str) -> None:
    invoice = _invoice(call)
    by = call.execution.actor or "unknown"
    p2p.release_payment_blocks(call.session, invoice, by=by, reason=reason, at=call.now)
    _emit(
        call,
        "invoice.released",
        {"po_no": invoice.po_no, "invoice_no": invoice.invoice_no, "released_by": by},
    )


def record_exception(call: ServiceCall) -> dict[str, Any]:
    """The AP clerk's choice on an out-of-tolerance invoice."""
    resolution = call.variables.get("resolution")
    comment = str(call.variables.get("comment") or "")
    decided = {"exception_resolved_by": call.execution.actor}
    if resolution == "credit_note":
        _withdraw_invoice(
            call, "superseded", "invoice.credit_note_requested", comment or resolution
        )
        return {**decided, "await_new_invoice": True}
    if resolution != "accept":
        _withdraw_invoice(call, "rejected", "invoice.rejected", comment or "rejected by AP")
        return {**decided, "await_new_invoice": True}
    invoice = _invoice(call)
    decision = _decide(
        call,
        rules_of(call.execution).evaluate(
            EXCEPTION_RULESET,
            {
                "invoice_number": invoice.invoice_no,
                "variance_amount": Decimal(call.variables["invoice_variance"]),
            },
            _as_of(call),
        ),
    )
    group = decision.outputs.get("approver_group")
    if group:
        return {**decided, "needs_manager": True, "variance_approval_group": group}
    _release_invoice(call, comment or "variance accepted")
    return {**decided, "needs_manager": False}


def record_variance_approval(call: ServiceCall) -> dict[str, Any]:
    comment = str(call.variables.get("comment") or "")
    if call.variables.get("decision") == "approve":
        _release_invoice(call, comment or "variance approved")
        return {"await_new_invoice": False}
    _withdraw_invoice(call, "rejected", "invoice.rejected", comment or "variance refused")
    return {"await_new_invoice": True}


# --- payment --------------------------------------------------------------------------------


def schedule_payment(call: ServiceCall) -> dict[str, Any]:
    """Pay on the discount date when the discount beats the cost of capital, else net."""
    invoice = _invoice(call)
    supplier = p2p.require_supplier(call.session, invoice.supplier_id)
    terms = rules_p2p.PaymentTerms(
        net_days=supplier.net_days,
        discount_pct=supplier.discount_pct,
        discount_days=supplier.discount_days,
    )
    schedule = rules_p2p.schedule_payment(
        rules_of(call.execution), terms, baseline_date=invoice.invoice_date, as_of=_as_of(call)
    )
    _decide(call, schedule.decision)
    discount = (
        _cents(invoice.gross_total * terms.discount_pct / 100) if schedule.take_discount else 0
    )
    return {
        "pay_on": schedule.pay_on.isoformat(),
        "pay_on_at": datetime.combine(schedule.pay_on, datetime.min.time()).isoformat() + "+00:00",
        "take_discount": schedule.take_discount,
        "discount_amount": str(discount),
    }


def release_payment(call: ServiceCall) -> dict[str, Any]:
    """Payment runs only with no open block, an unblocked supplier and a trusted bank account."""
    session = call.session
    invoice = _invoice(call)
    supplier = p2p.require_supplier(session, invoice.supplier_id)
    holds = [block.reason for block in p2p.open_blocks(session, invoice.id)]
    if supplier.blocked:
        holds.append(f"supplier {supplier.id} is blocked")
    if not supplier.bank_account_trusted:
        holds.append(f"the bank account of supplier {supplier.id} is not trusted")
    if holds:
        call.execution.record("payment_held", call.element_id, reasons=holds)
        return {"payment_released": False, "payment_hold_reasons": holds}
    amount = invoice.gross_total - Decimal(call.variables.get("discount_amount") or "0")
    _emit(
        call,
        "payment.requested",
        {
            "po_no": invoice.po_no,
            "invoice_no": invoice.invoice_no,
            "supplier_id": supplier.id,
            "currency": invoice.currency,
            "amount": str(amount),
            "gross_amount": str(invoice.gross_total),
            "discount": call.variables.get("discount_amount") or "0",
            "pay_on": call.variables.get("pay_on"),
        },
    )
    return {"payment_released": True, "payment_hold_reasons": []}


def post_payment(call: ServiceCall, accounts: AccountMap) -> dict[str, Any]:
    """AP against bank; the discount taken is credited to its own account (DOMAIN §5)."""
    session = call.session
    message = _message(call, "payment_executed")
    invoice = _invoice(call)
    po = p2p.require_po(session, invoice.po_no)
    _refuse_other_po(call, message, "payment_executed", po.po_no)
    if message.get("invoice_no") not in (None, "", invoice.invoice_no):
        raise p2p.ProcurementError(
            "payment_executed.invoice_no", f"is not this PO's invoice ({invoice.invoice_no})"
        )
    paid = cents_at(message.get("amount"), "payment_executed.amount")
    # Whatever the payment falls short of the total is posted as the discount taken, so only
    # the discount the decision allowed when it picked the discount date may be missing
    # (`payment.requested`): a part payment was booked as a discount and closed the PO. The
    # full total is the ERP forgoing that discount; an overpayment is the ERP's to book.
    requested = invoice.gross_total - Decimal(call.variables.get("discount_amount") or "0")
    if paid not in (requested, invoice.gross_total):
        raise p2p.ProcurementError(
            "payment_executed.amount",
            f"must be the {requested} requested"
            + ("" if requested == invoice.gross_total else f" or the total {invoice.gross_total}"),
        )
    paid_on = date_at(message.get("paid_on"), "payment_executed.paid_on", call.now.date())
    dims = _po_dims(po, invoice_no=invoice.invoice_no)
    post_entry(
        call,
        accounts,
        kind="vendor_payment",
        source_key=f"payment:{invoice.id}",
        lines=[
            Line("ap", debit=invoice.gross_total, dims=dims),
            Line("bank", credit=paid, dims=dims),
            _signed("discount", paid - invoice.gross_total, dims),
        ],
        description=f"Payment of {invoice.invoice_no} on {paid_on.isoformat()}",
    )
    invoice.status = "paid"
    # A vendor may bill a PO in parts: until every line is billed, the PO stays open and the
    # process waits for the next invoice (each matched against what earlier ones billed).
    fully = p2p.fully_invoiced(session, po.po_no)
    if fully:
        po.status = "closed"
    return {"paid_amount": str(paid), "po_fully_invoiced": fully}


def close_purchase_order(call: ServiceCall) -> dict[str, Any]:
    """The ERP closed the PO short: what is still unbilled will not be billed.

    Without it a PO billed for less than it received would wait for the next invoice forever.
    The reason is required; the `po.closed` event gives each line's ordered, received and
    billed quantities, so finance can clear what stays on GR/IR. Refused (the message with
    it) while an invoice or an inspection is open, since closing would orphan it.
    """
    message = _message(call, "po_closed")
    _refuse_other_po(call, message, "po_closed", str(call.variables.get("po_no") or ""))
    reason = str(message.get("reason") or "").strip()
    if not reason:
        raise p2p.ProcurementError("po_closed.reason", "is required")
    if len(reason) > MAX_CLOSE_REASON:
        too_long = f"must be at most {MAX_CLOSE_REASON} characters"
        raise p2p.ProcurementError("po_closed.reason", too_long)
    po = call.session.get(p2p.PurchaseOrder, call.variables.get("po_no") or "")
    if po is None:
        raise p2p.ProcurementError(
            "po_closed", "no PO has been issued yet; cancel the requisition's instance instead"
        )
    problem = p2p.close_short_problem(call.session, po.po_no)
    if problem:
        raise p2p.ProcurementError("po_closed", f"{problem}; close the PO once it is settled")
    billed = p2p.invoiced_quantities(call.session, po.po_no)
    received = p2p.received_quantities(call.session, po.po_no)
    # Every line as it stands: received but unbilled is what stays on GR/IR for finance;
    # ordered but unreceived is what the vendor will not deliver.
    lines = [
        {
            "line_no": n,
            "ordered": line.qty,
            "received": received.get(n, 0),
            "billed": billed.get(n, 0),
        }
        for n, line in p2p.po_lines(call.session, po.po_no).items()
    ]
    po.status = "closed"
    _emit(call, "po.closed", {"po_no": po.po_no, "reason": reason, "lines": lines})
    return {"po_closed": None, "po_close_reason": reason}


# --- segregation of duties at task completion -----------------------------------------------


def sod_guard(execution: Any, row: HumanTask, user: str, task_data: Mapping[str, Any]) -> None:
    """Refuse a completion that breaks segregation of duties (DOMAIN §4) with the reason.

    A delegate is checked as themselves and as the person they act for.
    """
    session = execution.uow.session
    action = (row.properties or {}).get("sod_action", "approve_requisition")
    # Whoever handed the task on, or holds it, is the person acted for (DOMAIN §4 delegation).
    acted_for = [p for p in (getattr(row, "delegated_by", None), row.assignee) if p and p != user]
    facts: dict[str, Any] = {
        "action": action,
        "actor": user,
        "on_behalf_of": acted_for[0] if acted_for else None,
    }
    if action == "approve_requisition":
        requisition = session.scalar(
            select(p2p.Requisition).where(p2p.Requisition.instance_id == row.instance_id)
        )
        if requisition is not None:
            facts["requester"] = requisition.requester
            facts["prior_approvers"] = p2p.approvers_so_far(session, requisition.req_no)
    elif action == "approve_invoice_exception":
        facts["invoice_entered_by"] = task_data.get("invoice_entered_by")
        resolved_by = task_data.get("exception_resolved_by")
        facts["prior_approvers"] = [resolved_by] if resolved_by else []
    decision = rules_p2p.check_segregation_of_duties(
        rules_of(execution), as_of=execution.now.date(), **facts
    )
    if decision.outcome == "reject":
        raise Forbidden(
            "segregation of duties: " + "; ".join(f.reason for f in decision.fired),
            [{"field": "actor", "message": f.reason} for f in decision.fired],
        )
    record_decision(execution, row.element_id, decision)


# --- wiring ---------------------------------------------------------------------------------


def account_map_from_env() -> AccountMap:
    return AccountMap.from_config(json.loads(os.environ.get("FLOWGATE_ACCOUNT_MAP") or "{}"))


def handlers(accounts: AccountMap) -> dict[str, Callable[[ServiceCall], dict[str, Any] | None]]:
    def posting(handler: Callable[[ServiceCall, AccountMap], dict[str, Any]]):
        return lambda call: handler(call, accounts)

    return {
        "p2p.requisition.receive": receive_requisition,
        "p2p.requisition.invalid": refuse_invalid_requisition,
        "p2p.approval.record": record_approval,
        "p2p.approval.escalate": escalate_approval,
        "p2p.po.issue": issue_purchase_order,
        "p2p.goods.receive": posting(check_goods_receipt),
        "p2p.goods.inspect": posting(record_inspection),
        "p2p.invoice.duplicate_check": check_duplicate_invoice,
        "p2p.invoice.duplicate_review": record_duplicate_review,
        "p2p.invoice.match": posting(match_invoice),
        "p2p.invoice.exception": record_exception,
        "p2p.invoice.variance_approval": record_variance_approval,
        "p2p.payment.schedule": schedule_payment,
        "p2p.payment.release": release_payment,
        "p2p.payment.post": posting(post_payment),
        "p2p.po.close": close_purchase_order,
    }


def adopt_erp_po_number(uow: Any, message: Any, reply: dict[str, Any]) -> None:
    """The ERP answered `po.issued` with its own PO number (DESIGN §4): take it.

    The PO keeps its flowgate number as the key; the ERP's number becomes an alias, so the
    ERP's `goods_received`, `vendor_invoice` and `payment_executed` may name either.
    """
    erp_no = str(reply.get("po_no") or "").strip()
    po_no = message.payload["po_no"]
    if not erp_no or erp_no == po_no:
        return
    if len(erp_no) > 64:
        raise ValueError(f"the ERP's po_no is longer than 64 characters: {erp_no[:80]}")
    session = uow.session
    taken = session.get(CorrelationAlias, erp_no)
    if taken is not None:
        if taken.canonical != po_no:
            raise ValueError(f"the ERP's PO number {erp_no} already names {taken.canonical}")
        return
    session.add(CorrelationAlias(alias=erp_no, canonical=po_no, instance_id=message.instance_id))
    p2p.require_po(session, po_no).erp_po_no = erp_no


def install(
    services: ServiceRegistry,
    guards: dict[str, Any],
    accounts: AccountMap | None = None,
    outbox_replies: dict[str, Any] | None = None,
) -> None:
    """Register the P2P topics (once per registry), the `sod` completion guard and the
    handler of the ERP's answer to `po.issued`."""
    for topic, handler in handlers(accounts or account_map_from_env()).items():
        if topic not in services:
            services.register(topic, handler)
    guards.setdefault("sod", sod_guard)
    if outbox_replies is not None:
        outbox_replies.setdefault("po.issued", adopt_erp_po_number)
