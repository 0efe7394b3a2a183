"""Shipment holds before goods issue and FEFO picking; see shared DOMAIN §2."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from rules.repository import InMemoryRulesetRepository
from rules.service import RulesService
from rules.shipment import (
    CustomerStanding,
    LotRecord,
    ShipmentLine,
    check_shipment,
    required_shelf_life_days,
    shipment_facts,
    suggest_fefo_lot,
)
from rules.udi import GS, build_udi, hibc_check_character

RULESET = Path(__file__).parents[3] / "rules" / "rulesets" / "shipment.json"
AS_OF = SHIP_DATE = date(2026, 11, 23)
GTIN = "08904000210037"
LOT = LotRecord(gtin=GTIN, lot="L2026A", expiry=date(2028, 6, 30), released=True)
CUSTOMER = CustomerStanding(
    customer_id="C-100", blocked=False, credit_hold_open=False, licence_expiry=date(2027, 12, 31)
)
GOOD_UDI = build_udi(gtin=GTIN, expiry=LOT.expiry, lot=LOT.lot, serial="SN1")


@pytest.fixture(scope="module")
def rules() -> RulesService:
    service = RulesService(InMemoryRulesetRepository())
    service.publish(json.loads(RULESET.read_text(encoding="utf-8")))
    return service


def _line(lot: LotRecord = LOT, udis: tuple[str, ...] = (), **changes: object) -> ShipmentLine:
    line = ShipmentLine(order_id="SO-1", line_no=10, gtin=GTIN, lot=lot, udis=udis)
    return replace(line, **changes)  # type: ignore[arg-type]


def _check(rules: RulesService, line: ShipmentLine, customer: CustomerStanding = CUSTOMER):
    return check_shipment(rules, [line], customer, ship_date=SHIP_DATE, as_of=AS_OF)


def _fired(check) -> set[str]:  # type: ignore[no-untyped-def]
    return {hold.rule_id for hold in check.holds}


def test_clean_line_with_matching_udi_ships(rules: RulesService) -> None:
    check = _check(rules, _line(udis=(GOOD_UDI,)))
    assert check.outcome == "pass"
    assert [unit.udi for unit in check.decisions] == [None, GOOD_UDI]


def test_recalled_lot_is_rejected_without_override(rules: RulesService) -> None:
    check = _check(rules, _line(replace(LOT, recalled=True)))
    assert check.outcome == "reject"
    (hold,) = check.holds
    assert (hold.rule_id, hold.release_groups, hold.override_allowed) == (
        "lot_recalled",
        (),
        False,
    )


def test_lot_under_field_safety_action_is_rejected(rules: RulesService) -> None:
    check = _check(rules, _line(replace(LOT, field_safety_action=True)))
    assert check.outcome == "reject"
    assert _fired(check) == {"lot_field_safety_action"}


def test_lot_expired_before_ship_date_is_rejected_but_expiring_that_day_is_not(
    rules: RulesService,
) -> None:
    expired = _check(rules, _line(replace(LOT, expiry=date(2026, 11, 22))))
    assert expired.outcome == "reject"
    assert _fired(expired) == {"lot_expired"}
    last_day = _check(rules, _line(replace(LOT, expiry=SHIP_DATE), product_min_shelf_life_days=0))
    assert last_day.outcome == "pass"


def test_quarantined_lot_waits_for_qa_manager(rules: RulesService) -> None:
    check = _check(rules, _line(replace(LOT, quarantined=True, released=False)))
    assert check.outcome == "hold"
    (hold,) = check.holds
    assert hold.rule_id == "lot_quarantined"
    assert hold.release_groups == ("qa_manager",)


def test_unreleased_lot_waits_for_qa_manager(rules: RulesService) -> None:
    check = _check(rules, _line(replace(LOT, released=False)))
    assert [(h.rule_id, h.release_groups) for h in check.holds] == [
        ("lot_not_released", ("qa_manager",))
    ]


def test_short_shelf_life_can_be_overridden_by_qa_or_sales_with_reason(
    rules: RulesService,
) -> None:
    check = _check(rules, _line(replace(LOT, expiry=date(2027, 5, 21))))  # 179 days left
    (hold,) = check.holds
    assert hold.rule_id == "shelf_life_below_minimum"
    assert hold.release_groups == ("qa_manager", "sales_manager")
    assert hold.override_allowed
    assert hold.resolution == "override_with_reason"
    assert "179 days" in hold.reason


def test_customer_minimum_shelf_life_overrides_the_default(rules: RulesService) -> None:
    demanding = replace(CUSTOMER, min_shelf_life_days=365)
    lot = replace(LOT, expiry=date(2027, 6, 11))  # 200 days left
    assert _check(rules, _line(lot)).outcome == "pass"
    check = _check(rules, _line(lot), demanding)
    assert _fired(check) == {"shelf_life_below_agreed_minimum"}


def test_product_minimum_shelf_life_wins_over_the_customer_minimum(rules: RulesService) -> None:
    demanding = replace(CUSTOMER, min_shelf_life_days=365)
    short_dated = _line(replace(LOT, expiry=date(2027, 3, 3)), product_min_shelf_life_days=90)
    assert _check(rules, short_dated, demanding).outcome == "pass"


def test_minimum_shelf_life_parameter_change_takes_effect_from_its_date(
    rules: RulesService,
) -> None:
    service = RulesService(InMemoryRulesetRepository())
    service.publish(json.loads(RULESET.read_text(encoding="utf-8")))
    service.set_parameters("shipment", {"p_min_shelf_life_days": 365}, date(2027, 1, 1))
    line = _line(replace(LOT, expiry=date(2027, 6, 11)))
    facts = shipment_facts(line, CUSTOMER, ship_date=SHIP_DATE, as_of=AS_OF)
    assert service.evaluate("shipment", facts, AS_OF).outcome == "pass"
    assert service.evaluate("shipment", facts, date(2027, 1, 1)).outcome == "hold"


@pytest.mark.parametrize(
    ("udi", "rule_id"),
    [
        ("(01)08904000210031(17)280630(10)L2026A", "udi_check_digit_wrong"),
        ("(01)0890400021003(17)280630(10)L2026A", "udi_unreadable"),
        ("garbage", "udi_unreadable"),
        # Day 00 reads as the month's last day, the lot's expiry, but is no longer allowed.
        ("(01)08904000210037(17)280600(10)L2026A", "udi_unreadable"),
        (build_udi(gtin="00614141000012", expiry=LOT.expiry, lot=LOT.lot), "udi_gtin_mismatch"),
        (build_udi(gtin=GTIN, expiry=LOT.expiry, lot="L2026B"), "udi_lot_mismatch"),
        (build_udi(gtin=GTIN, expiry=date(2028, 7, 31), lot=LOT.lot), "udi_expiry_mismatch"),
        (build_udi(gtin=GTIN, lot=LOT.lot), "udi_expiry_mismatch"),
    ],
)
def test_bad_udi_holds_for_data_correction_without_override(
    rules: RulesService, udi: str, rule_id: str
) -> None:
    check = _check(rules, _line(udis=(GOOD_UDI, udi)))
    assert check.outcome == "hold"
    (hold,) = check.holds
    assert (hold.udi, hold.rule_id) == (udi, rule_id)
    assert hold.release_groups == ()
    assert not hold.override_allowed
    assert hold.resolution == "data_correction"


def test_scanner_form_udi_is_checked_like_the_printed_one(rules: RulesService) -> None:
    scanned = f"]d201089040002100371728063010L2026A{GS}21SN1"
    assert _check(rules, _line(udis=(scanned,))).outcome == "pass"


def test_hibc_labelled_unit_matches_by_labeler_and_product_code(rules: RulesService) -> None:
    data = "+E20831269/$$3280630L2026A"
    udi = data + hibc_check_character(data)
    assert _check(rules, _line(udis=(udi,), hibc_product_id="E2083126")).outcome == "pass"
    assert _fired(_check(rules, _line(udis=(udi,)))) == {"udi_gtin_mismatch"}


@pytest.mark.parametrize(
    ("customer", "rule_id"),
    [
        (replace(CUSTOMER, credit_hold_open=True), "credit_hold_open"),
        (replace(CUSTOMER, blocked=True), "customer_blocked"),
    ],
)
def test_credit_problems_wait_for_the_credit_manager(
    rules: RulesService, customer: CustomerStanding, rule_id: str
) -> None:
    (hold,) = _check(rules, _line(), customer).holds
    assert (hold.rule_id, hold.outcome, hold.release_groups) == (
        rule_id,
        "hold",
        ("credit_manager",),
    )


@pytest.mark.parametrize(
    ("licence_expiry", "rule_id"),
    [(date(2026, 11, 22), "licence_expired"), (None, "licence_missing")],
)
def test_expired_or_missing_licence_waits_for_qa_manager(
    rules: RulesService, licence_expiry: date | None, rule_id: str
) -> None:
    customer = replace(CUSTOMER, licence_expiry=licence_expiry)
    (hold,) = _check(rules, _line(), customer).holds
    assert (hold.rule_id, hold.release_groups) == (rule_id, ("qa_manager",))


def test_one_recalled_unit_line_rejects_the_whole_delivery(rules: RulesService) -> None:
    lines = [_line(), _line(replace(LOT, lot="L2025Z", recalled=True), line_no=20)]
    check = check_shipment(rules, lines, CUSTOMER, ship_date=SHIP_DATE, as_of=AS_OF)
    assert check.outcome == "reject"
    assert {(h.line_no, h.rule_id) for h in check.holds} == {(20, "lot_recalled")}


def test_shipment_decision_reevaluates_to_the_same_result(rules: RulesService) -> None:
    check = _check(rules, _line(replace(LOT, quarantined=True), udis=("garbage",)))
    for unit in check.decisions:
        assert rules.reevaluate(unit.decision.to_record()) == unit.decision


def test_fefo_picks_first_expiring_released_lot_with_enough_shelf_life() -> None:
    lots = [
        replace(LOT, lot="A-short", expiry=date(2027, 3, 1)),  # under 180 days
        replace(LOT, lot="B-quarantine", expiry=date(2027, 7, 1), quarantined=True),
        replace(LOT, lot="C-recalled", expiry=date(2027, 7, 2), recalled=True),
        replace(LOT, lot="D-unreleased", expiry=date(2027, 7, 3), released=False),
        replace(LOT, lot="F-later", expiry=date(2028, 1, 1)),
        replace(LOT, lot="E-first", expiry=date(2027, 8, 1)),
        replace(LOT, gtin="00614141000012", lot="G-other", expiry=date(2027, 6, 1)),
    ]
    picked = suggest_fefo_lot(lots, gtin=GTIN, ship_date=SHIP_DATE, min_shelf_life_days=180)
    assert picked is not None and picked.lot == "E-first"
    assert (
        suggest_fefo_lot(lots[:4], gtin=GTIN, ship_date=SHIP_DATE, min_shelf_life_days=180) is None
    )


def test_fefo_minimum_comes_from_the_ruleset_unless_agreed(rules: RulesService) -> None:
    assert required_shelf_life_days(rules, CUSTOMER, None, AS_OF) == 180
    assert (
        required_shelf_life_days(rules, replace(CUSTOMER, min_shelf_life_days=365), 90, AS_OF) == 90
    )
