from __future__ import annotations

from datetime import date
from decimal import Decimal

from rules.credit import (
    CreditInput,
    CreditRelease,
    OpenItem,
    OpenOrder,
    check_credit,
    credit_facts,
    release_still_valid,
)
from rules.service import RulesService

AS_OF = date(2026, 11, 23)


def account(**changes: object) -> CreditInput:
    base = {
        "customer_id": "C-100",
        "currency": "EUR",
        "order_value": Decimal("1000.00"),
        "credit_limit": Decimal("10000.00"),
        "next_review_on": date(2027, 3, 31),
        "licence_expires_on": date(2027, 12, 31),
        "grade": "B",
    }
    return CreditInput(**{**base, **changes})  # type: ignore[arg-type]


def test_order_within_limit_passes(rules_service: RulesService) -> None:
    decision = check_credit(rules_service, account(), AS_OF)
    assert decision.outcome == "pass"
    assert decision.fired == ()


def test_order_over_limit_is_held_with_reason(rules_service: RulesService) -> None:
    credit = account(open_deliveries=Decimal("9500.00"))
    decision = check_credit(rules_service, credit, AS_OF)
    assert decision.outcome == "hold"
    assert decision.fired_ids == ["over_limit"]
    assert decision.fired[0].reason == (
        "Exposure 10500.00 EUR including this order exceeds the credit limit 10000.00 EUR"
    )
    assert decision.outputs == {"approver_group": "credit_manager"}


def test_overage_above_20_percent_needs_finance_director(rules_service: RulesService) -> None:
    credit = account(open_items=(OpenItem(Decimal("11000.01"), date(2026, 12, 1)),))
    decision = check_credit(rules_service, credit, AS_OF)
    assert decision.fired_ids == ["over_limit", "over_limit_n_eyes"]
    assert decision.outputs["n_eyes"] is True
    assert decision.outputs["second_approver"] == "finance_director"


def test_overage_of_exactly_20_percent_needs_one_approver(rules_service: RulesService) -> None:
    credit = account(open_items=(OpenItem(Decimal("11000.00"), date(2026, 12, 1)),))
    assert check_credit(rules_service, credit, AS_OF).fired_ids == ["over_limit"]


def test_blocked_customer_is_rejected_even_within_limit(rules_service: RulesService) -> None:
    decision = check_credit(rules_service, account(customer_blocked=True), AS_OF)
    assert decision.outcome == "reject"


def test_missing_licence_is_held_for_qa(rules_service: RulesService) -> None:
    decision = check_credit(rules_service, account(licence_expires_on=None), AS_OF)
    assert decision.outcome == "hold"
    assert decision.outputs == {"qa_release": True}


def test_licence_expiring_today_is_still_valid(rules_service: RulesService) -> None:
    assert check_credit(rules_service, account(licence_expires_on=AS_OF), AS_OF).outcome == "pass"


def test_oldest_open_item_over_60_days_holds_but_small_items_are_ignored(
    rules_service: RulesService,
) -> None:
    small = OpenItem(Decimal("99.99"), date(2026, 8, 1))
    large = OpenItem(Decimal("100.00"), date(2026, 9, 23))  # 61 days past due
    assert check_credit(rules_service, account(open_items=(small,)), AS_OF).fired_ids == [
        "overdue_share"
    ]
    decision = check_credit(rules_service, account(open_items=(large,)), AS_OF)
    assert "oldest_open_item" in decision.fired_ids


def test_overdue_share_above_40_percent_holds(rules_service: RulesService) -> None:
    items = (
        OpenItem(Decimal("410.00"), date(2026, 10, 1)),  # 53 days past due
        OpenItem(Decimal("590.00"), date(2026, 11, 30)),
    )
    assert check_credit(rules_service, account(open_items=items), AS_OF).fired_ids == [
        "overdue_share"
    ]
    items = (items[0], OpenItem(Decimal("615.00"), date(2026, 11, 30)))  # 40.0 % or less
    assert check_credit(rules_service, account(open_items=items), AS_OF).outcome == "pass"


def test_dunning_level_3_holds_and_grade_d_needs_prepayment(rules_service: RulesService) -> None:
    decision = check_credit(rules_service, account(dunning_level=3, grade="D"), AS_OF)
    assert decision.fired_ids == ["dunning_level", "grade_d_prepayment"]
    assert decision.outputs["release_message"] == "prepayment_received"


def test_passed_review_date_only_warns(rules_service: RulesService) -> None:
    decision = check_credit(rules_service, account(next_review_on=date(2026, 11, 22)), AS_OF)
    assert decision.outcome == "warn"
    assert decision.fired[0].reason == "Credit review was due on 2026-11-22"


def test_dynamic_exposure_leaves_out_orders_beyond_the_horizon(
    rules_service: RulesService,
) -> None:
    orders = (
        OpenOrder(Decimal("2000.00"), date(2026, 12, 23)),  # within 30 days
        OpenOrder(Decimal("8000.00"), date(2026, 12, 24)),  # beyond
    )
    credit = account(open_orders=orders)
    _, parameters = rules_service.parameters("credit", AS_OF)
    facts = credit_facts(credit, AS_OF, parameters)
    assert facts["static_exposure"] == Decimal("11000.00")
    assert facts["dynamic_exposure"] == Decimal("3000.00")
    assert check_credit(rules_service, credit, AS_OF).outcome == "hold"
    rules_service.set_parameters("credit", {"p_exposure_check": "dynamic"}, date(2026, 1, 1))
    assert check_credit(rules_service, credit, AS_OF).outcome == "pass"


def test_release_stays_valid_within_5_percent_growth_and_14_days(
    rules_service: RulesService,
) -> None:
    _, parameters = rules_service.parameters("credit", AS_OF)
    release = CreditRelease(Decimal("1000.00"), date(2026, 11, 1))
    assert release_still_valid(release, Decimal("1050.00"), date(2026, 11, 15), parameters)
    assert not release_still_valid(release, Decimal("1050.01"), date(2026, 11, 15), parameters)
    assert not release_still_valid(release, Decimal("1000.00"), date(2026, 11, 16), parameters)


def test_parameters_in_force_follow_as_of(rules_service: RulesService) -> None:
    rules_service.set_parameters("credit", {"p_hold_dunning_level": 2}, date(2027, 1, 1))
    assert check_credit(rules_service, account(dunning_level=2), AS_OF).outcome == "pass"
    later = check_credit(rules_service, account(dunning_level=2), date(2027, 1, 1))
    assert later.outcome == "hold"
    assert later.parameter_version == 2


def test_overage_just_above_the_n_eyes_threshold_needs_the_second_approver(
    rules_service: RulesService,
) -> None:
    # 20.00001 % over: rounding to the engine's 4 decimals must round up, never down to 20.
    credit = account(credit_limit=Decimal("100000.00"), order_value=Decimal("120000.01"))
    decision = check_credit(rules_service, credit, AS_OF)
    assert decision.fired_ids == ["over_limit", "over_limit_n_eyes"]
    assert decision.to_record()["facts"]["overage_pct"] == "20.0001"
    exactly = check_credit(
        rules_service,
        account(credit_limit=Decimal("100000.00"), order_value=Decimal("120000.00")),
        AS_OF,
    )
    assert exactly.fired_ids == ["over_limit"]
    assert exactly.to_record()["facts"]["overage_pct"] == "20"
