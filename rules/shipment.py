"""Shipment holds before goods issue and FEFO lot picking; see shared DOMAIN §2.

The checks themselves live in the `shipment` ruleset (rules/rulesets/shipment.json) so that an
analyst can change the minimum shelf life without a release. This module derives the ruleset's
facts from explicit inputs, runs it per order line and per shipped UDI, and summarises who may
release each hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from rules.decision import Decision, most_severe
from rules.service import RulesService
from rules.udi import CheckDigitError, Udi, UdiError, normalize_gtin, parse_udi

SHIPMENT_RULESET = "shipment"
# A placeholder for a licence that is not on file; the `licence_missing` rule reports it.
NO_LICENCE = date(1, 1, 1)


@dataclass(frozen=True)
class LotRecord:
    """The lot master as QA keeps it."""

    gtin: str
    lot: str
    expiry: date
    released: bool
    quarantined: bool = False
    recalled: bool = False
    field_safety_action: bool = False


@dataclass(frozen=True)
class CustomerStanding:
    """What shipping needs to know about the customer at goods issue."""

    customer_id: str
    blocked: bool
    credit_hold_open: bool
    licence_expiry: date | None
    min_shelf_life_days: int | None = None


@dataclass(frozen=True)
class ShipmentLine:
    """One order line with the lot picked for it and the UDIs scanned while packing."""

    order_id: str
    line_no: int
    gtin: str
    lot: LotRecord
    udis: tuple[str, ...] = ()
    product_min_shelf_life_days: int | None = None
    hibc_product_id: str | None = None
    """Labeler code + product code, for products labelled with HIBC instead of GS1."""


@dataclass(frozen=True)
class ShipmentHold:
    """One fired check, with who may clear it (from the rule's `emit`)."""

    order_id: str
    line_no: int
    udi: str | None
    rule_id: str
    outcome: str
    reason: str
    release_groups: tuple[str, ...]
    override_allowed: bool
    resolution: str


@dataclass(frozen=True)
class ShipmentUnitDecision:
    """The decision for one order line (``udi`` is None) or one shipped unit."""

    order_id: str
    line_no: int
    udi: str | None
    decision: Decision


@dataclass(frozen=True)
class ShipmentCheck:
    decisions: tuple[ShipmentUnitDecision, ...]

    @property
    def outcome(self) -> str:
        """The most severe outcome over all lines and units: one recalled unit stops all."""
        return most_severe(unit.decision.outcome for unit in self.decisions)

    @property
    def holds(self) -> tuple[ShipmentHold, ...]:
        return tuple(
            ShipmentHold(
                order_id=unit.order_id,
                line_no=unit.line_no,
                udi=unit.udi,
                rule_id=fired.rule_id,
                outcome=fired.outcome,
                reason=fired.reason,
                release_groups=tuple(fired.emit.get("release_groups", ())),
                override_allowed=bool(fired.emit.get("override_allowed", False)),
                resolution=str(fired.emit.get("resolution", "")),
            )
            for unit in self.decisions
            for fired in unit.decision.fired
            if fired.outcome in ("hold", "reject")
        )


def remaining_shelf_life_days(expiry: date, ship_date: date) -> int:
    """Days from the ship date to the expiry date (negative once expired)."""
    return (expiry - ship_date).days


def agreed_min_shelf_life_days(
    customer: CustomerStanding, product_min_shelf_life_days: int | None
) -> int | None:
    """The customer- or product-specific minimum, or None when the ruleset default applies.

    A product override wins over a customer one: it exists for products whose whole shelf life
    is too short for the customer's general minimum (DOMAIN §2, per-product override).
    """
    if product_min_shelf_life_days is not None:
        return product_min_shelf_life_days
    return customer.min_shelf_life_days


def required_shelf_life_days(
    rules: RulesService,
    customer: CustomerStanding,
    product_min_shelf_life_days: int | None,
    as_of: date,
) -> int:
    """The minimum remaining shelf life for picking, with the ruleset default in force."""
    agreed = agreed_min_shelf_life_days(customer, product_min_shelf_life_days)
    if agreed is not None:
        return agreed
    _, parameters = rules.parameters(SHIPMENT_RULESET, as_of)
    return int(parameters["p_min_shelf_life_days"])


def shipment_facts(
    line: ShipmentLine,
    customer: CustomerStanding,
    *,
    ship_date: date,
    as_of: date,
    udi: str | None = None,
) -> dict[str, Any]:
    """Facts of the `shipment` ruleset for one order line, or for one of its units if `udi`.

    ``as_of`` resolves two-digit UDI years, so re-evaluating gives the same answer.
    """
    lot = line.lot
    agreed = agreed_min_shelf_life_days(customer, line.product_min_shelf_life_days)
    facts: dict[str, Any] = {
        "ship_date": ship_date,
        "order_gtin": _display_gtin(line.gtin),
        "lot_number": lot.lot,
        "lot_expiry": lot.expiry,
        "lot_recalled": lot.recalled,
        "lot_field_safety_action": lot.field_safety_action,
        "lot_quarantined": lot.quarantined,
        "lot_released": lot.released,
        "remaining_shelf_life_days": remaining_shelf_life_days(lot.expiry, ship_date),
        "shelf_life_minimum_overridden": agreed is not None,
        "shelf_life_minimum_days": agreed or 0,
        "credit_hold_open": customer.credit_hold_open,
        "customer_blocked": customer.blocked,
        "licence_on_file": customer.licence_expiry is not None,
        "licence_expiry": customer.licence_expiry or NO_LICENCE,
    }
    facts.update(_udi_facts(line, udi, as_of))
    return facts


def _udi_facts(line: ShipmentLine, udi: str | None, as_of: date) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "udi": udi or "",
        "udi_gtin": "",
        "udi_lot": "",
        "udi_expiry": "",
        "udi_error": "",
        "udi_unreadable": False,
        "udi_check_digit_wrong": False,
        "udi_gtin_mismatch": False,
        "udi_lot_mismatch": False,
        "udi_expiry_mismatch": False,
    }
    if udi is None:
        return facts
    try:
        # Strict: a day-00 expiry is unreadable for regulated healthcare after the cut-over
        # (DOMAIN §3), a hold until the ERP sends the date, not a warning nobody reads.
        parsed = parse_udi(udi, reference_date=as_of, strict=True)
    except CheckDigitError as error:
        return {**facts, "udi_check_digit_wrong": True, "udi_error": str(error)}
    except UdiError as error:
        return {**facts, "udi_unreadable": True, "udi_error": str(error)}
    lot = line.lot
    product = _udi_product(parsed)
    return {
        **facts,
        "udi_gtin": product,
        "udi_lot": parsed.lot or "",
        "udi_expiry": parsed.expiry.isoformat() if parsed.expiry else "",
        # The UDI must agree with both the order line and the lot master (DOMAIN §2).
        "udi_gtin_mismatch": not _same_product(parsed, line),
        "udi_lot_mismatch": parsed.lot != lot.lot,
        "udi_expiry_mismatch": parsed.expiry != lot.expiry,
    }


def _udi_product(parsed: Udi) -> str:
    if parsed.format == "hibc":
        return f"{parsed.hibc_labeler}{parsed.hibc_product}"
    return parsed.gtin or ""


def _same_product(parsed: Udi, line: ShipmentLine) -> bool:
    if parsed.format == "hibc":
        return line.hibc_product_id is not None and _udi_product(parsed) == line.hibc_product_id
    return parsed.gtin == _display_gtin(line.gtin) == _display_gtin(line.lot.gtin)


def _display_gtin(gtin: str) -> str:
    """The 14-digit GTIN, or the text as given when it is not a valid GTIN at all."""
    try:
        return normalize_gtin(gtin)
    except UdiError:
        return gtin


def check_shipment(
    rules: RulesService,
    lines: Iterable[ShipmentLine],
    customer: CustomerStanding,
    *,
    ship_date: date,
    as_of: date,
) -> ShipmentCheck:
    """Run the `shipment` ruleset for every line and every scanned unit of a delivery."""
    decisions: list[ShipmentUnitDecision] = []
    for line in lines:
        for udi in (None, *line.udis):
            facts = shipment_facts(line, customer, ship_date=ship_date, as_of=as_of, udi=udi)
            decision = rules.evaluate(SHIPMENT_RULESET, facts, as_of)
            decisions.append(ShipmentUnitDecision(line.order_id, line.line_no, udi, decision))
    return ShipmentCheck(tuple(decisions))


def fefo_lots(
    lots: Iterable[LotRecord], *, gtin: str, ship_date: date, min_shelf_life_days: int
) -> list[LotRecord]:
    """Lots that may be picked for ``gtin``, first-expiring first (DOMAIN §2, picking).

    Only released lots, free of quarantine, recall and field safety actions, with at least
    ``min_shelf_life_days`` left at ``ship_date``. Ties go to the lower lot number so that
    the suggestion is stable.
    """
    wanted = normalize_gtin(gtin)
    eligible = [
        lot
        for lot in lots
        if _display_gtin(lot.gtin) == wanted
        and _pickable(lot)
        and remaining_shelf_life_days(lot.expiry, ship_date) >= min_shelf_life_days
    ]
    return sorted(eligible, key=lambda lot: (lot.expiry, lot.lot))


def suggest_fefo_lot(
    lots: Iterable[LotRecord], *, gtin: str, ship_date: date, min_shelf_life_days: int
) -> LotRecord | None:
    """The first-expiring pickable lot, or None when no lot qualifies."""
    ranked = fefo_lots(
        lots, gtin=gtin, ship_date=ship_date, min_shelf_life_days=min_shelf_life_days
    )
    return ranked[0] if ranked else None


def _pickable(lot: LotRecord) -> bool:
    return lot.released and not (lot.quarantined or lot.recalled or lot.field_safety_action)
