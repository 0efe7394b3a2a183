from __future__ import annotations

from datetime import date
from decimal import Decimal

from rules.credit_score import ScoreInput, is_downgrade, score_customer
from rules.escalation import WaitingItem, business_days_between, decide_dunning, decide_escalation
from rules.service import RulesService

MONDAY = date(2026, 11, 23)


def test_weekends_and_holidays_do_not_count_as_business_days() -> None:
    assert business_days_between(MONDAY, date(2026, 11, 30)) == 5
    assert business_days_between(MONDAY, date(2026, 11, 30), {date(2026, 11, 26)}) == 4


def test_task_at_twice_its_sla_is_escalated_once(rules_service: RulesService) -> None:
    item = WaitingItem(MONDAY, sla_business_days=2, level=1, escalate_to="credit_lead")
    step = decide_escalation(rules_service, item, date(2026, 11, 27))  # 4 business days
    assert (step.level, step.escalate_to, step.remind_assignee) == (2, "credit_lead", False)
    again = decide_escalation(
        rules_service, WaitingItem(MONDAY, 2, 2, "credit_lead"), date(2026, 11, 27)
    )
    assert again.decision.fired == () and again.escalate_to is None


def test_holiday_calendar_parameter_delays_the_reminder(rules_service: RulesService) -> None:
    item = WaitingItem(MONDAY, sla_business_days=3, level=0, escalate_to="credit_lead")
    assert decide_escalation(rules_service, item, date(2026, 11, 26)).remind_assignee
    rules_service.set_parameters("escalation", {"p_holidays": ["2026-11-26"]}, date(2026, 1, 1))
    assert not decide_escalation(rules_service, item, date(2026, 11, 26)).remind_assignee


def test_dunning_level_follows_days_past_due(rules_service: RulesService) -> None:
    levels = [decide_dunning(rules_service, days, MONDAY).level for days in (6, 7, 21, 35, 60)]
    assert levels == [0, 1, 2, 3, 4]
    assert decide_dunning(rules_service, 60, MONDAY).collections_task


def test_reliable_customer_gets_grade_a_with_capped_base_limit(rules_service: RulesService) -> None:
    inputs = ScoreInput(
        customer_id="C-1",
        avg_days_beyond_terms=Decimal("1.5"),
        invoices_paid=120,
        invoices_paid_late=3,
        exposure=Decimal("40000"),
        credit_limit=Decimal("100000"),
        relationship_started_on=date(2012, 5, 1),
        write_offs_24m=0,
        annual_purchases=Decimal("3000000"),
    )
    result = score_customer(rules_service, inputs, MONDAY)
    assert result.grade == "A" and result.payment_terms == "net 60"
    assert result.recommended_limit == Decimal("250000.00")  # min(10 % of 3 M, cap 250,000)
    assert result.decision.facts["score"] == result.score


def test_late_payer_with_write_offs_is_grade_d_and_that_is_a_downgrade(
    rules_service: RulesService,
) -> None:
    inputs = ScoreInput(
        "C-2",
        Decimal("45"),
        50,
        40,
        Decimal("95000"),
        Decimal("100000"),
        date(2020, 1, 1),
        2,
        Decimal("400000"),
        external_score=20,
    )
    result = score_customer(rules_service, inputs, MONDAY)
    assert result.grade == "D" and result.recommended_limit == Decimal("0.00")
    assert result.payment_terms == "cash in advance"
    assert is_downgrade("B", result.grade) and not is_downgrade("D", "C")


def test_score_is_deterministic_and_new_customers_are_graded_n(rules_service: RulesService) -> None:
    inputs = ScoreInput(
        "C-3",
        Decimal("0"),
        4,
        0,
        Decimal("0"),
        Decimal("5000"),
        date(2026, 7, 1),
        0,
        Decimal("20000"),
    )
    first = score_customer(rules_service, inputs, MONDAY)
    assert first == score_customer(rules_service, inputs, MONDAY)
    assert first.grade == "N" and first.recommended_limit == Decimal("800.00")
