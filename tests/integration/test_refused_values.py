"""Values a fuzzing pass saw accepted with a 2xx although no user would want them kept: each is
now refused naming its field (422, or 409 for a reference already booked as another document),
and nothing of the request is stored."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from engine.events import ENGINE_EVENTS
from engine.store.tables import BufferedMessage
from tests.e2e.test_http_flow import multipart
from tests.integration import test_refused_requests
from tests.integration.o2c_support import GTIN, O2CApi
from tests.integration.test_refused_requests import fields

api = test_refused_requests.api  # the same fixture: the demo roles and an analyst, ann


ITEM = {
    "document_no": "AR-1",
    "customer_id": "C1",
    "amount": "100.00",
    "doc_date": "2026-11-01",
    "due_date": "2026-12-01",
}


def receivables(api: O2CApi) -> list[dict[str, Any]]:
    return api.ok("GET", "/receivables?customer_id=C1")["items"]


@pytest.fixture
def customer(api: O2CApi) -> O2CApi:
    api.customer("C1")  # in CNY
    return api


@pytest.mark.parametrize("currency", ["xx1", "usd", "EURO", ""])
def test_a_receivable_in_a_currency_that_is_no_iso_code_is_refused_naming_currency(
    customer, currency
):
    response = customer.call("POST", "/receivables", json={**ITEM, "currency": currency})

    assert fields(response, 422) == ["currency"]
    assert receivables(customer) == []


def test_a_receivable_in_another_currency_than_its_customers_is_refused_naming_currency(customer):
    response = customer.call("POST", "/receivables", json={**ITEM, "currency": "USD"})

    assert fields(response, 422) == ["currency"]
    assert "CNY" in response.json["errors"][0]["message"]
    assert receivables(customer) == []


def test_a_receivable_in_its_customers_currency_is_kept(customer):
    response = customer.call("POST", "/receivables", json={**ITEM, "currency": "CNY"})

    assert response.status_code == 201, response.json
    assert [r["currency"] for r in receivables(customer)] == ["CNY"]


def test_a_receivable_due_before_its_document_date_is_refused_naming_due_date(customer):
    response = customer.call("POST", "/receivables", json={**ITEM, "due_date": "2026-10-31"})

    assert fields(response, 422) == ["due_date"]
    assert receivables(customer) == []


def test_a_receivable_order_no_longer_than_its_column_is_refused_naming_it(customer):
    response = customer.call("POST", "/receivables", json={**ITEM, "order_no": "S" * 65})

    assert fields(response, 422) == ["order_no"]
    assert receivables(customer) == []


PAYMENT = {"amount": "10.00", "paid_on": "2026-11-20", "reference": "BANK-1"}
WRITE_OFF = {"amount": "10.00", "written_off_on": "2026-11-20", "reason": "dispute"}


@pytest.fixture
def booked(customer) -> O2CApi:
    customer.ok("POST", "/receivables", json=ITEM)
    customer.ok("POST", "/receivables", json={**ITEM, "document_no": "AR-2"})
    customer.ok("POST", "/receivables/AR-1/payments", json=PAYMENT)
    customer.ok("POST", "/receivables/AR-1/write-offs", json={**WRITE_OFF, "reference": "WO-1"})
    return customer


def open_amounts(api: O2CApi) -> dict[str, str]:
    return {r["document_no"]: r["open_amount"] for r in receivables(api)}


@pytest.mark.parametrize(
    ("path", "change"),
    [
        ("/receivables/AR-1/payments", {"amount": "20.00"}),
        ("/receivables/AR-1/payments", {"paid_on": "2026-11-21"}),
        ("/receivables/AR-2/payments", {}),
    ],
)
def test_a_payment_reusing_a_reference_for_another_payment_is_a_conflict_naming_reference(
    booked, path, change
):
    response = booked.call("POST", path, json={**PAYMENT, **change})

    assert fields(response, 409) == ["reference"]
    assert open_amounts(booked) == {"AR-1": "80.00", "AR-2": "100.00"}


@pytest.mark.parametrize(
    "change", [{"amount": "20.00"}, {"reason": "insolvency"}, {"written_off_on": "2026-11-21"}]
)
def test_a_write_off_reusing_a_reference_for_another_write_off_is_a_conflict_naming_reference(
    booked, change
):
    body = {**WRITE_OFF, "reference": "WO-1", **change}

    response = booked.call("POST", "/receivables/AR-1/write-offs", json=body)

    assert fields(response, 409) == ["reference"]
    assert open_amounts(booked) == {"AR-1": "80.00", "AR-2": "100.00"}


def test_the_same_payment_sent_again_answers_with_its_first_booking(booked):
    again = booked.call("POST", "/receivables/AR-1/payments", json={**PAYMENT, "amount": "10"})

    assert again.status_code == 200, again.json
    assert again.json["receivable"]["open_amount"] == "80.00"
    assert open_amounts(booked) == {"AR-1": "80.00", "AR-2": "100.00"}


def test_a_payment_reference_longer_than_its_column_is_refused_naming_it(booked):
    body = {**PAYMENT, "reference": "R" * 121}

    response = booked.call("POST", "/receivables/AR-2/payments", json=body)

    assert fields(response, 422) == ["reference"]
    assert open_amounts(booked) == {"AR-1": "80.00", "AR-2": "100.00"}


@pytest.mark.parametrize("name", ["", "   ", "N" * 201, "N" * 100_000])
def test_a_customer_name_blank_or_longer_than_200_characters_is_refused_naming_name(customer, name):
    response = customer.call("PUT", "/customers/C1", json={"name": name, "credit_limit": "1.00"})

    assert fields(response, 422) == ["name"]
    assert customer.ok("GET", "/customers/C1")["name"] == "C1"
    assert customer.call("PUT", "/customers/NEW", json={"name": name}).status_code == 422
    assert customer.call("GET", "/customers/NEW").status_code == 404


@pytest.mark.parametrize("limit", ["1E+2", "1e2", "100E-0", "1_000", " 100", "0x10"])
def test_a_credit_limit_not_written_as_a_plain_decimal_is_refused_naming_it(customer, limit):
    body = {"name": "C1", "credit_limit": limit}

    response = customer.call("PUT", "/customers/C1", json=body)

    assert fields(response, 400) == ["credit_limit"]
    assert "1200.00" in response.json["errors"][0]["message"]
    assert customer.ok("GET", "/customers/C1")["credit_limit"] == "100000.00"


@pytest.mark.parametrize("price", ["1_000", "1E+3", "\uff11\uff12\uff10\uff10", " 12.00"])
def test_an_order_price_not_written_as_a_plain_decimal_is_refused_naming_it(customer, price):
    """Python's Decimal reads these; an order line took "1_000" as 1000 and full-width digits
    as 1200, where PUT /customers refused the same strings."""
    line = {"line_no": 1, "gtin": GTIN, "lot": "L1", "qty": 1, "unit_price": price}
    order = {"order_no": "SO-P1", "customer_id": "C1", "currency": "CNY",
             "order_date": "2026-11-23", "lines": [line]}  # fmt: skip
    response = customer.call(
        "POST",
        "/processes/order_to_cash/instances",
        json={"business_key": "SO-P1", "variables": {"order": order}},
    )
    assert fields(response, 422) == ["variables.order.lines[0].unit_price"]
    assert customer.ok("GET", "/instances?business_key=SO-P1", who="admin")["total"] == 0


def test_a_customer_currency_cannot_change_while_items_in_the_old_one_are_open(customer):
    """Exposure is summed in the customer's currency: the open CNY items dropped out of it,
    and a USD order over the limit then passed the credit check."""
    customer.ok("POST", "/receivables", json=ITEM)
    usd = {"name": "C1", "currency": "USD", "credit_limit": "100000.00"}
    response = customer.call("PUT", "/customers/C1", json=usd)

    assert fields(response, 422) == ["currency"]
    assert customer.ok("GET", "/customers/C1")["currency"] == "CNY"
    customer.ok("POST", "/receivables/AR-1/payments", json={**PAYMENT, "amount": ITEM["amount"]})
    assert customer.call("PUT", "/customers/C1", json=usd).status_code == 200


@pytest.mark.parametrize("limit", ["1200.00", "1200", 1200, "+1200.0"])
def test_a_credit_limit_as_a_decimal_string_or_a_json_integer_is_kept(customer, limit):
    response = customer.call("PUT", "/customers/C1", json={"name": "C1", "credit_limit": limit})

    assert response.status_code == 200, response.json
    assert customer.ok("GET", "/customers/C1")["credit_limit"] == "1200.00"


LOT_PATH = f"/lots/{GTIN}/L-DATES"


def test_a_lot_produced_after_its_expiry_is_refused_naming_production_date(api):
    body = {"expiry_date": "2027-01-31", "production_date": "2027-02-01", "status": "released"}

    response = api.call("PUT", LOT_PATH, json=body)

    assert fields(response, 422) == ["production_date"]
    assert api.call("GET", LOT_PATH).status_code == 404


def test_a_lot_given_an_expiry_before_its_stored_production_date_is_refused_naming_it(api):
    api.lot("L-DATES", expiry="2028-12-31", production_date="2026-06-01")

    response = api.call("PUT", LOT_PATH, json={"expiry_date": "2026-05-31"})

    assert fields(response, 422) == ["expiry_date"]
    assert api.ok("GET", LOT_PATH)["expiry_date"] == "2028-12-31"


def test_a_lot_produced_and_expiring_on_the_same_day_is_kept(api):
    body = {"expiry_date": "2027-01-31", "production_date": "2027-01-31", "status": "released"}

    assert api.call("PUT", LOT_PATH, json=body).status_code == 201


def parameters_in_force(api: O2CApi) -> dict[str, Any]:
    return api.ok("GET", "/rulesets/credit", who="ann")["parameters"]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"p_overage_n_eyes_pct": 10.5}, "values.p_overage_n_eyes_pct"),
        ({"p_overage_n_eyes_pct": 10.0}, "values.p_overage_n_eyes_pct"),
        ({"p_max_oldest_item_days": 30.0}, "values.p_max_oldest_item_days"),
        ({"p_overage_n_eyes_pct": "10.5", "p_nope": "1"}, "values.p_nope"),
        # Declared by the shipment ruleset, not by credit's active version.
        ({"p_min_shelf_life_days": 90}, "values.p_min_shelf_life_days"),
    ],
)
def test_a_parameter_given_as_a_float_or_not_declared_is_refused_naming_it(api, values, field):
    before = parameters_in_force(api)
    body = {"values": values, "effective_from": "2026-01-01"}

    response = api.call("PUT", "/rulesets/credit/parameters", who="ann", json=body)

    assert fields(response, 422) == [field]
    assert parameters_in_force(api) == before


def test_a_parameter_given_as_a_decimal_string_or_an_integer_is_kept(api):
    values = {"p_overage_n_eyes_pct": "10.5", "p_max_oldest_item_days": 45}
    body = {"values": values, "effective_from": "2026-01-01"}

    response = api.call("PUT", "/rulesets/credit/parameters", who="ann", json=body)

    assert response.status_code == 201, response.json
    in_force = parameters_in_force(api)["values"]
    assert {name: in_force[name] for name in values} == values


SECRET = "0123456789abcdefXYZ"


def webhooks(api: O2CApi) -> list[dict[str, Any]]:
    return api.ok("GET", "/webhooks", who="admin")["items"]


def subscribe(api: O2CApi, url: str = "http://127.0.0.1:9/hook", **body: Any) -> Any:
    body = {"url": url, "events": ["*"], "secret": SECRET, **body}
    return api.call("POST", "/webhooks", who="admin", json=body)


def test_a_webhook_for_events_flowgate_never_sends_is_refused_naming_each(api):
    events = ["order.released", "order.shipped", "task.created", "Task.Created"]

    response = subscribe(api, events=events)

    assert fields(response, 422) == ["events[1]", "events[3]"]
    assert webhooks(api) == []


@pytest.mark.parametrize("events", [["*"], sorted(ENGINE_EVENTS)])
def test_a_webhook_for_every_event_or_for_events_the_engine_sends_is_kept(api, events):
    assert subscribe(api, events=events).status_code == 201
    assert [hook["events"] for hook in webhooks(api)] == [events]


def test_a_webhook_for_an_event_a_deployed_model_publishes_is_kept(api, approval_bpmn):
    # The approval model's `lookup` task, made an `outbox.publish` task, sends "lookup".
    publishing = approval_bpmn.replace(b"demo.lookup", b"outbox.publish")
    assert fields(subscribe(api, events=["lookup"]), 422) == ["events[0]"]
    body, kind = multipart("approval.bpmn", publishing)
    api.ok("POST", "/definitions", who="ann", data=body, content_type=kind)

    assert subscribe(api, events=["lookup"]).status_code == 201


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/latest/meta-data/",  # the same address as one number
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1%25eth0]:8080/hook",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://Metadata.Google.Internal./computeMetadata/v1/",
    ],
)
def test_a_webhook_to_a_link_local_or_cloud_metadata_address_is_refused_naming_url(api, url):
    response = subscribe(api, url)

    assert fields(response, 422) == ["url"]
    assert webhooks(api) == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://erp.example/hook",
        "file:///etc/passwd",
        "http://erp example.com/hook",
        "http://erp.example:0/hook",
        "http://:8080/hook",
    ],
)
def test_a_webhook_url_that_is_not_http_is_refused_naming_url(api, url):
    assert fields(subscribe(api, url)) == ["url"]
    assert webhooks(api) == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://[::1]:9/hook"])
def test_a_webhook_to_a_receiver_on_this_host_is_kept(api, url):
    assert subscribe(api, url).status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [({"url": "http://erp.example/" + "x" * 2000}, "url"), ({"secret": "s" * 201}, "secret")],
)
def test_a_webhook_url_or_secret_longer_than_its_column_is_refused_naming_it(api, change, field):
    assert fields(subscribe(api, **change), 422) == [field]
    assert webhooks(api) == []


def buffered_messages(api: O2CApi) -> int:
    with api.container.runtime.uow(write=False) as uow:
        return len(uow.session.scalars(select(BufferedMessage)).all())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"correlation_key": "k" * 201}, "correlation_key"),
        ({"message_id": "m" * 201}, "message_id"),
    ],
)
def test_a_message_name_blank_or_a_name_key_or_id_past_200_characters_is_refused_naming_it(
    api, change, field
):
    body = {"name": "shipment_confirmed", "correlation_key": "SO-1", "payload": {}, **change}

    response = api.call("POST", "/messages", json=body)

    assert fields(response, 422) == [field]
    assert buffered_messages(api) == 0


def test_a_message_with_a_200_character_name_key_and_id_is_buffered(api):
    body = {"name": "n" * 200, "correlation_key": "k" * 200, "message_id": "m" * 200}

    assert api.call("POST", "/messages", json=body).status_code == 202
    assert buffered_messages(api) == 1


def delegations(api: O2CApi) -> list[dict[str, Any]]:
    return api.ok("GET", "/delegations", who="admin")["items"]


@pytest.mark.parametrize(
    ("path", "change", "field"),
    [
        ("/users/carol/delegations", {"delegate": "f" * 201}, "delegate"),
        ("/users/carol/delegations", {"process_key": "p" * 201}, "process_key"),
        ("/users/" + "c" * 201 + "/delegations", {}, "delegator"),
    ],
)
def test_a_delegation_naming_a_user_or_process_past_200_characters_is_refused_naming_it(
    api, path, change, field
):
    body = {"delegate": "frank", "from": "2026-12-01", "to": "2026-12-31", **change}

    response = api.call("POST", path, who="admin", json=body)

    assert fields(response, 422) == [field]
    assert delegations(api) == []


@pytest.mark.parametrize("reason", ["", "   ", "r" * 401])
def test_a_write_off_reason_blank_or_past_400_characters_is_refused_naming_it(booked, reason):
    body = {**WRITE_OFF, "reference": "WO-9", "reason": reason}

    response = booked.call("POST", "/receivables/AR-2/write-offs", json=body)

    assert fields(response, 422) == ["reason"]
    assert open_amounts(booked) == {"AR-1": "80.00", "AR-2": "100.00"}


@pytest.mark.parametrize(
    ("change", "field"),
    [({"doc_date": "0001-01-01"}, "doc_date"), ({"due_date": "9999-12-31"}, "due_date")],
)
def test_a_receivable_dated_outside_1900_to_2199_is_refused_naming_the_date(
    customer, change, field
):
    response = customer.call("POST", "/receivables", json={**ITEM, **change})

    assert fields(response) == [field]
    assert receivables(customer) == []
