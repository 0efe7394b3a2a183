"""Requests a fuzzing pass answered with a 500: each is now a 4xx problem+json naming what is
wrong, and nothing of it is stored."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.customers import Customer
from tests.e2e.test_http_flow import multipart
from tests.integration.o2c_support import O2CApi, make_api

APPROVAL = Path(__file__).resolve().parents[1] / "fixtures" / "approval.bpmn"


@pytest.fixture
def api(container) -> O2CApi:
    o2c = make_api(container)
    o2c.tokens["ann"] = container.tokens.issue("ann", ["analyst"])
    return o2c


def problem(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(True))
    assert response.mimetype == "application/problem+json"
    return response.json


def fields(response, status: int = 400) -> list[str]:
    return [e["field"] for e in problem(response, status).get("errors", [])]


CUSTOMER = {"name": "Huge", "credit_limit": "1000.00"}


@pytest.mark.parametrize("limit", ["1E+30", "9" * 40, 10**30])
def test_a_credit_limit_too_large_to_store_is_refused_naming_the_field(api, limit):
    response = api.call("PUT", "/customers/HUGE", json={**CUSTOMER, "credit_limit": limit})

    assert fields(response) == ["credit_limit"]
    assert api.call("GET", "/customers/HUGE").status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"payment_terms_days": None}, "payment_terms_days"),
        ({"payment_terms_days": 1_000_000_000}, "payment_terms_days"),
        ({"min_shelf_life_days": 10**20}, "min_shelf_life_days"),
    ],
)
def test_customer_terms_that_cannot_be_stored_or_used_are_refused(api, change, field):
    response = api.call("PUT", "/customers/TERMS", json={**CUSTOMER, **change})

    assert fields(response) == [field]


@pytest.mark.parametrize("pct", ["NaN", "sNaN", "Infinity"])
def test_a_supplier_discount_that_is_not_a_number_is_refused(api, pct):
    terms = {"net_days": 30, "discount_pct": pct, "discount_days": 10}
    body = {"name": "S", "blocked": False, "bank_account_trusted": True, "payment_terms": terms}

    response = api.call("PUT", "/suppliers/S-NAN", json=body)

    assert fields(response) == ["payment_terms.discount_pct"]


def test_a_model_not_encoded_as_utf8_is_refused_naming_the_file(api):
    content = APPROVAL.read_text("utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16"')
    body, kind = multipart("approval.bpmn", content.encode("utf-16"))

    response = api.call("POST", "/definitions", who="ann", data=body, content_type=kind)

    refused = problem(response, 422)
    assert refused["errors"][0]["file"] == "approval.bpmn"
    assert "UTF-8" in refused["errors"][0]["message"]
    assert api.call("GET", "/definitions/approval", who="ann").status_code == 404


@pytest.mark.parametrize(
    ("path", "who"),
    [
        ("/definitions/order_to_cash/versions/99999999999999999999/bpmn", "ann"),
        ("/decisions/99999999999999999999", "auditor"),
    ],
)
def test_an_id_past_any_stored_is_not_found(api, path, who):
    problem(api.call("GET", path, who=who), 404)


@pytest.mark.parametrize("path", ["/audit?to=9999-12-31", "/audit/export?to=9999-12-31"])
def test_the_audit_trail_up_to_the_last_day_of_the_calendar_answers(api, path):
    response = api.call("GET", path, who="auditor")

    assert response.status_code == 200, response.get_data(True)


@pytest.mark.parametrize(
    "query", ["to=9999-12-31T23:59:59-14:00", "from=0001-01-01T00:00:00%2B14:00"]
)
def test_an_audit_instant_outside_utc_is_refused_naming_it(api, query):
    response = api.call("GET", f"/audit?{query}", who="auditor")

    assert fields(response) == [query.split("=")[0]]


def test_a_replay_over_the_whole_calendar_answers(api):
    body = {"from": "0001-01-01", "to": "9999-12-31", "parameters": {"p_overage_n_eyes_pct": "10"}}

    response = api.call("POST", "/rulesets/credit/replay", who="ann", json=body)

    assert response.status_code == 200, response.get_data(True)


def test_a_delegation_to_the_end_of_the_calendar_is_kept(api):
    body = {"delegate": "frank", "from": "2026-12-01", "to": "9999-12-31"}

    response = api.call("POST", "/users/carol/delegations", who="carol", json=body)

    assert response.status_code == 201, response.get_data(True)


@pytest.mark.parametrize(
    ("name", "value"),
    [("valid_from", "0001-01-01T00:00:00+14:00"), ("valid_to", "9999-12-31T23:59:59-14:00")],
)
def test_a_delegation_instant_outside_utc_is_refused_naming_it(api, name, value):
    body = {"delegate": "frank", "valid_from": "2026-12-01T00:00:00+00:00"}
    body |= {"valid_to": "2026-12-31T00:00:00+00:00", name: value}

    response = api.call("POST", "/delegations", who="carol", json=body)

    assert fields(response) == [name]


def test_a_webhook_url_that_cannot_be_parsed_is_refused(api):
    body = {"url": "http://[::1", "events": ["task.created"], "secret": "0123456789abcdefXYZ"}

    response = api.call("POST", "/webhooks", who="admin", json=body)

    assert fields(response) == ["url"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"name": "\\ud800", "credit_limit": "1"}', "contains an unpaired surrogate"),
        ('{"name": "a\\u0000b", "credit_limit": "1"}', "contains a NUL character"),
    ],
)
def test_text_no_database_can_store_is_refused_before_anything_is_written(api, raw, message):
    response = api.call("PUT", "/customers/SUR", data=raw.encode(), content_type="application/json")

    assert problem(response, 400)["errors"] == [{"field": "name", "message": message}]
    assert api.call("GET", "/customers/SUR").status_code == 404


def test_a_message_name_with_an_unpaired_surrogate_is_refused(api):
    response = api.call(
        "POST", "/messages", data=b'{"name": "x\\ud800"}', content_type="application/json"
    )

    assert fields(response) == ["name"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"business_key": "SO-N", "variables": {"order": {"note": NaN}}}', "variables.order.note"),
        ('{"business_key": "SO-N", "variables": {"x": [1, Infinity]}}', "variables.x[1]"),
        ('{"business_key": "SO-N", "variables": {"big": 1e400}}', "variables.big"),
        ('{"business_key": "SO-N", "variables": {"neg": -Infinity}}', "variables.neg"),
    ],
)
def test_nan_or_infinity_in_a_body_is_refused_naming_the_field(api, raw, field):
    response = api.call(
        "POST",
        "/processes/order_to_cash/instances",
        data=raw.encode(),
        content_type="application/json",
    )

    assert problem(response, 400)["errors"] == [
        {"field": field, "message": "must be a finite number"}
    ]
    assert api.ok("GET", "/instances?business_key=SO-N", who="admin")["items"] == []


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("PUT", "/customers/C%00X", "customer_id"),
        ("PUT", "/customers/C%01X", "customer_id"),
        ("GET", "/instances/a%00b", "instance_id"),
        ("POST", "/tasks/a%00b/claim", "task_id"),
        ("GET", "/lots/06901234567892/L%00", "lot"),
        ("GET", "/instances?business_key=a%00b", "business_key"),
        ("GET", "/audit/export?entity=a%00b", "entity"),
    ],
)
def test_a_nul_in_the_url_is_refused_naming_the_parameter(api, method, path, field):
    body = {"name": "Nul Hospital", "credit_limit": "1000.00"} if method == "PUT" else None
    response = api.call(method, path, who="admin", json=body)

    assert fields(response) == [field]
    with api.container.runtime.uow(write=False) as uow:
        assert uow.session.scalars(select(Customer)).all() == []


def test_an_idempotency_key_with_a_nul_is_refused_naming_the_header(api):
    response = api.call(
        "POST",
        "/processes/order_to_cash/instances",
        json={"business_key": "SO-K", "variables": {}},
        headers={"Idempotency-Key": "k\x00"},
    )

    assert fields(response) == ["Idempotency-Key"]


def test_a_supplier_name_longer_than_its_column_is_refused_and_nothing_is_stored(api):
    body = {"name": "S" * 201, "blocked": False, "bank_account_trusted": True}
    response = api.call("PUT", "/suppliers/S-LONG", json=body)

    assert fields(response, 422) == ["name"]
    assert api.call("GET", "/suppliers/S-LONG", who="admin").status_code == 404


def test_a_lot_status_reason_longer_than_its_column_is_refused_naming_it(api):
    api.lot("L-R")
    body = {"expiry_date": "2030-12-31", "status": "quarantined", "reason": "r" * 401}
    response = api.call("PUT", "/lots/06901234567892/L-R", json=body)

    assert fields(response, 422) == ["reason"]
    assert api.ok("GET", "/lots/06901234567892/L-R", who="admin")["status"] == "released"


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["a\x01b.bpmn"], "has a control character or a path separator"),
        (["../approval.bpmn"], "has a control character or a path separator"),
        (["a" * 200 + ".bpmn"], "names must be at most 200 characters"),
        (["approval.bpmn", "approval.bpmn"], "is uploaded twice"),
    ],
)
def test_an_upload_whose_file_names_cannot_be_kept_is_refused_and_nothing_deployed(
    api, names, message
):
    content = APPROVAL.read_bytes()
    files = [(io.BytesIO(content), name) for name in names]
    response = api.call("POST", "/definitions", who="ann", data={"file": files})

    [error] = problem(response, 400)["errors"]
    assert error["field"] == "file" and message in error["message"]
    keys = [d["key"] for d in api.ok("GET", "/definitions", who="ann")["items"]]
    assert "approval" not in keys


@pytest.mark.parametrize("cost", ["0", "0.00"])
def test_a_lot_costing_nothing_is_refused_naming_unit_cost(api, cost):
    body = {"expiry_date": "2030-12-31", "status": "released", "unit_cost": cost}
    response = api.call("PUT", "/lots/06901234567892/L-FREE", json=body)

    assert fields(response, 422) == ["unit_cost"]
    assert api.call("GET", "/lots/06901234567892/L-FREE", who="admin").status_code == 404


@pytest.mark.parametrize("name", ["Hospital\x01", "Hos\x7fpital"])
def test_a_customer_name_with_a_control_character_is_refused_naming_name(api, name):
    response = api.call("PUT", "/customers/C-CTL", json={"name": name, "credit_limit": "1.00"})

    assert fields(response, 422) == ["name"]


@pytest.mark.parametrize("currency", ["ÄÖÜ", "日本語"])
def test_a_customer_currency_in_letters_outside_ascii_is_refused(api, currency):
    body = {"name": "Hospital", "credit_limit": "1.00", "currency": currency}
    response = api.call("PUT", "/customers/C-CUR", json=body)

    assert response.status_code in (400, 422) and fields(response, response.status_code) == [
        "currency"
    ]


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_message_id_is_refused_naming_it_not_kept_as_a_key(api, blank):
    """A blank id was stored as a key: the next message with a blank id, about anything else,
    got 409 "already used with a different request"."""
    message = {"name": "payment_received", "correlation_key": "SO-BLANK", "message_id": blank}

    response = api.call("POST", "/messages", json={**message, "payload": {"amount": "1.00"}})

    assert fields(response, 422) == ["message_id"]
    del message["message_id"]
    assert api.call("POST", "/messages", json=message).status_code == 202


@pytest.mark.parametrize(
    ("query", "field"),
    [("page=0", "page"), ("page=x", "page"), ("page_size=0", "page_size"),
     ("page_size=100000", "page_size")],
)  # fmt: skip
def test_a_bad_page_or_page_size_is_refused_naming_it(api, query, field):
    assert fields(api.call("GET", f"/instances?{query}", who="admin"), 400) == [field]
