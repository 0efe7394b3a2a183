"""The receivables KPIs of DOMAIN §1 from hand-built inputs, without a database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from domain.kpis import (
    ApprovalSummary,
    HoldAnswer,
    HoldSummary,
    Period,
    ReceivablesInputs,
    receivables_kpis,
    summarize_approvals,
    summarize_holds,
)

JUNE = Period(date(2026, 6, 1), date(2026, 6, 30))
NINE = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)


def inputs(**values) -> ReceivablesInputs:
    return ReceivablesInputs(days=JUNE.days, **values)


def test_dso_is_open_ar_over_credit_sales_times_the_days_of_the_period():
    kpis = receivables_kpis(
        inputs(
            credit_sales=Decimal("90000.00"),
            current_ar=Decimal("60000.00"),
            overdue_ar=Decimal("35000.00"),
        )
    )

    assert JUNE.days == 30
    assert kpis.dso_days == Decimal("31.7")  # 95,000 / 90,000 x 30 = 31.67
    assert kpis.best_possible_dso_days == Decimal("20.0")  # 60,000 / 90,000 x 30
    assert kpis.average_days_delinquent == Decimal("11.7")
    assert kpis.overdue_ratio == Decimal("0.3684")  # 35,000 / 95,000


def test_average_days_delinquent_is_the_difference_of_the_figures_as_shown():
    # 10.04 - 5.06 = 4.98 would show as 5.0; the figures shown are 10.0 and 5.1.
    kpis = receivables_kpis(
        ReceivablesInputs(
            days=1,
            credit_sales=Decimal("100.00"),
            current_ar=Decimal("506.00"),
            overdue_ar=Decimal("498.00"),
        )
    )

    assert (kpis.dso_days, kpis.best_possible_dso_days) == (Decimal("10.0"), Decimal("5.1"))
    assert kpis.average_days_delinquent == Decimal("4.9")


def test_bad_debt_ratio_is_the_periods_write_offs_over_its_credit_sales():
    kpis = receivables_kpis(inputs(credit_sales=Decimal("9000.00"), write_offs=Decimal("500.00")))

    assert kpis.bad_debt_ratio == Decimal("0.0556")


def test_ratios_have_four_decimals_rounded_half_up():
    kpis = receivables_kpis(inputs(credit_sales=Decimal("8.00"), write_offs=Decimal("0.01")))

    assert str(kpis.bad_debt_ratio) == "0.0013"  # 0.00125


def test_no_credit_sales_gives_no_dso_and_no_bad_debt_ratio_rather_than_an_error():
    kpis = receivables_kpis(
        inputs(
            current_ar=Decimal("100.00"), overdue_ar=Decimal("50.00"), write_offs=Decimal("10.00")
        )
    )

    assert kpis.dso_days is None
    assert kpis.best_possible_dso_days is None
    assert kpis.average_days_delinquent is None
    assert kpis.bad_debt_ratio is None
    assert kpis.overdue_ratio == Decimal("0.3333")


def test_nothing_open_and_no_decisions_give_no_ratio_and_no_averages():
    kpis = receivables_kpis(inputs(credit_sales=Decimal("100.00")))

    assert kpis.dso_days == Decimal("0.0")
    assert kpis.overdue_ratio is None
    assert kpis.hold_rate is None
    assert kpis.average_hold_release_hours is None
    assert kpis.average_approval_cycle_hours is None


def test_hold_rate_counts_holds_among_all_credit_decisions_and_a_reject_is_not_a_hold():
    kpis = receivables_kpis(inputs(decisions={"pass": 5, "warn": 1, "hold": 3, "reject": 1}))

    assert kpis.hold_rate == Decimal("0.3000")


def test_averages_are_in_hours_with_one_decimal():
    kpis = receivables_kpis(
        inputs(
            holds=HoldSummary(placed=2, released=2, release_time=timedelta(hours=7)),
            approvals=ApprovalSummary(completed=3, cycle_time=timedelta(hours=10)),
        )
    )

    assert kpis.average_hold_release_hours == Decimal("3.5")
    assert kpis.average_approval_cycle_hours == Decimal("3.3")


def test_a_hold_is_released_by_its_approval_and_timed_from_the_decision():
    answers = [
        HoldAnswer(1, NINE, 1, NINE + timedelta(hours=2), True),
        HoldAnswer(2, NINE, 1, NINE + timedelta(hours=6), True),
    ]

    holds = summarize_holds(answers, JUNE)

    assert (holds.placed, holds.released, holds.refused, holds.not_released) == (2, 2, 0, 0)
    assert holds.release_time == timedelta(hours=8)


def test_an_n_eyes_hold_is_released_only_by_the_second_approval():
    first, second = NINE + timedelta(hours=1), NINE + timedelta(hours=5)
    waiting = summarize_holds([HoldAnswer(1, NINE, 2, first, True)], JUNE)
    released = summarize_holds(
        [HoldAnswer(1, NINE, 2, first, True), HoldAnswer(1, NINE, 2, second, True)], JUNE
    )

    assert (waiting.released, waiting.not_released) == (0, 1)
    assert (released.released, released.release_time) == (1, timedelta(hours=5))


def test_a_refused_hold_and_one_without_an_answer_are_counted_but_not_timed():
    answers = [
        HoldAnswer(1, NINE, 1, NINE + timedelta(hours=3), False),
        HoldAnswer(2, NINE, 2, NINE + timedelta(hours=1), True),
        HoldAnswer(2, NINE, 2, NINE + timedelta(hours=2), False),
        HoldAnswer(3, NINE, 1),  # a prepayment hold: no approver answers it
    ]

    holds = summarize_holds(answers, JUNE)

    assert (holds.placed, holds.released, holds.refused, holds.not_released) == (3, 0, 2, 1)
    assert holds.release_time == timedelta(0)


def test_a_release_after_the_period_is_not_known_at_its_end():
    after = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
    holds = summarize_holds([HoldAnswer(1, NINE, 1, after, True)], JUNE)
    tasks = summarize_approvals([(NINE, after), (NINE, None), (NINE, after - timedelta(1))], JUNE)

    assert (holds.released, holds.not_released) == (0, 1)
    assert (tasks.completed, tasks.waiting) == (1, 2)
    assert tasks.cycle_time == after - timedelta(1) - NINE
