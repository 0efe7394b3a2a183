"""Service-task handlers of processes/order_to_cash.bpmn, bound by topic (DESIGN §2).

Each runs inside the engine command's transaction: it reads and writes the O2C records through
`call.session`, queues ERP events with `call.emit` and returns the small facts the model's
gateways look at. No threshold lives here: checks come from the `credit`, `shipment` and
`dunning` rulesets and their parameters; who may release a hold comes from the rules' `emit`.

Topics: o2c.register_order, credit.gather, credit.route, credit.approval, credit.escalate,
o2c.release_order,
o2c.prepayment, shipment.facts, shipment.collect, shipment.qa_release, shipment.override,
credit.recheck, shipment.request, shipment.udi_check, o2c.goods_issue, o2c.invoice,
o2c.payment, o2c.collections, o2c.close, o2c.reject, o2c.apply_change, o2c.cancel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from domain import sales
from domain.customers import Customer, get_customer
from domain.errors import BusinessError, InvalidInput
from domain.fields import cents_at, date_at, decimal_at, optional_text_at
from domain.inventory import Lot, fefo_lots, get_lot, issue_lot, require_lot, set_status
from domain.journal import AccountMap, Line, reverse
from domain.records import JournalEntry, JournalLine
from engine.decisions import record_decision, store_decision
from engine.handlers.postings import announce, post_entry
from rules.credit import CreditInput, CreditRelease, OpenItem, OpenOrder, credit_facts
from rules.credit import release_still_valid as credit_release_valid
from rules.escalation import DUNNING_KEY, ESCALATION_KEY, decide_dunning
from rules.model import OUTCOMES
from rules.shipment import (
    CustomerStanding,
    LotRecord,
    ShipmentLine,
    required_shelf_life_days,
    shipment_facts,
)
from rules.udi import UdiError, parse_udi

if TYPE_CHECKING:
    from engine.services import ServiceCall, ServiceRegistry
    from rules.service import RulesService

ZERO = Decimal("0.00")
APPROVAL_TASK = "approve_credit"
# The N-eyes approval; its idle timer shares the first approval's escalation service task.
SECOND_APPROVAL_TASK = "approve_credit_second"
# The model's cancellation (an interrupting event subprocess), which undoes the order; an
# admin cancel of an O2C instance is sent through it too (api/instances.py).
CANCEL_MESSAGE = "order_cancelled"
# The reason ends up in the reversing entries' description (400 characters with the order's).
CANCEL_REASON_MAX = 300
# An order number is used once: its invoice (INV-<order>) and receivable are keyed by it.
ENDED_ORDER_STATUSES = frozenset({"closed", "rejected", "cancelled"})
SHELF_LIFE_RULES = ("shelf_life_below_minimum", "shelf_life_below_agreed_minimum")
LOT_STATUS_RULES = frozenset({"lot_quarantined", "lot_not_released"})
# Every invoice marks its order's shipped units: built once, as the domain's hot reads are.
_SHIPPED_UNITS = select(sales.ShipmentUnit).where(
    sales.ShipmentUnit.order_no == bindparam("order_no")
)


def gather_credit(
    session: Session,
    rules: RulesService,
    customer: Customer,
    order_value: Decimal,
    as_of: date,
    exclude_order: str | None = None,
) -> dict[str, Any]:
    """The `credit` ruleset's facts from the records, with the parameters in force at `as_of`."""
    exposure = sales.open_exposure(session, customer.id, customer.currency, exclude_order)
    credit = CreditInput(
        customer_id=customer.id,
        currency=customer.currency,
        order_value=order_value,
        credit_limit=customer.credit_limit,
        next_review_on=customer.next_review_on or date.max,
        open_orders=tuple(OpenOrder(amount, ship) for amount, ship in exposure.open_orders),
        open_deliveries=exposure.open_deliveries,
        invoiced_not_posted=exposure.invoiced_unposted,
        open_items=tuple(OpenItem(amount, due) for amount, due in exposure.open_items),
        customer_blocked=customer.blocked,
        licence_expires_on=customer.license_expires_on,
        dunning_level=exposure.dunning_level,
        grade=customer.grade,
    )
    _, parameters = rules.parameters("credit", as_of)
    return credit_facts(credit, as_of, parameters)


def lot_record(lot: Lot) -> LotRecord:
    return LotRecord(
        gtin=lot.gtin,
        lot=lot.lot,
        expiry=lot.expiry_date,
        released=lot.status == "released",
        quarantined=lot.status in ("quarantined", "returned"),
        recalled=lot.status == "recalled",
        field_safety_action=lot.status == "fsca",
    )


def _standing(customer: Customer, account_on_hold: bool = False) -> CustomerStanding:
    return CustomerStanding(
        customer_id=customer.id,
        blocked=customer.blocked,
        # The order itself passed credit to get here; the account may be on hold since.
        credit_hold_open=account_on_hold,
        licence_expiry=customer.license_expires_on,
        min_shelf_life_days=customer.min_shelf_life_days,
    )


def _dims(order: sales.SalesOrder, **more: Any) -> dict[str, Any]:
    return {"customer_id": order.customer_id, "order_no": order.order_no, **more}


def _entries_of(session: Session, order_no: str) -> list[JournalEntry]:
    ids = select(JournalLine.entry_id).where(JournalLine.order_no == order_no)
    return list(
        session.scalars(
            select(JournalEntry).where(JournalEntry.id.in_(ids)).order_by(JournalEntry.id)
        )
    )


def n_eyes_guard(execution: Any, row: Any, user: str, task_data: dict[str, Any]) -> None:
    """Completion guard `n_eyes`: whoever approved the hold already may not approve again."""
    from engine.errors import Forbidden

    if user in (task_data.get("approvals") or []):
        raise Forbidden(f"{user} already approved this hold; N-eyes needs a different approver")


def _names_only(message: dict[str, Any], key: str, expected: str, field: str, says: str) -> None:
    """A message is routed by its correlation key (the order); a document number in it that
    names another means the ERP sent it to the wrong process, and acting on it would settle or
    ship someone else's work."""
    if message.get(key) not in (None, "", expected):
        raise InvalidInput(f"{field}.{key}", says)


@dataclass
class O2C:
    """The handlers, wired with the rules service and the account map (composition root)."""

    rules: RulesService
    accounts: AccountMap

    def register(self, services: ServiceRegistry) -> None:
        topics: dict[str, Callable[[ServiceCall], dict[str, Any] | None]] = {
            "o2c.register_order": self.register_order,
            "credit.gather": self.credit_gather,
            "credit.route": self.credit_route,
            "credit.approval": self.credit_approval,
            "credit.escalate": self.credit_escalate,
            "o2c.release_order": self.release_order,
            "o2c.prepayment": self.prepayment,
            "shipment.facts": self.shipment_facts,
            "shipment.collect": self.shipment_collect,
            "shipment.qa_release": self.qa_release,
            "shipment.override": self.shelf_life_override,
            "credit.recheck": self.credit_recheck,
            "shipment.request": self.request_shipment,
            "shipment.udi_check": self.udi_check,
            "o2c.goods_issue": self.goods_issue,
            "o2c.invoice": self.invoice,
            "o2c.payment": self.payment,
            "o2c.collections": self.collections,
            "o2c.dunning": self.dunning,
            "o2c.close": self.close,
            "o2c.reject": self.reject,
            "o2c.apply_change": self.apply_change,
            "o2c.cancel": self.cancel,
            "credit.risk_reviewed": self.risk_reviewed,
        }
        for topic, handler in topics.items():
            if topic not in services:
                services.register(topic, handler)

    # Order entry and credit ----------------------------------------------------------

    def register_order(self, call: ServiceCall) -> dict[str, Any]:
        order = call.variables.pop("order", None)
        sales.validate_order(order)
        taken = call.session.get(sales.SalesOrder, order["order_no"])
        if taken is not None and taken.instance_id not in (None, call.instance_id):
            # A second process for one order would ship, invoice and post it twice.
            if taken.status in ENDED_ORDER_STATUSES:
                raise InvalidInput(
                    "order.order_no",
                    f"was {taken.status} by instance {taken.instance_id}; a new order needs"
                    " a new number",
                )
            raise InvalidInput(
                "order.order_no", f"is already being processed by instance {taken.instance_id}"
            )
        customer = get_customer(call.session, order["customer_id"])
        row = sales.save_order(call.session, order, call.instance_id)
        if row.currency != customer.currency:
            raise InvalidInput(
                "order.currency",
                f"is {row.currency}; customer {customer.id} buys in {customer.currency}",
            )
        return {"order_no": row.order_no, "customer_id": row.customer_id, "order_gross": row.gross}

    def risk_reviewed(self, call: ServiceCall) -> dict[str, Any]:
        """The credit manager's answer to a downgrade, for the ERP, which owns the limit."""
        answer = {
            "limit_action": call.variables["limit_action"],
            "reason": call.variables["reason"],
            "reviewed_by": call.execution.actor,
        }
        call.emit("customer.risk_reviewed", {**call.variables["risk"], **answer})
        return {"reviewed_by": answer["reviewed_by"]}

    def credit_gather(self, call: ServiceCall) -> dict[str, Any]:
        order = sales.get_order(call.session, call.variables["order_no"])
        # Locked until this command commits: another order of the customer checked at the same
        # time would not see this one's exposure, and both could be released over the limit.
        customer = get_customer(call.session, order.customer_id, lock=True)
        facts = gather_credit(
            call.session, self.rules, customer, order.gross, call.now.date(), order.order_no
        )
        return {"credit_facts": facts, "order_gross": order.gross}

    def credit_route(self, call: ServiceCall) -> dict[str, Any]:
        """Turn the decision into a route: release, approval (by whom, how many), prepayment."""
        decision = call.variables["credit_decision"]
        order = sales.get_order(call.session, call.variables["order_no"])
        fired = set(decision["fired"])
        outputs = decision["outputs"]
        prepayment = bool(outputs.get("prepayment_required"))
        approval_rules = fired - {"grade_d_prepayment", "review_overdue"}
        out: dict[str, Any] = {
            "prepayment_required": prepayment,
            "approvals": [],
            "approvals_needed": 1,
        }
        if decision["outcome"] == "reject":
            out["credit_route"] = "reject"
            out["reject_reason"] = "; ".join(decision["reasons"])
            return out
        if decision["outcome"] != "hold" or not approval_rules:
            out["credit_route"] = "prepayment" if prepayment else "release"
            if prepayment:
                order.status = "credit_hold"
                self._held(call, order, decision)
            return out
        order.status = "credit_hold"
        # A licence hold alone is QA's to release; anything else is the credit manager's.
        qa_only = approval_rules == {"licence_invalid"}
        out["credit_route"] = "approval"
        out["credit_approver_group"] = (
            "qa_manager" if qa_only else outputs.get("approver_group", "credit_manager")
        )
        if outputs.get("n_eyes"):
            out["approvals_needed"] = 2
            out["second_approver_group"] = outputs.get("second_approver", "finance_director")
        out["credit_escalation_cycle"] = self._escalation_cycle(call)
        self._held(call, order, decision)
        return out

    def _escalation_cycle(self, call: ServiceCall) -> str:
        """The approval's idle timer: one look a day until the `escalation` ruleset's top rung.

        The approval task's `sla` property (business days) times `p_notify_owner_at`, counted
        over weekends and `p_holidays`, gives the calendar days the timer has to keep looking;
        the rungs themselves are the ruleset's to decide on each look (credit_escalate).
        """
        from engine.escalation import parse_sla

        properties = call.execution.elements.get(APPROVAL_TASK, {}).get("properties", {})
        sla = parse_sla(properties.get("sla"))
        if sla is None:
            raise ValueError(f"the model's {APPROVAL_TASK} needs an 'sla' property")
        as_of = call.now.date()
        _, parameters = self.rules.parameters(ESCALATION_KEY, as_of)
        holidays = frozenset(parameters["p_holidays"])
        business_days, day = sla * int(parameters["p_notify_owner_at"]), as_of
        while business_days > 0:
            day += timedelta(days=1)
            if day.weekday() < 5 and day not in holidays:
                business_days -= 1
        return f"R{(day - as_of).days}/P1D"

    def credit_escalate(self, call: ServiceCall) -> dict[str, Any]:
        """The credit hold's daily look: take the rungs the `escalation` ruleset says are due.

        Reminding, adding the task's `escalate_to` as a candidate and notifying the owner each
        write a `task.escalated` outbox row, a task_escalation row and the decision record. The
        engine's escalation sweep shares escalate_task, so whichever comes first takes a rung
        and the other finds it taken (the row lock orders them).
        """
        from engine.escalation import escalate_task
        from engine.store.tables import HumanTask

        row = call.session.scalar(
            select(HumanTask)
            .where(
                HumanTask.instance_id == call.instance_id,
                HumanTask.element_id.in_((APPROVAL_TASK, SECOND_APPROVAL_TASK)),
                HumanTask.status == "open",
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if row is not None:
            escalate_task(call.session, self.rules, row, call.now, "add_candidates")
        return {}

    def _held(self, call: ServiceCall, order: sales.SalesOrder, decision: dict[str, Any]) -> None:
        call.emit(
            "order.credit_held",
            {
                "order_no": order.order_no,
                "customer_id": order.customer_id,
                "rules": decision["fired"],
                "reasons": decision["reasons"],
                "decision_id": decision["id"],
            },
        )

    def credit_approval(self, call: ServiceCall) -> dict[str, Any]:
        """Record one approver's decision; N-eyes needs a different person each time."""
        v = call.variables
        who = call.execution.actor or "unknown"
        approvals = list(v.get("approvals") or [])
        if v.get("approved") and who in approvals:
            raise BusinessError("same_approver", f"{who} already approved order {v['order_no']}")
        decision = v["credit_decision"]
        sales.record_release(
            call.session,
            v["order_no"],
            "credit",
            decision_id=decision["id"],
            rule_ids=decision["fired"],
            ruleset_version=decision["ruleset_version"],
            approved=bool(v.get("approved")),
            reason=str(v.get("reason") or ""),
            released_by=who,
        )
        if not v.get("approved"):
            return {"credit_approval": "rejected", "reject_reason": v.get("reason") or ""}
        approvals.append(who)
        done = len(approvals) >= int(v.get("approvals_needed") or 1)
        return {
            "approvals": approvals,
            "credit_approval": "approved" if done else "second",
            "approved": None,
            "reason": None,
        }

    def release_order(self, call: ServiceCall) -> dict[str, Any]:
        order = sales.get_order(call.session, call.variables["order_no"])
        order.status = "released"
        order.released_value = order.gross
        order.released_on = call.now.date()
        call.emit(
            "order.released",
            {"order_no": order.order_no, "customer_id": order.customer_id, "gross": order.gross},
        )
        return {"line_index": 0, "shipment_results": []}

    def prepayment(self, call: ServiceCall) -> dict[str, Any]:
        message = call.variables.get("prepayment_received") or {}
        order_no = call.variables["order_no"]
        _names_only(
            message, "order_no", order_no, "prepayment_received", f"is not this order ({order_no})"
        )
        amount = cents_at(message.get("amount"), "prepayment_received.amount")
        paid = decimal_at(call.variables.get("prepaid") or "0", "prepaid") + amount
        gross = Decimal(str(call.variables["order_gross"]))
        return {"prepaid": paid, "prepayment_complete": paid >= gross}

    # Shipment holds ----------------------------------------------------------------------

    def _ship_date(self, order: sales.SalesOrder, now: datetime) -> date:
        return max(order.requested_ship_date, now.date())

    def _line(self, session: Session, order: sales.SalesOrder, index: int, as_of: date):
        """Order line `index` with its lot: the named one, else a FEFO pick."""
        line = dict(order.lines[index])
        customer = get_customer(session, order.customer_id)
        ship_date = self._ship_date(order, datetime.combine(as_of, datetime.min.time()))
        if not line.get("lot"):
            minimum = required_shelf_life_days(
                self.rules,
                customer=_standing(customer),
                product_min_shelf_life_days=None,
                as_of=as_of,
            )
            picks = fefo_lots(session, line["gtin"], ship_date, minimum)
            if not picks:
                raise BusinessError("no_lot", f"no released lot of {line['gtin']} to pick")
            line["lot"] = picks[0].lot
            lines = list(order.lines)
            lines[index] = line
            order.lines = lines
        lot = get_lot(session, line["gtin"], line["lot"])
        if lot is None:
            raise ValueError(f"lot {line['lot']} of {line['gtin']} is not in the lot master")
        return line, lot, customer, ship_date

    def shipment_facts(self, call: ServiceCall) -> dict[str, Any]:
        order = sales.get_order(call.session, call.variables["order_no"])
        index = int(call.variables.get("line_index") or 0)
        line, lot, customer, ship_date = self._line(call.session, order, index, call.now.date())
        facts = shipment_facts(
            ShipmentLine(order.order_no, int(line["line_no"]), line["gtin"], lot_record(lot)),
            _standing(customer, self._account_on_hold(call.session, customer, call.now.date())),
            ship_date=ship_date,
            as_of=call.now.date(),
        )
        return {"shipment_facts": facts}

    def _account_on_hold(self, session: Session, customer: Customer, as_of: date) -> bool:
        """DOMAIN §1: from the hold level of dunning (3, "final notice, account on hold") the
        account is on credit hold, and DOMAIN §2 holds shipping for the credit manager. The
        order's own release may be days old by now (a QA hold, a prepayment)."""
        _, parameters = self.rules.parameters("credit", as_of)
        level = sales.highest_dunning_level(session, customer.id, customer.currency)
        return level >= int(parameters["p_hold_dunning_level"])

    def shipment_collect(self, call: ServiceCall) -> dict[str, Any]:
        """Keep line `line_index`'s decision; after the last line, route the worst hold."""
        v = call.variables
        order = sales.get_order(call.session, v["order_no"])
        index = int(v.get("line_index") or 0)
        line = order.lines[index]
        decision = v["shipment_decision"]
        overridden = {
            r.line_no for r in sales.releases(call.session, order.order_no, "shelf_life_override")
        }
        # The rule result is kept as decided; a recorded override clears only its own hold.
        fired = [
            rule
            for rule in decision["fired"]
            if not (rule in SHELF_LIFE_RULES and int(line["line_no"]) in overridden)
        ]
        results = [
            *(v.get("shipment_results") or []),
            {
                "line_no": int(line["line_no"]),
                "gtin": line["gtin"],
                "lot": line["lot"],
                "decision_id": decision["id"],
                "outcome": decision["outcome"] if fired else "pass",
                "fired": fired,
                "reasons": decision["reasons"],
                "outputs": decision["outputs"],
            },
        ]
        if index + 1 < len(order.lines):
            return {"shipment_results": results, "line_index": index + 1, "shipment_route": "next"}
        return {"shipment_results": [], "line_index": 0, **self._route(call, order, results)}

    def _route(
        self, call: ServiceCall, order: sales.SalesOrder, results: list[dict[str, Any]]
    ) -> dict[str, Any]:
        rejected = [r for r in results if r["outcome"] == "reject"]
        if rejected:
            reasons = [reason for r in rejected for reason in r["reasons"]]
            return {"shipment_route": "reject", "reject_reason": "; ".join(reasons)}
        held = [r for r in results if r["outcome"] == "hold"]
        if not held:
            return {"shipment_route": "pass", "shipment_hold": None}
        first = held[0]
        outputs = first["outputs"]
        resolution = outputs.get("resolution", "release")
        order.status = "shipment_hold"
        route = "override" if resolution == "override_with_reason" else "qa_release"
        return {
            "shipment_route": route,
            "shipment_hold": {
                "line_no": first["line_no"],
                "gtin": first["gtin"],
                "lot": first["lot"],
                "decision_id": first["decision_id"],
                "rules": first["fired"],
                "reasons": first["reasons"],
            },
            "hold_groups": ",".join(outputs.get("release_groups") or ["qa_manager"]),
        }

    def qa_release(self, call: ServiceCall) -> dict[str, Any]:
        v = call.variables
        hold = v["shipment_hold"]
        who = call.execution.actor or "unknown"
        released = bool(v.get("lot_released"))
        # Only a lot-status hold is lifted by releasing the lot; a licence or customer hold
        # leaves the lot as it is and the re-check decides again on the master data.
        if released and LOT_STATUS_RULES & set(hold["rules"]):
            set_status(
                call.session,
                hold["gtin"],
                hold["lot"],
                "released",
                reason=str(v.get("reason") or "released by QA"),
                actor=who,
            )
        sales.record_release(
            call.session,
            v["order_no"],
            "qa_release",
            line_no=hold["line_no"],
            decision_id=hold["decision_id"],
            rule_ids=hold["rules"],
            approved=released,
            reason=str(v.get("reason") or ""),
            released_by=who,
        )
        return {"qa_outcome": "released" if released else "refused", "lot_released": None}

    def shelf_life_override(self, call: ServiceCall) -> dict[str, Any]:
        v = call.variables
        hold = v["shipment_hold"]
        reason = str(v.get("reason") or "").strip()
        approved = bool(v.get("override")) and bool(reason)
        sales.record_release(
            call.session,
            v["order_no"],
            "shelf_life_override" if approved else "shelf_life_refused",
            line_no=hold["line_no"],
            decision_id=hold["decision_id"],
            rule_ids=hold["rules"],
            approved=approved,
            reason=reason,
            released_by=call.execution.actor or "unknown",
        )
        return {"override_outcome": "approved" if approved else "refused", "override": None}

    def credit_recheck(self, call: ServiceCall) -> dict[str, Any]:
        """DOMAIN §1: the release holds unless the order grew or goods issue waited too long."""
        order = sales.get_order(call.session, call.variables["order_no"])
        _, parameters = self.rules.parameters("credit", call.now.date())
        valid = order.released_on is not None and credit_release_valid(
            CreditRelease(order.released_value or ZERO, order.released_on),
            order.gross,
            call.now.date(),
            parameters,
        )
        return {"recheck_needed": not valid}

    def request_shipment(self, call: ServiceCall) -> dict[str, Any]:
        order = sales.get_order(call.session, call.variables["order_no"])
        order.status = "ship_requested"
        call.emit(
            "shipment.requested",
            {
                "order_no": order.order_no,
                "customer_id": order.customer_id,
                "ship_date": self._ship_date(order, call.now).isoformat(),
                "lines": [
                    {k: line.get(k) for k in ("line_no", "gtin", "lot", "qty")}
                    for line in order.lines
                ],
            },
        )
        return {"udi_hold": None}

    # Shipment confirmation, goods issue, invoice --------------------------------------------

    def udi_check(self, call: ServiceCall) -> dict[str, Any]:
        """Every shipped UDI must parse and agree with its released line and the lot master."""
        v = call.variables
        message = v.get("shipment_confirmed") or {}
        sales.validate_shipment(message)
        order_no = v["order_no"]
        _names_only(
            message, "order_no", order_no, "shipment_confirmed", f"is not this order ({order_no})"
        )
        order = sales.get_order(call.session, v["order_no"])
        customer = get_customer(call.session, order.customer_id)
        by_no = {int(line["line_no"]): line for line in order.lines}
        as_of = call.now.date()
        problems: list[str] = []
        checked: list[tuple[int, str]] = []  # (decision id, outcome) per shipped unit
        # A recorded shelf-life override covers the line's units too (the same hold).
        overridden = {
            r.line_no for r in sales.releases(call.session, order.order_no, "shelf_life_override")
        }
        shipped = {int(x.get("line_no", 0)): x for x in message.get("lines") or []}
        serialised: list[tuple[int, Lot, list[str]]] = []
        if set(shipped) != set(by_no):
            problems.append(f"shipped lines {sorted(shipped)} are not the order's {sorted(by_no)}")
        for line_no, confirmed in sorted(shipped.items()):
            line = by_no.get(line_no)
            if line is None:
                continue
            udis = [str(u) for u in confirmed.get("udis") or []]
            if int(confirmed.get("qty", 0)) != int(line["qty"]):
                problems.append(f"line {line_no}: shipped {confirmed.get('qty')} of {line['qty']}")
            # Every shipped unit is traced by its UDI (DOMAIN §2): none is a mismatch too.
            if len(udis) != int(line["qty"]):
                problems.append(f"line {line_no}: {len(udis)} UDIs for {line['qty']} units")
            lot = get_lot(call.session, line["gtin"], line["lot"])
            if lot is None:
                problems.append(f"line {line_no}: lot {line['lot']} unknown")
                continue
            serialised.append((line_no, lot, udis))
            unit_line = ShipmentLine(order.order_no, line_no, line["gtin"], lot_record(lot))
            for udi in udis:
                facts = shipment_facts(
                    unit_line, _standing(customer), ship_date=as_of, as_of=as_of, udi=udi
                )
                decision = self.rules.evaluate("shipment", facts, as_of)
                record = decision.to_record()
                row = store_decision(
                    call.session, record, call.instance_id, call.element_id, call.now
                )
                checked.append((row.id, row.outcome))
                reasons = [
                    f["reason"]
                    for f in record["fired"]
                    if f["outcome"] in ("hold", "reject")
                    and not (f["rule_id"] in SHELF_LIFE_RULES and line_no in overridden)
                ]
                if reasons:
                    problems.append(f"line {line_no} UDI {udi}: {'; '.join(reasons)}")
        problems += _repeated_serials(call.session, serialised, as_of)
        call.session.flush()
        if checked:
            # In the history too, as every other decision of the order is (a held UDI was
            # visible only under the instance's decisions), but once for the whole check, not
            # once per shipped unit: the worst outcome and every decision behind it.
            call.execution.record(
                "decision",
                call.element_id,
                ruleset="shipment",
                outcome=max((o for _, o in checked), key=OUTCOMES.index),
                decision_ids=[i for i, _ in checked],
            )
        if problems:
            order.status = "shipment_hold"
            return {"udi_route": "hold", "udi_hold": problems}
        return {"udi_route": "ok", "udi_hold": None}

    def goods_issue(self, call: ServiceCall) -> dict[str, Any]:
        v = call.variables
        message = v.get("shipment_confirmed") or {}
        order = sales.get_order(call.session, v["order_no"])
        ship_date = date_at(
            message.get("ship_date"), "shipment_confirmed.ship_date", call.now.date()
        )
        shipment = sales.Shipment(
            order_no=order.order_no, customer_id=order.customer_id, ship_date=ship_date
        )
        call.session.add(shipment)
        call.session.flush()
        shipped = {int(x["line_no"]): x for x in message.get("lines") or []}
        lines: list[Line] = []
        for line in order.lines:
            lot = issue_lot(call.session, line["gtin"], line["lot"], int(line["qty"]))
            udis = shipped.get(int(line["line_no"]), {}).get("udis") or []
            units = [(udi, 1) for udi in udis] or [(None, int(line["qty"]))]
            for udi, qty in units:
                parsed = parse_udi(udi, reference_date=ship_date) if udi else None
                call.session.add(
                    sales.ShipmentUnit(
                        shipment_id=shipment.id,
                        order_no=order.order_no,
                        customer_id=order.customer_id,
                        line_no=int(line["line_no"]),
                        gtin=lot.gtin,
                        lot=lot.lot,
                        qty=qty,
                        udi=udi,
                        serial=parsed.serial if parsed else None,
                        expiry=(parsed.expiry if parsed else None) or lot.expiry_date,
                    )
                )
                dims = _dims(order, lot=lot.lot, gtin=lot.gtin, udi=udi)
                cost = lot.unit_cost * qty
                lines += [
                    Line("cogs", debit=cost, dims=dims),
                    Line("inventory", credit=cost, dims=dims),
                ]
        post_entry(
            call,
            self.accounts,
            kind="goods_issue",
            source_key=f"goods_issue:{order.order_no}:{shipment.id}",
            lines=lines,
            description=f"goods issue {order.order_no}",
        )
        order.status = "shipped"
        return {"shipment_id": shipment.id, "shipment_confirmed": None}

    def invoice(self, call: ServiceCall) -> dict[str, Any]:
        order = sales.get_order(call.session, call.variables["order_no"])
        customer = get_customer(call.session, order.customer_id)
        invoice_no = f"INV-{order.order_no}"
        today = call.now.date()
        due = sales.due_date_for(today, customer.payment_terms_days)
        row = sales.Invoice(
            invoice_no=invoice_no,
            order_no=order.order_no,
            customer_id=order.customer_id,
            currency=order.currency,
            invoice_date=today,
            due_date=due,
            net=order.net,
            tax=order.tax,
            gross=order.gross,
        )
        call.session.add(row)
        head = _dims(order, invoice_no=invoice_no)
        lines = [Line("ar", debit=order.gross, dims=head)]
        for line in order.lines:
            net, tax, _ = sales.order_totals([line])
            dims = {**head, "lot": line["lot"], "gtin": line["gtin"]}
            lines += [
                Line("revenue", credit=net, dims=dims),
                Line("output_vat", credit=tax, dims=dims),
            ]
        entry = post_entry(
            call,
            self.accounts,
            kind="customer_invoice",
            source_key=f"invoice:{invoice_no}",
            lines=lines,
            description=f"invoice {invoice_no}",
        )
        row.posted, row.journal_entry_id = True, entry.id
        sales.add_receivable(
            call.session,
            document_no=invoice_no,
            customer_id=order.customer_id,
            currency=order.currency,
            amount=order.gross,
            doc_date=today,
            due_date=due,
            order_no=order.order_no,
            source="flowgate",
        )
        for unit in call.session.scalars(_SHIPPED_UNITS, {"order_no": order.order_no}):
            unit.invoice_no = invoice_no
        order.status = "invoiced"
        call.emit(
            "invoice.posted",
            {
                "invoice_no": invoice_no,
                "order_no": order.order_no,
                "customer_id": order.customer_id,
                "net": order.net,
                "tax": order.tax,
                "gross": order.gross,
                "due_date": due.isoformat(),
            },
        )
        return {
            "invoice_no": invoice_no,
            "open_amount": order.gross,
            "paid_in_full": False,
            "dunning_due": next_dunning_at(self.rules, due, 0, today),
        }

    # Payments, dunning, close ------------------------------------------------------------

    def payment(self, call: ServiceCall) -> dict[str, Any]:
        v = call.variables
        message = v.get("payment_received") or {}
        order_no, invoice_no = v["order_no"], v["invoice_no"]
        _names_only(
            message, "order_no", order_no, "payment_received", f"is not this order ({order_no})"
        )
        _names_only(
            message,
            "invoice_no",
            invoice_no,
            "payment_received",
            f"is not the invoice of order {order_no} ({invoice_no})",
        )
        amount = cents_at(message.get("amount"), "payment_received.amount")
        item = sales.get_receivable(call.session, invoice_no, lock=True)
        if amount > item.open_amount:
            # An overpayment is the ERP's to book (a credit to the customer), not this order's.
            raise InvalidInput(
                "payment_received.amount",
                f"exceeds the open amount {item.open_amount} of {invoice_no}",
            )
        paid_on = date_at(message.get("paid_on"), "payment_received.paid_on", call.now.date())
        payment, new = sales.apply_payment(
            call.session,
            invoice_no,
            amount,
            paid_on,
            reference=f"{call.instance_id}:{call.task_id}",
        )
        # `item` is the row the payment was booked on (one identity per session), up to date.
        if new:
            order = sales.get_order(call.session, v["order_no"])
            dims = _dims(order, invoice_no=invoice_no)
            post_entry(
                call,
                self.accounts,
                kind="customer_payment",
                source_key=f"payment:{payment.reference}",
                lines=[Line("bank", debit=amount, dims=dims), Line("ar", credit=amount, dims=dims)],
                description=f"payment {invoice_no}",
            )
        return {
            "open_amount": item.open_amount,
            "paid_in_full": item.open_amount == 0,
            "payment_received": None,
        }

    def dunning(self, call: ServiceCall) -> dict[str, Any]:
        """The dunning timer fired: raise the invoice's level as of now (DOMAIN §1).

        The `dunning` rules decide the level from the days past due, with a decision record;
        a raised level is a `dunning.level_changed` event, level 4 opens the collections task,
        and the timer is set again for the day the next level starts.
        """
        as_of = call.now.date()
        item = sales.get_receivable(call.session, call.variables["invoice_no"])
        step = decide_dunning(self.rules, (as_of - item.due_date).days, as_of)
        record_decision(call.execution, call.element_id, step.decision.to_record())
        changed = raise_dunning_level(item, step, as_of, opens_task=True)
        raised = changed is not None
        if changed is not None:
            call.emit("dunning.level_changed", changed)
        return {
            "dunning_escalated": {
                "level": item.dunning_level,
                "raised": raised,
                "collections_task": bool(changed and changed["collections_task"]),
            },
            "dunning_due": next_dunning_at(self.rules, item.due_date, item.dunning_level, as_of),
        }

    def collections(self, call: ServiceCall) -> dict[str, Any]:
        """The collections task was worked; the account stays with collections until paid."""
        return {"collections_outcome": call.variables.get("outcome") or "pursued"}

    def close(self, call: ServiceCall) -> dict[str, Any]:
        order = sales.get_order(call.session, call.variables["order_no"])
        order.status = "closed"
        return {}

    def reject(self, call: ServiceCall) -> dict[str, Any]:
        order = sales.get_order(call.session, call.variables["order_no"])
        order.status = "rejected"
        call.emit(
            "order.rejected",
            {
                "order_no": order.order_no,
                "customer_id": order.customer_id,
                "reason": call.variables.get("reject_reason") or "",
            },
        )
        return {}

    def apply_change(self, call: ServiceCall) -> dict[str, Any]:
        """An order edit from the ERP (`order_changed`): new lines, re-checked before shipping."""
        change = call.variables.get("order_changed") or {}
        order_no = call.variables["order_no"]
        _names_only(
            change, "order_no", order_no, "order_changed", f"is not this order ({order_no})"
        )
        if change.get("lines") is not None:
            sales.validate_order_lines(change["lines"], "order_changed.lines")
        if change.get("requested_ship_date") is not None:
            date_at(change["requested_ship_date"], "order_changed.requested_ship_date")
        order = sales.get_order(call.session, order_no)
        if order.status not in ("entered", "credit_hold", *sales.OPEN_ORDER_STATUSES):
            raise BusinessError("order_shipped", f"order {order.order_no} is already shipped")
        document = {
            "order_no": order.order_no,
            "customer_id": order.customer_id,
            "currency": order.currency,
            "order_date": order.order_date.isoformat(),
            "requested_ship_date": change.get("requested_ship_date")
            or order.requested_ship_date.isoformat(),
            "lines": change.get("lines") or order.lines,
        }
        row = sales.save_order(call.session, document, None)
        return {"order_gross": row.gross, "order_changed": None}

    def cancel(self, call: ServiceCall) -> dict[str, Any]:
        """Cancellation: every posting of the order is reversed, never edited (DOMAIN §5)."""
        message = call.variables.get(CANCEL_MESSAGE) or {}
        # Before register_order has run (an incident there: an unknown customer) the instance
        # has no order number yet; its business key is the order's (README).
        registered = call.variables.get("order_no")
        order_no = registered or call.business_key
        _names_only(
            message, "order_no", order_no, CANCEL_MESSAGE, f"is not this order ({order_no})"
        )
        reason = (
            optional_text_at(message, "reason", f"{CANCEL_MESSAGE}.reason", CANCEL_REASON_MAX)
            or "cancelled"
        )
        order = call.session.get(sales.SalesOrder, registered) if registered else None
        if order is None:
            # Never registered: nothing was recorded or posted for it, so nothing to undo.
            call.emit("order.cancelled", {"order_no": order_no, "reason": reason})
            return {"cancelled": True}
        reversed_entries = [
            reverse(call.session, entry, f"cancellation of {order.order_no}: {reason}")
            for entry in _entries_of(call.session, order.order_no)
            if entry.reverses_id is None and entry.reversed_by_id is None
        ]
        # Only the order's own invoice: an ERP item may carry the order's number too (synced
        # before the order came here), and it is the ERP's to settle, with no posting here.
        for item in call.session.scalars(
            select(sales.Receivable).where(
                sales.Receivable.order_no == order.order_no,
                sales.Receivable.source == "flowgate",
            )
        ):
            item.status, item.open_amount = "cancelled", ZERO
        for shipped in call.session.scalars(
            select(sales.ShipmentUnit).where(sales.ShipmentUnit.order_no == order.order_no)
        ):
            lot = get_lot(call.session, shipped.gtin, shipped.lot)
            if lot is not None:
                lot.qty_on_hand += shipped.qty
        order.status = "cancelled"
        call.emit("order.cancelled", {"order_no": order.order_no, "reason": reason})
        for entry in reversed_entries:
            announce(call, entry)
        return {"cancelled": True}


def _serial_of(udi: str, as_of: date) -> str | None:
    try:
        return parse_udi(udi, reference_date=as_of).serial or None
    except UdiError:
        return None  # unreadable: the `shipment` rules hold it already


def _repeated_serials(
    session: Session, shipped: list[tuple[int, Lot, list[str]]], as_of: date
) -> list[str]:
    """DOMAIN §2: every shipped unit is traced by its UDI, and a serial names one unit. One
    given twice in the shipment, or shipped on another order before, leaves a unit untraced:
    a data error, held for corrected data like a UDI that disagrees with its line."""
    problems: list[str] = []
    given: set[tuple[str, str]] = set()
    by_lot: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for line_no, lot, udis in shipped:
        for udi in udis:
            serial = _serial_of(udi, as_of)
            if serial is None:
                continue  # a lot-level UDI: the units of a line may share it
            if (lot.gtin, serial) in given:
                problems.append(f"line {line_no} UDI {udi}: serial {serial} is given twice")
                continue
            given.add((lot.gtin, serial))
            by_lot.setdefault((lot.gtin, lot.lot), []).append((line_no, serial))
    # Sorted, so that two shipments lock their lots in one order and never wait on each other.
    for (gtin, lot_no), units in sorted(by_lot.items()):
        # Locked until commit, as goods issue locks it: two orders confirming one unit at once
        # must not both find it unshipped (the UDI names its lot, so theirs is the same lot).
        require_lot(session, gtin, lot_no, lock=True)
        before = sales.shipped_serials(session, gtin, [serial for _, serial in units])
        problems += [
            f"line {line_no}: serial {serial} was shipped on order {before[serial]} already"
            for line_no, serial in units
            if serial in before
        ]
    return problems


def next_dunning_at(rules: RulesService, due: date, level: int, as_of: date) -> str:
    """When the next dunning level starts, as the O2C model's timer date (UTC, ISO 8601).

    Level n starts `p_level_n_days` after the due date (the `dunning` parameters in force).
    When that day has already passed (the parameters changed) the timer looks again the next
    day; past the last level it looks monthly, in case the levels are extended.
    """
    _, parameters = rules.parameters(DUNNING_KEY, as_of)
    threshold = parameters.get(f"p_level_{level + 1}_days")
    if threshold is None:
        when = as_of + timedelta(days=30)
    else:
        when = max(due + timedelta(days=int(threshold)), as_of + timedelta(days=1))
    return datetime.combine(when, datetime.min.time()).isoformat() + "+00:00"


def raise_dunning_level(
    item: sales.Receivable, step: Any, as_of: date, opens_task: bool
) -> dict[str, Any] | None:
    """Take an open item to the level the `dunning` rules decided, if higher; the
    `dunning.level_changed` payload when it moved, else None (a level is raised once).
    Only an item with an O2C process (`opens_task`) gets a collections task."""
    if step.level <= item.dunning_level or item.status != "open":
        return None
    previous, item.dunning_level = item.dunning_level, step.level
    return {
        "document_no": item.document_no,
        "customer_id": item.customer_id,
        "order_no": item.order_no,
        "previous_level": previous,
        "level": step.level,
        "open_amount": str(item.open_amount),
        "days_past_due": (as_of - item.due_date).days,
        "collections_task": opens_task and step.collections_task,
    }


def sweep_dunning(runtime: Any, rules: RulesService) -> int:
    """Raise dunning levels of overdue ERP receivables as of the runtime's clock (DOMAIN §1).

    Runs on the scheduler tick for open items the ERP synced (`POST /receivables`); invoices
    of a running O2C instance are dunned by that instance's own timer (`raise_dunning`).
    Each raised level is a `dunning.level_changed` outbox event. The clock is the runtime's,
    so a test (or a replay) moves time by injecting it.
    """
    from engine.decisions import store_decision
    from engine.store.audit import note_event
    from engine.store.tables import OutboxMessage

    now = runtime.clock()
    as_of = now.date()
    raised = 0
    with runtime.uow() as uow:
        # Items of an order with a process are that process's to dun; one query, not one
        # order lookup per overdue item each minute.
        items = uow.session.scalars(
            select(sales.Receivable)
            .outerjoin(sales.SalesOrder, sales.SalesOrder.order_no == sales.Receivable.order_no)
            .where(
                sales.Receivable.status == "open",
                sales.Receivable.due_date < as_of,
                sales.SalesOrder.instance_id.is_(None),
            )
            .order_by(sales.Receivable.id)
        ).all()
        for item in items:
            step = decide_dunning(rules, (as_of - item.due_date).days, as_of)
            changed = raise_dunning_level(item, step, as_of, opens_task=False)
            if changed is None:
                continue
            # DOMAIN §1: each level change is an audit entry, with the decision behind it, as
            # an instance's own dunning timer records it.
            decision = store_decision(uow.session, step.decision.to_record(), None, None, now)
            note_event(
                uow.session,
                "dunning_level_changed",
                ("receivable", item.document_no),
                {"dunning_level": changed["previous_level"]},
                {"dunning_level": step.level, "decision_id": decision.id},
            )
            uow.session.add(
                OutboxMessage(
                    idempotency_key=f"dunning:{item.document_no}:{step.level}",
                    event_type="dunning.level_changed",
                    instance_id=None,
                    payload=changed,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
            raised += 1
        uow.commit()
    return raised


def seed_o2c_demo(session: Session, today: date) -> None:
    """Demo master data (README): one customer and lot per hold a newcomer should see."""
    from datetime import timedelta

    from domain.customers import upsert_customer
    from domain.inventory import upsert_lot

    if session.get(Customer, "C001") is not None:
        return
    far, gtin = today + timedelta(days=3 * 365), "06901234567892"
    terms = timedelta(days=60)
    customers = {
        "C001": {"name": "Grade A Hospital", "credit_limit": Decimal("500000.00"), "grade": "A"},
        "C002": {
            "name": "Near-limit Distributor",
            "credit_limit": Decimal("60000.00"),
            "grade": "B",
        },
        "C003": {
            "name": "Expired Licence Clinic",
            "credit_limit": Decimal("100000.00"),
            "grade": "B",
            "license_expires_on": today - timedelta(days=10),
        },
    }
    for cid, values in customers.items():
        upsert_customer(
            session,
            cid,
            {
                "currency": "CNY",
                "payment_terms_days": terms.days,
                "license_expires_on": far,
                **values,
            },
        )
    # C002: close to its limit, with an item 90 days past due.
    sales.add_receivable(
        session,
        document_no="AR-C002-OLD",
        customer_id="C002",
        currency="CNY",
        amount=Decimal("55000.00"),
        doc_date=today - timedelta(days=150),
        due_date=today - timedelta(days=90),
    )
    # Paid history, so that the nightly re-score (`credit_score`) judges them on their records
    # and keeps the README's grades: with nothing older than six months a customer is new (N)
    # and every order of theirs is held. Per customer: the invoice amount and, per invoice,
    # how many days ago it was issued and how many days after its due date it was paid.
    # C001 has bought for six years and pays early (A); C002 paid on time for four years until
    # its overdue item (B); C003 has two years and pays every other invoice 20 days late (B).
    history = {
        "C001": (Decimal("80000.00"), [(6 * 365, -5), (330, -5), (240, -5), (150, -3)]),
        "C002": (Decimal("20000.00"), [(4 * 365, 0), (330, 0), (270, 0), (210, 0)]),
        "C003": (Decimal("15000.00"), [(2 * 365, 0), (330, 0), (270, 0), (210, 20), (150, 20)]),
    }
    for cid, (amount, invoices) in history.items():
        for days_ago, late in invoices:
            issued = today - timedelta(days=days_ago)
            document_no = f"AR-{cid}-{issued:%Y%m%d}"
            sales.add_receivable(
                session,
                document_no=document_no,
                customer_id=cid,
                currency="CNY",
                amount=amount,
                doc_date=issued,
                due_date=issued + terms,
            )
            paid_on = issued + terms + timedelta(days=late)
            sales.apply_payment(session, document_no, amount, paid_on, f"{document_no}:paid")
    lots = {
        "L2301": ("released", far),
        "L2302": ("released", today + timedelta(days=90)),  # short shelf life
        "L2303": ("quarantined", far),
        "L2304": ("recalled", far),
    }
    for lot, (status, expiry) in lots.items():
        upsert_lot(
            session,
            gtin,
            lot,
            expiry_date=expiry,
            status=status,
            unit_cost=Decimal("650.00"),
            qty_on_hand=500,
            actor="demo",
            reason="demo seed",
        )
