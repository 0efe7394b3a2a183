"""Procure-to-pay decisions; see shared DOMAIN §4."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from rules.procurement import (
    InvoiceLine,
    PaymentTerms,
    PriorInvoice,
    PurchaseOrder,
    PurchaseOrderLine,
    SupplierStanding,
    VendorInvoice,
    annualised_discount_pct,
    approval_chain,
    check_duplicate_invoice,
    check_segregation_of_duties,
    normalise_invoice_number,
    schedule_payment,
    three_way_match,
)
from rules.repository import InMemoryRulesetRepository
from rules.service import RulesService

RULESETS = Path(__file__).parents[3] / "rules" / "rulesets"
KEYS = (
    "procurement",
    "segregation_of_duties",
    "three_way_match_line",
    "three_way_match",
    "duplicate_invoice",
    "payment_discount",
)
AS_OF = date(2026, 11, 23)


@pytest.fixture(scope="module")
def rules() -> RulesService:
    """Publishing runs every stored scenario, so this also proves the scenarios pass."""
    service = RulesService(InMemoryRulesetRepository())
    for key in KEYS:
        service.publish(json.loads((RULESETS / f"{key}.json").read_text(encoding="utf-8")))
    return service


# --- approval matrix ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "category", "chain"),
    [
        ("9999.99", "consumables", ()),
        ("10000.00", "consumables", ("dept_manager",)),
        ("99999.99", "consumables", ("dept_manager",)),
        ("100000.00", "consumables", ("dept_manager", "finance_director")),
        ("499999.99", "consumables", ("dept_manager", "finance_director")),
        ("500000.00", "consumables", ("dept_manager", "finance_director", "cfo")),
        ("5000.00", "capex", ("finance_director",)),
        ("50000.00", "capex", ("dept_manager", "finance_director")),
    ],
)
def test_approval_chain_follows_the_matrix_in_order(
    rules: RulesService, amount: str, category: str, chain: tuple[str, ...]
) -> None:
    got, decision = approval_chain(rules, amount=Decimal(amount), category=category, as_of=AS_OF)
    assert got == chain
    assert decision.outcome == ("hold" if chain else "pass")


def test_raised_auto_approval_limit_applies_from_its_effective_date() -> None:
    service = RulesService(InMemoryRulesetRepository())
    service.publish(json.loads((RULESETS / "procurement.json").read_text(encoding="utf-8")))
    service.set_parameters("procurement", {"p_auto_approval_limit": "25000"}, date(2027, 1, 1))
    amount = Decimal("20000")
    before, _ = approval_chain(service, amount=amount, category="consumables", as_of=AS_OF)
    after, _ = approval_chain(
        service, amount=amount, category="consumables", as_of=date(2027, 1, 1)
    )
    assert (before, after) == (("dept_manager",), ())


# --- segregation of duties ------------------------------------------------------------


def test_requester_can_never_approve_own_requisition(rules: RulesService) -> None:
    decision = check_segregation_of_duties(
        rules, as_of=AS_OF, action="approve_requisition", actor="ana", requester="ana"
    )
    assert decision.outcome == "reject"
    assert decision.fired_ids == ["requester_approves_own_requisition"]


@pytest.mark.parametrize("spelt", ["Ana", "ana ", "ANA"])
def test_the_requester_spelt_otherwise_by_the_erp_still_cannot_approve(
    rules: RulesService, spelt: str
) -> None:
    decision = check_segregation_of_duties(
        rules, as_of=AS_OF, action="approve_requisition", actor="ana", requester=spelt
    )
    assert decision.fired_ids == ["requester_approves_own_requisition"]


def test_delegate_cannot_approve_for_the_requester(rules: RulesService) -> None:
    decision = check_segregation_of_duties(
        rules,
        as_of=AS_OF,
        action="approve_requisition",
        actor="ben",
        on_behalf_of="ana",
        requester="ana",
    )
    assert decision.fired_ids == ["requester_approves_own_requisition"]
    assert "ben (for ana)" in decision.fired[0].reason


def test_same_person_never_approves_twice_in_one_chain(rules: RulesService) -> None:
    decision = check_segregation_of_duties(
        rules,
        as_of=AS_OF,
        action="approve_requisition",
        actor="carl",
        requester="ana",
        prior_approvers={"carl"},
    )
    assert decision.fired_ids == ["approver_twice_in_chain"]


def test_invoice_clerk_never_approves_its_exception(rules: RulesService) -> None:
    decision = check_segregation_of_duties(
        rules,
        as_of=AS_OF,
        action="approve_invoice_exception",
        actor="dora",
        invoice_entered_by="dora",
    )
    assert decision.fired_ids == ["invoice_clerk_approves_exception"]


def test_bank_detail_editor_never_releases_payment_to_that_supplier(rules: RulesService) -> None:
    decision = check_segregation_of_duties(
        rules,
        as_of=AS_OF,
        action="release_payment",
        actor="eve",
        bank_details_edited_by={"eve"},
    )
    assert decision.outcome == "reject"
    assert decision.fired_ids == ["bank_detail_editor_releases_payment"]


def test_independent_approver_is_allowed(rules: RulesService) -> None:
    decision = check_segregation_of_duties(
        rules,
        as_of=AS_OF,
        action="approve_requisition",
        actor="finn",
        requester="ana",
        prior_approvers={"carl"},
    )
    assert decision.outcome == "pass"


# --- three-way match ------------------------------------------------------------------

SUPPLIER = SupplierStanding(supplier_id="S-1", blocked=False, bank_account_trusted=True)
PO = PurchaseOrder(
    po_number="PO-1",
    is_open=True,
    lines={
        "1": PurchaseOrderLine("1", unit_price=Decimal("100.00"), quantity_received=Decimal(10)),
        "2": PurchaseOrderLine("2", unit_price=Decimal("50.00"), quantity_received=Decimal(600)),
    },
)


def _invoice(*lines: InvoiceLine, net_total: Decimal | None = None) -> VendorInvoice:
    total = sum((line.net_amount for line in lines), Decimal(0))
    return VendorInvoice(
        supplier_id="S-1",
        invoice_number="INV-1",
        invoice_date=AS_OF,
        currency="CNY",
        po_number="PO-1",
        net_total=total if net_total is None else net_total,
        lines=lines,
    )


def _line(price: str, quantity: str = "10", po_line: str | None = "1") -> InvoiceLine:
    return InvoiceLine("1", po_line, quantity=Decimal(quantity), unit_price=Decimal(price))


def test_exactly_matched_invoice_is_released_for_payment(rules: RulesService) -> None:
    match = three_way_match(rules, _invoice(_line("100.00")), PO, SUPPLIER, as_of=AS_OF)
    assert match.outcome == "pass"
    assert not match.payment_block


@pytest.mark.parametrize(
    ("price", "blocked"), [("102.00", False), ("98.00", False), ("102.01", True), ("97.99", True)]
)
def test_price_variance_beyond_two_percent_blocks_payment(
    rules: RulesService, price: str, blocked: bool
) -> None:
    match = three_way_match(rules, _invoice(_line(price)), PO, SUPPLIER, as_of=AS_OF)
    assert match.payment_block is blocked
    fired = match.line_decisions[0][1].fired_ids
    assert fired == (["price_variance_over_percentage"] if blocked else [])


def test_a_hair_above_two_percent_is_still_out_of_tolerance(rules: RulesService) -> None:
    po = PurchaseOrder("PO-1", True, {"1": PurchaseOrderLine("1", Decimal("3.00"), Decimal(10))})
    # 3.0601 is 2.0033 % above 3.00: the rounded ratio must not fall back to 2 %.
    match = three_way_match(rules, _invoice(_line("3.0601")), po, SUPPLIER, as_of=AS_OF)
    assert match.payment_block


def test_price_variance_over_500_absolute_blocks_even_within_two_percent(
    rules: RulesService,
) -> None:
    line = InvoiceLine("1", "2", quantity=Decimal(600), unit_price=Decimal("50.90"))  # 1.8 %
    match = three_way_match(rules, _invoice(line), PO, SUPPLIER, as_of=AS_OF)
    assert match.line_decisions[0][1].fired_ids == ["price_variance_over_amount"]
    assert match.payment_block


def test_invoicing_more_than_received_blocks_payment(rules: RulesService) -> None:
    match = three_way_match(rules, _invoice(_line("100.00", "11")), PO, SUPPLIER, as_of=AS_OF)
    assert match.line_decisions[0][1].fired_ids == ["quantity_over_received"]
    assert match.invoice_decision.fired_ids == ["lines_out_of_tolerance"]


def test_quantity_invoiced_earlier_counts_against_the_receipt(rules: RulesService) -> None:
    po_line = PurchaseOrderLine("1", Decimal("100.00"), Decimal(10), Decimal(6))
    po = PurchaseOrder("PO-1", True, {"1": po_line})
    match = three_way_match(rules, _invoice(_line("100.00", "5")), po, SUPPLIER, as_of=AS_OF)
    assert match.payment_block


@pytest.mark.parametrize(
    ("header", "rounding", "blocked"),
    [("1001.00", "1.00", False), ("999.60", "-0.40", False), ("1001.01", "0", True)],
)
def test_small_total_difference_goes_to_rounding_account(
    rules: RulesService, header: str, rounding: str, blocked: bool
) -> None:
    invoice = _invoice(_line("100.00"), net_total=Decimal(header))
    match = three_way_match(rules, invoice, PO, SUPPLIER, as_of=AS_OF)
    assert match.payment_block is blocked
    assert match.rounding_difference == Decimal(rounding)


@pytest.mark.parametrize(
    ("po", "supplier", "rule_id"),
    [
        (None, SUPPLIER, "po_missing"),
        (PurchaseOrder("PO-1", False, PO.lines), SUPPLIER, "po_not_open"),
        (PO, SupplierStanding("S-1", blocked=True, bank_account_trusted=True), "supplier_blocked"),
        (PO, SupplierStanding("S-1", False, bank_account_trusted=False), "supplier_bank_untrusted"),
    ],
)
def test_po_and_supplier_problems_block_payment(
    rules: RulesService,
    po: PurchaseOrder | None,
    supplier: SupplierStanding,
    rule_id: str,
) -> None:
    match = three_way_match(rules, _invoice(_line("100.00")), po, supplier, as_of=AS_OF)
    assert match.payment_block
    assert rule_id in match.invoice_decision.fired_ids


def test_invoice_line_without_po_line_blocks_payment(rules: RulesService) -> None:
    match = three_way_match(
        rules, _invoice(_line("100.00", po_line="9")), PO, SUPPLIER, as_of=AS_OF
    )
    assert match.line_decisions[0][1].fired_ids == ["po_line_missing"]
    assert match.payment_block


# --- duplicate invoices ---------------------------------------------------------------


def _prior(number: str, day: date, amount: str = "1160.00", supplier: str = "S-1") -> PriorInvoice:
    return PriorInvoice(
        invoice_id=f"VI-{number}",
        supplier_id=supplier,
        invoice_number=number,
        invoice_date=day,
        currency="CNY",
        gross_amount=Decimal(amount),
    )


def _duplicate_check(rules: RulesService, number: str, day: date, *priors: PriorInvoice):  # type: ignore[no-untyped-def]
    return check_duplicate_invoice(
        rules,
        as_of=AS_OF,
        supplier_id="S-1",
        invoice_number=number,
        invoice_date=day,
        currency="CNY",
        gross_amount=Decimal("1160.00"),
        prior_invoices=priors,
    )


@pytest.mark.parametrize(
    ("a", "b"), [("INV-0042", "inv-42"), ("000123", "123"), ("AB 12", "ab12"), ("INV-0", "inv-000")]
)
def test_invoice_numbers_are_compared_without_case_spaces_or_leading_zeros(a: str, b: str) -> None:
    assert normalise_invoice_number(a) == normalise_invoice_number(b)


def test_invoice_numbers_keep_inner_zeros() -> None:
    assert normalise_invoice_number("INV-1001") != normalise_invoice_number("INV-101")


def test_same_supplier_and_normalised_number_is_held_for_review(rules: RulesService) -> None:
    prior = _prior("inv - 0042", date(2025, 3, 1), amount="99.00")
    decision = _duplicate_check(rules, "INV-42", AS_OF, prior)
    assert decision.outcome == "hold"
    assert decision.fired_ids == ["same_invoice_number"]


def test_same_number_from_another_supplier_is_not_a_duplicate(rules: RulesService) -> None:
    prior = _prior("INV-42", AS_OF, supplier="S-2")
    assert _duplicate_check(rules, "INV-42", AS_OF, prior).outcome == "pass"


def test_same_amount_across_the_year_end_within_three_days_is_held(rules: RulesService) -> None:
    prior = _prior("A-998", date(2026, 12, 30))
    decision = _duplicate_check(rules, "B-7", date(2027, 1, 2), prior)
    assert decision.fired_ids == ["same_amount_within_window"]
    assert _duplicate_check(rules, "B-7", date(2027, 1, 3), prior).outcome == "pass"


def test_cancelled_prior_invoice_is_not_a_duplicate(rules: RulesService) -> None:
    prior = PriorInvoice("VI-1", "S-1", "INV-42", AS_OF, "CNY", Decimal("1160.00"), cancelled=True)
    assert _duplicate_check(rules, "INV-42", AS_OF, prior).outcome == "pass"


# --- early-payment discount -----------------------------------------------------------


def test_two_ten_net_thirty_is_worth_36_7_percent_a_year() -> None:
    rate = annualised_discount_pct(
        PaymentTerms(net_days=30, discount_pct=Decimal(2), discount_days=10)
    )
    assert rate.quantize(Decimal("0.1")) == Decimal("36.7")


def test_discount_beating_cost_of_capital_is_paid_on_discount_date(rules: RulesService) -> None:
    terms = PaymentTerms(net_days=30, discount_pct=Decimal(2), discount_days=10)
    schedule = schedule_payment(rules, terms, baseline_date=date(2026, 11, 20), as_of=AS_OF)
    assert schedule.take_discount
    assert schedule.pay_on == date(2026, 11, 30)


def test_discount_below_cost_of_capital_is_paid_on_net_due_date(rules: RulesService) -> None:
    # 0.25/99.75 x 360/60 = 1.5 % a year
    terms = PaymentTerms(net_days=90, discount_pct=Decimal("0.25"), discount_days=30)
    schedule = schedule_payment(rules, terms, baseline_date=date(2026, 11, 20), as_of=AS_OF)
    assert not schedule.take_discount
    assert schedule.pay_on == date(2027, 2, 18)


def test_missed_discount_date_pays_net(rules: RulesService) -> None:
    terms = PaymentTerms(net_days=30, discount_pct=Decimal(2), discount_days=10)
    schedule = schedule_payment(rules, terms, baseline_date=date(2026, 11, 1), as_of=AS_OF)
    assert not schedule.take_discount
    assert schedule.pay_on == date(2026, 12, 1)


def test_terms_without_discount_pay_net(rules: RulesService) -> None:
    schedule = schedule_payment(
        rules, PaymentTerms(net_days=60), baseline_date=date(2026, 11, 20), as_of=AS_OF
    )
    assert (schedule.take_discount, schedule.pay_on) == (False, date(2027, 1, 19))
