"""Credit score, grade, recommended limit and terms (shared DOMAIN §1, "Credit score and grade").

The score is computed here, deterministically, from recorded inputs and weights that are
parameters of the `credit_score` ruleset; the ruleset turns score bands into grades.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

from rules.decision import Decision
from rules.service import RulesService
from rules.values import percent_ceiling

KEY = "credit_score"
_CENT = Decimal("0.01")
# Grade order for spotting a downgrade; a new customer is treated as C (DOMAIN §1).
_GRADE_RANK = {"A": 4, "B": 3, "C": 2, "N": 2, "D": 1}


@dataclass(frozen=True)
class ScoreInput:
    customer_id: str
    avg_days_beyond_terms: Decimal  # over the last 12 months
    invoices_paid: int
    invoices_paid_late: int
    exposure: Decimal
    credit_limit: Decimal
    relationship_started_on: date
    write_offs_24m: int  # bad-debt write-offs in the last 24 months
    annual_purchases: Decimal
    external_score: int | None = None  # 0-100 from a credit agency, when one is bought


@dataclass(frozen=True)
class CreditScore:
    score: int
    grade: str
    recommended_limit: Decimal
    payment_terms: str
    decision: Decision


def score_facts(inputs: ScoreInput, as_of: date, parameters: Mapping[str, Any]) -> dict:
    """Every input of the score, and the score itself, as facts of the `credit_score` ruleset."""
    paid_late_pct = (
        percent_ceiling(Decimal(inputs.invoices_paid_late), Decimal(inputs.invoices_paid))
        if inputs.invoices_paid
        else Decimal(0)
    )
    utilisation_pct = (
        percent_ceiling(inputs.exposure, inputs.credit_limit)
        if inputs.credit_limit > 0
        else Decimal(100)
    )
    months = _months_between(inputs.relationship_started_on, as_of)
    facts = {
        "avg_days_beyond_terms": inputs.avg_days_beyond_terms,
        "paid_late_pct": paid_late_pct,
        "utilisation_pct": utilisation_pct,
        "relationship_months": months,
        "write_offs_24m": inputs.write_offs_24m,
        "has_external_score": inputs.external_score is not None,
        "external_score": inputs.external_score or 0,
        "annual_purchases": inputs.annual_purchases,
    }
    facts["score"] = compute_score(facts, parameters)
    return facts


def compute_score(facts: Mapping[str, Any], parameters: Mapping[str, Any]) -> int:
    """Weighted average of components in [0, 1], scaled to 0-100 (half-even).

    Without an external score its weight drops out rather than counting as zero.
    """

    def falling(value: Fraction, zero_at: Fraction) -> Fraction:
        return max(Fraction(0), 1 - value / zero_at) if zero_at > 0 else Fraction(0)

    components = {
        "p_w_days_beyond_terms": falling(
            Fraction(facts["avg_days_beyond_terms"]),
            Fraction(parameters["p_days_beyond_terms_zero"]),
        ),
        "p_w_paid_late": 1 - min(Fraction(facts["paid_late_pct"]) / 100, Fraction(1)),
        "p_w_utilisation": 1 - min(Fraction(facts["utilisation_pct"]) / 100, Fraction(1)),
        "p_w_relationship": min(
            Fraction(facts["relationship_months"], 12)
            / Fraction(parameters["p_relationship_full_years"]),
            Fraction(1),
        ),
        "p_w_write_offs": falling(
            Fraction(facts["write_offs_24m"]), Fraction(parameters["p_write_offs_zero"])
        ),
    }
    if facts["has_external_score"]:
        components["p_w_external"] = Fraction(min(max(facts["external_score"], 0), 100), 100)
    weights = {name: Fraction(parameters[name]) for name in components}
    total = sum(weights.values())
    if total <= 0:
        return 0
    score = sum(weights[name] * value for name, value in components.items()) * 100 / total
    return round(score)  # Fraction rounds half to even


def score_customer(rules: RulesService, inputs: ScoreInput, as_of: date) -> CreditScore:
    """Score and grade a customer, with the recommended limit and terms (DOMAIN §1 table)."""
    _, parameters = rules.parameters(KEY, as_of)
    facts = score_facts(inputs, as_of, parameters)
    decision = rules.evaluate(KEY, facts, as_of)
    outputs = decision.outputs
    # Base limit: 10 % of annual purchases or the configured amount, whichever is lower.
    base = min(
        inputs.annual_purchases * parameters["p_base_limit_purchases_pct"] / 100,
        parameters["p_base_limit_cap"],
    )
    recommended = (base * Decimal(outputs["limit_pct"]) / 100).quantize(_CENT, ROUND_HALF_EVEN)
    return CreditScore(
        facts["score"], outputs["grade"], recommended, outputs["payment_terms"], decision
    )


def is_downgrade(previous_grade: str | None, grade: str) -> bool:
    """A downgrade raises a risk event for the credit manager (DOMAIN §1)."""
    if previous_grade is None:
        return False
    return _GRADE_RANK[grade] < _GRADE_RANK[previous_grade]


def _months_between(start: date, end: date) -> int:
    months = (end.year - start.year) * 12 + end.month - start.month
    return max(months - (end.day < start.day), 0)
