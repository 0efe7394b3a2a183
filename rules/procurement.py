"""Procure-to-pay decisions: approval chain, segregation of duties, three-way match,
duplicate invoices and early-payment discounts; see shared DOMAIN §4.

Thresholds live in the rulesets (`procurement`, `segregation_of_duties`,
`three_way_match_line`, `three_way_match`, `duplicate_invoice`, `payment_discount`); this
module derives their facts from explicit inputs and reads their decisions. Amounts are net of
tax, because DOMAIN §4 excludes tax from the variances.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any, Literal

from rules.decision import Decision
from rules.service import RulesService

APPROVAL_RULESET = "procurement"
SOD_RULESET = "segregation_of_duties"
LINE_MATCH_RULESET = "three_way_match_line"
INVOICE_MATCH_RULESET = "three_way_match"
DUPLICATE_RULESET = "duplicate_invoice"
DISCOUNT_RULESET = "payment_discount"

# Ratios are rounded up to the engine's 4 decimals, so a variance a hair above a threshold
# (2.00001 % against 2 %) still compares as above it (values.SCALE).
_RATIO_QUANTUM = Decimal("0.0001")
_HUNDRED = Decimal(100)

SodAction = Literal["approve_requisition", "approve_invoice_exception", "release_payment"]


def _ratio_pct(numerator: Decimal, denominator: Decimal) -> Decimal:
    return (numerator / denominator * _HUNDRED).quantize(_RATIO_QUANTUM, rounding=ROUND_CEILING)


def _blocks(decision: Decision) -> bool:
    return decision.outcome in ("hold", "reject")


# --- approval matrix ------------------------------------------------------------------


def approval_chain(
    rules: RulesService, *, amount: Decimal, category: str, as_of: date
) -> tuple[tuple[str, ...], Decision]:
    """The ordered approver groups for a requisition (empty: auto-approved), and the decision.

    Each fired rule emits one `approver_group`; firing order (priority) is the chain order.
    """
    decision = rules.evaluate(
        APPROVAL_RULESET, {"requisition_amount": amount, "category": category}, as_of
    )
    chain = tuple(
        str(fired.emit["approver_group"])
        for fired in decision.fired
        if "approver_group" in fired.emit
    )
    return chain, decision


# --- segregation of duties ------------------------------------------------------------


def segregation_of_duties_facts(
    *,
    action: SodAction,
    actor: str,
    on_behalf_of: str | None = None,
    requester: str | None = None,
    prior_approvers: Collection[str] = (),
    invoice_entered_by: str | None = None,
    bank_details_edited_by: Collection[str] = (),
) -> dict[str, Any]:
    """Facts for one proposed action. A delegate acting ``on_behalf_of`` someone is checked
    as both people: delegation never lifts segregation of duties (DOMAIN §4)."""
    people = {_person(actor)} | ({_person(on_behalf_of)} if on_behalf_of else set())
    return {
        "action": action,
        "actor": actor if on_behalf_of is None else f"{actor} (for {on_behalf_of})",
        "actor_is_requester": _person(requester) in people,
        "actor_already_in_chain": not people.isdisjoint(map(_person, prior_approvers)),
        "actor_entered_invoice": _person(invoice_entered_by) in people,
        "actor_edited_supplier_bank_details": not people.isdisjoint(
            map(_person, bank_details_edited_by)
        ),
    }


def _person(name: str | None) -> str | None:
    """One person however the ERP spelt the name: "Dora", "dora " and "DORA" are dora, or a
    requester could approve their own requisition by the case of a letter."""
    return name.strip().casefold() if name is not None else None


def check_segregation_of_duties(rules: RulesService, *, as_of: date, **facts: Any) -> Decision:
    """Decide whether the actor may act; a `reject` names every violated duty separation.

    Keyword arguments are those of :func:`segregation_of_duties_facts`.
    """
    return rules.evaluate(SOD_RULESET, segregation_of_duties_facts(**facts), as_of)


# --- three-way match ------------------------------------------------------------------


@dataclass(frozen=True)
class PurchaseOrderLine:
    line_ref: str
    unit_price: Decimal
    quantity_received: Decimal
    quantity_previously_invoiced: Decimal = Decimal(0)


@dataclass(frozen=True)
class PurchaseOrder:
    po_number: str
    is_open: bool
    lines: Mapping[str, PurchaseOrderLine]


@dataclass(frozen=True)
class SupplierStanding:
    supplier_id: str
    blocked: bool
    bank_account_trusted: bool


@dataclass(frozen=True)
class InvoiceLine:
    line_ref: str
    po_line_ref: str | None
    quantity: Decimal
    unit_price: Decimal
    """Net of tax."""

    @property
    def net_amount(self) -> Decimal:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class VendorInvoice:
    supplier_id: str
    invoice_number: str
    invoice_date: date
    currency: str
    po_number: str
    net_total: Decimal
    """The header total net of tax, as the supplier printed it."""
    lines: tuple[InvoiceLine, ...]


@dataclass(frozen=True)
class ThreeWayMatch:
    line_decisions: tuple[tuple[str, Decision], ...]
    invoice_decision: Decision
    total_difference: Decimal

    @property
    def outcome(self) -> str:
        return self.invoice_decision.outcome

    @property
    def payment_block(self) -> bool:
        """Out of tolerance: post with a payment block and open an AP exception task."""
        return _blocks(self.invoice_decision)

    @property
    def rounding_difference(self) -> Decimal:
        """The small difference to post to the rounding account (zero when blocked)."""
        posts = self.invoice_decision.outputs.get("post_to_rounding", False)
        return self.total_difference if posts and not self.payment_block else Decimal(0)


def line_match_facts(line: InvoiceLine, po_line: PurchaseOrderLine | None) -> dict[str, Any]:
    """Facts of `three_way_match_line`: price against the PO, quantity against receipts."""
    if po_line is None:
        zero = Decimal(0)
        return {
            "line_ref": line.line_ref,
            "po_line_found": False,
            "invoiced_unit_price": line.unit_price,
            "po_unit_price": zero,
            "price_variance_pct": zero,
            "price_variance_amount": zero,
            "quantity_invoiced_to_date": line.quantity,
            "quantity_received": zero,
        }
    unit_variance = abs(line.unit_price - po_line.unit_price)
    # A PO line at price zero (free goods) has no percentage; any price is then a variance.
    variance_pct = (
        _ratio_pct(unit_variance, po_line.unit_price)
        if po_line.unit_price
        else (Decimal(0) if not unit_variance else _HUNDRED)
    )
    return {
        "line_ref": line.line_ref,
        "po_line_found": True,
        "invoiced_unit_price": line.unit_price,
        "po_unit_price": po_line.unit_price,
        "price_variance_pct": variance_pct,
        "price_variance_amount": unit_variance * line.quantity,
        # Cumulative: a second invoice for the same receipt must not pass on its own.
        "quantity_invoiced_to_date": po_line.quantity_previously_invoiced + line.quantity,
        "quantity_received": po_line.quantity_received,
    }


def invoice_match_facts(
    invoice: VendorInvoice,
    po: PurchaseOrder | None,
    supplier: SupplierStanding,
    *,
    lines_out_of_tolerance: int,
) -> dict[str, Any]:
    """Facts of `three_way_match`: the header total against the sum of its lines."""
    lines_total = sum((line.net_amount for line in invoice.lines), Decimal(0))
    difference = invoice.net_total - lines_total
    return {
        "po_number": invoice.po_number,
        "po_found": po is not None,
        "po_open": po is not None and po.is_open,
        "supplier_id": supplier.supplier_id,
        "supplier_blocked": supplier.blocked,
        "supplier_bank_trusted": supplier.bank_account_trusted,
        "lines_out_of_tolerance": lines_out_of_tolerance,
        "header_net_total": invoice.net_total,
        "lines_net_total": lines_total,
        "total_difference": difference,
        "total_difference_abs": abs(difference),
    }


def three_way_match(
    rules: RulesService,
    invoice: VendorInvoice,
    po: PurchaseOrder | None,
    supplier: SupplierStanding,
    *,
    as_of: date,
) -> ThreeWayMatch:
    """Match every invoice line, then the invoice as a whole (DOMAIN §4)."""
    po_lines = po.lines if po is not None else {}
    line_decisions = tuple(
        (
            line.line_ref,
            rules.evaluate(
                LINE_MATCH_RULESET,
                line_match_facts(line, po_lines.get(line.po_line_ref or "")),
                as_of,
            ),
        )
        for line in invoice.lines
    )
    out_of_tolerance = sum(1 for _, decision in line_decisions if _blocks(decision))
    facts = invoice_match_facts(invoice, po, supplier, lines_out_of_tolerance=out_of_tolerance)
    return ThreeWayMatch(
        line_decisions=line_decisions,
        invoice_decision=rules.evaluate(INVOICE_MATCH_RULESET, facts, as_of),
        total_difference=facts["total_difference"],
    )


# --- duplicate invoices ---------------------------------------------------------------


@dataclass(frozen=True)
class PriorInvoice:
    invoice_id: str
    supplier_id: str
    invoice_number: str
    invoice_date: date
    currency: str
    gross_amount: Decimal
    cancelled: bool = False


_LEADING_ZEROS = re.compile(r"(?<!\d)0+(?=\d)")


def normalise_invoice_number(number: str) -> str:
    """Compare invoice numbers ignoring case, spaces and leading zeros (DOMAIN §4).

    Leading zeros are dropped from every run of digits, so "INV-0042" matches "inv-42".
    """
    compact = "".join(number.split()).upper()
    return _LEADING_ZEROS.sub("", compact)


def duplicate_invoice_facts(
    *,
    supplier_id: str,
    invoice_number: str,
    invoice_date: date,
    currency: str,
    gross_amount: Decimal,
    prior_invoices: Iterable[PriorInvoice],
) -> dict[str, Any]:
    """Facts of `duplicate_invoice` against the supplier's whole history.

    No fiscal-year filter on purpose: a duplicate sent across the year end is still a
    duplicate. The day window itself is a ruleset parameter, so the nearest same-amount
    invoice is reported with its distance in days.
    """
    number = normalise_invoice_number(invoice_number)
    same_number: PriorInvoice | None = None
    nearest: tuple[int, PriorInvoice] | None = None
    for prior in prior_invoices:
        if prior.supplier_id != supplier_id or prior.cancelled:
            continue
        if same_number is None and normalise_invoice_number(prior.invoice_number) == number:
            same_number = prior
        if prior.currency == currency and prior.gross_amount == gross_amount:
            days = abs((prior.invoice_date - invoice_date).days)
            if nearest is None or days < nearest[0]:
                nearest = (days, prior)
    return {
        "supplier_id": supplier_id,
        "invoice_number": invoice_number,
        "same_number_found": same_number is not None,
        "same_number_invoice": same_number.invoice_number if same_number else "",
        "same_amount_found": nearest is not None,
        "same_amount_invoice": nearest[1].invoice_number if nearest else "",
        "same_amount_days_apart": nearest[0] if nearest else 0,
    }


def check_duplicate_invoice(rules: RulesService, *, as_of: date, **facts: Any) -> Decision:
    """Hold the invoice for review when it looks like one already received.

    Keyword arguments are those of :func:`duplicate_invoice_facts`.
    """
    return rules.evaluate(DUPLICATE_RULESET, duplicate_invoice_facts(**facts), as_of)


# --- early-payment discount -----------------------------------------------------------


@dataclass(frozen=True)
class PaymentTerms:
    """Terms such as 2/10 net 30: ``discount_pct`` within ``discount_days``, else net."""

    net_days: int
    discount_pct: Decimal = Decimal(0)
    discount_days: int = 0


@dataclass(frozen=True)
class PaymentSchedule:
    pay_on: date
    take_discount: bool
    annualised_discount_pct: Decimal
    decision: Decision


def annualised_discount_pct(terms: PaymentTerms) -> Decimal:
    """d / (100 - d) x 360 / (N - D), in percent; 2/10 net 30 gives 36.7347 (DOMAIN §4)."""
    if terms.discount_pct <= 0 or terms.net_days <= terms.discount_days:
        return Decimal(0)
    return _ratio_pct(
        terms.discount_pct * 360,
        (_HUNDRED - terms.discount_pct) * (terms.net_days - terms.discount_days),
    )


def payment_discount_facts(
    terms: PaymentTerms, *, baseline_date: date, as_of: date
) -> dict[str, Any]:
    """Facts of `payment_discount`; the discount is only available until its date."""
    discount_date = baseline_date + timedelta(days=terms.discount_days)
    annualised = annualised_discount_pct(terms)
    return {
        "discount_pct": terms.discount_pct,
        "discount_days": terms.discount_days,
        "net_days": terms.net_days,
        "annualised_discount_pct": annualised,
        "discount_available": annualised > 0 and as_of <= discount_date,
        "discount_date": discount_date,
        "net_due_date": baseline_date + timedelta(days=terms.net_days),
    }


def schedule_payment(
    rules: RulesService, terms: PaymentTerms, *, baseline_date: date, as_of: date
) -> PaymentSchedule:
    """Pay on the discount date when the discount beats the cost of capital, else net."""
    facts = payment_discount_facts(terms, baseline_date=baseline_date, as_of=as_of)
    decision = rules.evaluate(DISCOUNT_RULESET, facts, as_of)
    take = decision.outputs.get("pay_on") == "discount_date"
    return PaymentSchedule(
        pay_on=facts["discount_date"] if take else facts["net_due_date"],
        take_discount=take,
        annualised_discount_pct=facts["annualised_discount_pct"],
        decision=decision,
    )
