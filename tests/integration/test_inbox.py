"""The approver inbox over HTTP: claim, delegate, forms, comments and queries (issue 6)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from api.app import create_app
from engine.runtime import commands
from engine.store.tables import InstanceEvent, OutboxMessage
from tests.integration.conftest import ERP
from tests.integration.test_inbox_models import MONDAY, Clock, deploy_models, purchase

USERS = {
    "carol": (["credit_manager"], ["credit_manager"]),
    "carl": (["credit_manager"], ["credit_manager"]),
    "bella": (["ap_clerk"], []),
    "sam": (["sales_manager"], ["sales_manager"]),
    "dave": (["dept_manager"], ["dept_manager"]),
    "admin": (["admin"], []),
}


class Inbox:
    """An HTTP client that speaks as one demo user at a time."""

    def __init__(self, container: Any, client: FlaskClient) -> None:
        self.container = container
        self.client = client
        self.tokens = {u: container.tokens.issue(u, r, g) for u, (r, g) in USERS.items()}

    def call(self, method: str, path: str, user: str, body: Any = None) -> Any:
        return self.client.open(
            f"/api/v1{path}",
            method=method,
            json=body,
            headers={"Authorization": f"Bearer {self.tokens[user]}"},
        )

    def start(self, key: str = "PR-1", process: str = "review", **variables: Any) -> str:
        variables = variables or purchase()
        body = commands.start(self.container.runtime, process, key, variables, ERP).body
        return body["active_tasks"][0]["id"]

    def history(self, task_id: str) -> list[tuple[str, str | None]]:
        with self.container.runtime.uow(write=False) as uow:
            events = uow.session.execute(select(InstanceEvent).order_by(InstanceEvent.id))
            return [
                (e.type, e.actor)
                for e in events.scalars()
                if (e.details or {}).get("task_id") == task_id
            ]

    def outbox(self, task_id: str) -> list[dict[str, Any]]:
        with self.container.runtime.uow(write=False) as uow:
            rows = uow.session.execute(select(OutboxMessage).order_by(OutboxMessage.id))
            return [
                {"type": r.event_type, **r.payload}
                for r in rows.scalars()
                if r.payload.get("task_id") == task_id
            ]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def inbox(container, clock) -> Inbox:
    deploy_models(container, clock)
    return Inbox(container, create_app(container=container).test_client())


# Claim, unclaim, complete ---------------------------------------------------------------------


def test_candidate_claims_and_completes_with_history_and_notifications(inbox):
    task_id = inbox.start()
    claimed = inbox.call("POST", f"/tasks/{task_id}/claim", "carol")
    assert claimed.status_code == 200
    assert (claimed.json["state"], claimed.json["assignee"]) == ("claimed", "carol")
    done = inbox.call(
        "POST", f"/tasks/{task_id}/complete", "carol", {"variables": {"decision": "approve"}}
    )
    assert done.status_code == 200 and done.json["status"] == "completed"
    task = inbox.call("GET", f"/tasks/{task_id}", "carol").json
    assert (task["state"], task["completed_by"]) == ("completed", "carol")
    assert [h for h in inbox.history(task_id) if h[0] != "task_created"] == [
        ("task_claimed", "carol"),
        ("task_completed", "carol"),
    ]
    events = inbox.outbox(task_id)
    assert [e["type"] for e in events] == ["task.created", "task.assigned", "task.completed"]
    assert all(e["link"] == f"/api/v1/tasks/{task_id}" for e in events)


def test_someone_outside_the_candidates_gets_403_and_the_task_stays_offered(inbox):
    task_id = inbox.start()
    assert inbox.call("POST", f"/tasks/{task_id}/claim", "dave").status_code == 403
    refused = inbox.call(
        "POST", f"/tasks/{task_id}/complete", "dave", {"variables": {"decision": "approve"}}
    )
    assert refused.status_code == 403
    assert refused.mimetype == "application/problem+json"
    assert inbox.call("GET", f"/tasks/{task_id}", "carol").json["state"] == "created"


def test_second_claim_by_another_candidate_gets_409_and_so_does_their_completion(inbox):
    task_id = inbox.start()
    assert inbox.call("POST", f"/tasks/{task_id}/claim", "carol").status_code == 200
    assert inbox.call("POST", f"/tasks/{task_id}/claim", "carol").status_code == 200
    assert inbox.call("POST", f"/tasks/{task_id}/claim", "carl").status_code == 409
    taken = inbox.call(
        "POST", f"/tasks/{task_id}/complete", "carl", {"variables": {"decision": "approve"}}
    )
    assert taken.status_code == 409
    assert [h[0] for h in inbox.history(task_id)].count("task_claimed") == 1


def test_an_admin_takes_over_a_task_someone_else_claimed_and_the_history_says_from_whom(inbox):
    task_id = inbox.start()
    inbox.call("POST", f"/tasks/{task_id}/claim", "carol")

    taken = inbox.call("POST", f"/tasks/{task_id}/claim", "admin")

    assert taken.status_code == 200
    assert (taken.json["state"], taken.json["assignee"]) == ("claimed", "admin")
    assigned = [e for e in inbox.outbox(task_id) if e["type"] == "task.assigned"]
    assert assigned[-1]["taken_from"] == "carol" and assigned[-1]["reason"] == "taken over"
    late = inbox.call(
        "POST", f"/tasks/{task_id}/complete", "carol", {"variables": {"decision": "approve"}}
    )
    assert late.status_code == 409
    assert inbox.call("POST", f"/tasks/{task_id}/unclaim", "admin").status_code == 200
    assert inbox.call("POST", f"/tasks/{task_id}/claim", "carl").status_code == 200
    assert [who for kind, who in inbox.history(task_id) if kind == "task_claimed"] == [
        "carol",
        "admin",
        "carl",
    ]


def test_unclaimed_task_goes_back_to_the_group_and_another_candidate_can_take_it(inbox):
    task_id = inbox.start()
    inbox.call("POST", f"/tasks/{task_id}/claim", "carol")
    assert inbox.call("POST", f"/tasks/{task_id}/unclaim", "carl").status_code == 409
    released = inbox.call("POST", f"/tasks/{task_id}/unclaim", "carol")
    assert (released.json["state"], released.json["assignee"]) == ("created", None)
    assert inbox.call("POST", f"/tasks/{task_id}/claim", "carl").status_code == 200
    assert ("task_unclaimed", "carol") in inbox.history(task_id)


def test_completing_a_finished_task_is_409(inbox):
    task_id = inbox.start()
    body = {"variables": {"decision": "reject"}}
    assert inbox.call("POST", f"/tasks/{task_id}/complete", "carol", body).status_code == 200
    assert inbox.call("POST", f"/tasks/{task_id}/complete", "carol", body).status_code == 409
    assert inbox.call("POST", f"/tasks/{task_id}/claim", "carl").status_code == 409


# Delegation -------------------------------------------------------------------------------


def _delegation(inbox: Inbox, hours: int) -> None:
    window = {
        "delegate": "dave",
        "valid_from": (MONDAY - timedelta(hours=1)).isoformat(),
        "valid_to": (MONDAY + timedelta(hours=hours)).isoformat(),
        "reason": "holiday",
    }
    assert inbox.call("POST", "/delegations", "carol", window).status_code == 201


def test_delegate_completes_inside_the_delegation_window(inbox):
    task_id = inbox.start()
    _delegation(inbox, hours=8)
    inbox.call("POST", f"/tasks/{task_id}/claim", "carol")
    handed = inbox.call("POST", f"/tasks/{task_id}/delegate", "carol", {"user": "dave"})
    assert handed.status_code == 200
    assert (handed.json["state"], handed.json["assignee"]) == ("delegated", "dave")
    done = inbox.call(
        "POST", f"/tasks/{task_id}/complete", "dave", {"variables": {"decision": "approve"}}
    )
    assert done.status_code == 200
    assert ("task_delegated", "carol") in inbox.history(task_id)
    assert [e["reason"] for e in inbox.outbox(task_id) if e["type"] == "task.assigned"] == [
        "claimed",
        "delegated",
    ]


def test_delegate_is_refused_once_the_delegation_window_has_closed(inbox, clock):
    task_id = inbox.start()
    _delegation(inbox, hours=8)
    inbox.call("POST", f"/tasks/{task_id}/claim", "carol")
    inbox.call("POST", f"/tasks/{task_id}/delegate", "carol", {"user": "dave"})
    clock.now = MONDAY + timedelta(hours=9)
    late = inbox.call(
        "POST", f"/tasks/{task_id}/complete", "dave", {"variables": {"decision": "approve"}}
    )
    assert late.status_code == 403
    assert "not in force" in late.json["detail"]
    assert inbox.call("GET", f"/tasks/{task_id}", "carol").json["status"] == "open"


def test_standing_delegate_acts_for_the_assignee_only_inside_the_window(inbox, clock):
    first, second = inbox.start("PR-1"), inbox.start("PR-2")
    _delegation(inbox, hours=8)
    for task_id in (first, second):
        inbox.call("POST", f"/tasks/{task_id}/claim", "carol")
    body = {"variables": {"decision": "approve"}}
    assert inbox.call("POST", f"/tasks/{first}/complete", "dave", body).status_code == 200
    clock.now = MONDAY + timedelta(days=1)
    assert inbox.call("POST", f"/tasks/{second}/complete", "dave", body).status_code == 403


def test_delegating_to_someone_neither_candidate_nor_delegate_is_403(inbox):
    task_id = inbox.start()
    inbox.call("POST", f"/tasks/{task_id}/claim", "carol")
    refused = inbox.call("POST", f"/tasks/{task_id}/delegate", "carol", {"user": "sam"})
    assert refused.status_code == 403
    to_candidate = inbox.call("POST", f"/tasks/{task_id}/delegate", "carol", {"user": "bella"})
    assert to_candidate.json["assignee"] == "bella"
    missing = inbox.call("POST", f"/tasks/{task_id}/delegate", "bella", {})
    assert missing.status_code == 400 and missing.json["errors"][0]["field"] == "user"


def test_delegating_to_a_user_name_longer_than_its_column_is_refused_and_the_task_stays(inbox):
    task_id = inbox.start()
    refused = inbox.call("POST", f"/tasks/{task_id}/delegate", "admin", {"user": "u" * 201})
    assert refused.status_code == 422 and refused.json["errors"][0]["field"] == "user"
    assert inbox.call("GET", f"/tasks/{task_id}", "admin").json["assignee"] is None


def test_a_delegation_reason_past_two_thousand_characters_is_refused_naming_it(inbox):
    window = {
        "valid_from": MONDAY.isoformat(),
        "valid_to": (MONDAY + timedelta(days=1)).isoformat(),
    }
    body = {"delegate": "dave", **window, "reason": "r" * 2001}
    refused = inbox.call("POST", "/delegations", "carol", body)
    assert refused.status_code == 422 and refused.json["errors"][0]["field"] == "reason"
    assert (
        inbox.call("POST", "/delegations", "carol", {**body, "reason": "r" * 2000}).status_code
        == 201
    )


def test_delegation_window_must_end_after_it_starts(inbox):
    bad = inbox.call(
        "POST",
        "/delegations",
        "carol",
        {"delegate": "dave", "valid_from": MONDAY.isoformat(), "valid_to": MONDAY.isoformat()},
    )
    assert bad.status_code == 422 and bad.json["errors"][0]["field"] == "valid_to"
    naive = inbox.call(
        "POST",
        "/delegations",
        "carol",
        {"delegate": "dave", "valid_from": "2026-11-23T09:00", "valid_to": "2026-11-24T09:00"},
    )
    assert naive.status_code == 400 and naive.json["errors"][0]["field"] == "valid_from"


# Forms and context ----------------------------------------------------------------------------


def test_form_errors_are_422_listing_every_field_and_the_task_is_unchanged(inbox):
    task_id = inbox.start()
    inbox.call("POST", f"/tasks/{task_id}/claim", "carol")
    before = inbox.call("GET", f"/tasks/{task_id}", "carol").json
    events_before = inbox.history(task_id)
    bad = {
        "approved_amount": "60000",
        "copies": 7,
        "cost_center": "XX-1",
    }
    refused = inbox.call("POST", f"/tasks/{task_id}/complete", "carol", {"variables": bad})
    assert refused.status_code == 422
    assert refused.mimetype == "application/problem+json"
    assert {e["field"] for e in refused.json["errors"]} == {
        "decision",
        "approved_amount",
        "copies",
        "cost_center",
    }
    assert inbox.call("GET", f"/tasks/{task_id}", "carol").json == before
    assert inbox.history(task_id) == events_before


def test_task_shows_its_form_as_json_schema_and_a_context_for_a_human(inbox):
    task_id = inbox.start("PR-2001")
    task = inbox.call("GET", f"/tasks/{task_id}", "carol").json
    schema = task["form"]["schema"]
    assert schema["required"] == ["decision"]
    assert schema["properties"]["copies"] == {"title": "Copies", "type": "integer", "maximum": 3}
    assert schema["properties"]["approved_amount"]["format"] == "decimal"
    assert schema["properties"]["cost_center"]["pattern"] == "^(?:CC-[0-9]{3})$"
    context = task["context"]
    assert (context["business_key"], context["supplier"], context["currency"]) == (
        "PR-2001",
        "S001",
        "CNY",
    )
    assert {"field": "requisition.lines_total", "value": "3500.00"} in context["amounts"]
    assert [f["rule_id"] for f in context["decision"]["fired"]] == ["remind_assignee", "escalate"]
    assert "escalate to finance_director" in context["decision"]["fired"][1]["reason"]
    assert context["links"]["diagram"] == "/api/v1/definitions/review/versions/1/bpmn"
    assert context["links"]["instance"].startswith("/api/v1/instances/")


def test_decimal_form_value_is_stored_exactly(inbox):
    task_id = inbox.start()
    variables = {"decision": "approve", "approved_amount": "1234.56", "cost_center": "CC-100"}
    done = inbox.call("POST", f"/tasks/{task_id}/complete", "carol", {"variables": variables})
    instance = inbox.call("GET", f"/instances/{done.json['id']}", "carol").json
    assert instance["variables"]["approved_amount"] == "1234.56"


# Assignment by expression -------------------------------------------------------------------


def test_expression_assignee_resolves_from_process_data(inbox):
    task_id = inbox.start(process="assigned", requester_manager="dave")
    task = inbox.call("GET", f"/tasks/{task_id}", "dave").json
    assert (task["assignee"], task["state"]) == ("dave", "created")
    mine = inbox.call("GET", "/tasks?scope=mine", "dave").json
    assert [t["id"] for t in mine["items"]] == [task_id]
    assert inbox.call("POST", f"/tasks/{task_id}/claim", "sam").status_code == 403
    assert inbox.call("POST", f"/tasks/{task_id}/unclaim", "dave").status_code == 409
    assert inbox.call("POST", f"/tasks/{task_id}/complete", "dave", {}).status_code == 200


def test_a_model_assigned_task_an_admin_took_over_goes_back_to_its_assignee_on_unclaim(inbox):
    task_id = inbox.start(process="assigned", requester_manager="dave")
    assert inbox.call("POST", f"/tasks/{task_id}/claim", "admin").status_code == 200
    assert inbox.call("GET", "/tasks?scope=mine", "dave").json["items"] == []

    released = inbox.call("POST", f"/tasks/{task_id}/unclaim", "admin")

    assert released.status_code == 200
    assert (released.json["assignee"], released.json["state"]) == ("dave", "created")
    mine = inbox.call("GET", "/tasks?scope=mine", "dave").json
    assert [t["id"] for t in mine["items"]] == [task_id]
    assigned = [e for e in inbox.outbox(task_id) if e["type"] == "task.assigned"]
    assert (assigned[-1]["assignee"], assigned[-1]["reason"]) == ("dave", "returned")
    assert inbox.call("POST", f"/tasks/{task_id}/complete", "dave", {}).status_code == 200


def test_assignee_expression_that_fails_offers_the_task_to_admins_only(inbox):
    task_id = inbox.start(process="assigned", unrelated=1)
    task = inbox.call("GET", f"/tasks/{task_id}", "admin").json
    assert (task["assignee"], task["candidate_groups"]) == (None, ["admin"])
    assert inbox.call("POST", f"/tasks/{task_id}/claim", "dave").status_code == 403
    instance = inbox.call("GET", f"/instances/{task['instance_id']}", "admin").json
    assert "task_assignment_failed" in [h["type"] for h in instance["history"]]


# Comments ---------------------------------------------------------------------------------


def test_comments_show_on_the_task_and_in_the_instance_history(inbox):
    task_id = inbox.start()
    added = inbox.call("POST", f"/tasks/{task_id}/comments", "carol", {"text": "Call supplier"})
    assert added.status_code == 201 and added.json["author"] == "carol"
    inbox.call("POST", f"/tasks/{task_id}/comments", "bella", {"text": "Price agreed"})
    listed = inbox.call("GET", f"/tasks/{task_id}/comments", "sam").json["items"]
    assert [(c["author"], c["text"]) for c in listed] == [
        ("carol", "Call supplier"),
        ("bella", "Price agreed"),
    ]
    task = inbox.call("GET", f"/tasks/{task_id}", "carol").json
    assert [c["text"] for c in task["comments"]] == ["Call supplier", "Price agreed"]
    history = inbox.call("GET", f"/instances/{task['instance_id']}", "carol").json["history"]
    assert [h["details"]["text"] for h in history if h["type"] == "task_commented"] == [
        "Call supplier",
        "Price agreed",
    ]


def test_comment_from_outsider_is_403_and_an_empty_one_is_422(inbox):
    task_id = inbox.start()
    outsider = inbox.call("POST", f"/tasks/{task_id}/comments", "dave", {"text": "hi"})
    assert outsider.status_code == 403
    empty = inbox.call("POST", f"/tasks/{task_id}/comments", "carol", {"text": "   "})
    assert empty.status_code == 422 and empty.json["errors"][0]["field"] == "text"
    assert inbox.call("GET", f"/tasks/{task_id}/comments", "carol").json["items"] == []


def test_a_comment_longer_than_4000_characters_is_refused_naming_text(inbox):
    task_id = inbox.start()
    path = f"/tasks/{task_id}/comments"

    too_long = inbox.call("POST", path, "carol", {"text": "x" * 4001})

    assert too_long.status_code == 422 and too_long.json["errors"][0]["field"] == "text"
    assert inbox.call("GET", path, "carol").json["items"] == []
    assert inbox.call("POST", path, "carol", {"text": "x" * 4000}).status_code == 201


def test_comments_cannot_be_edited_or_deleted(inbox):
    task_id = inbox.start()
    inbox.call("POST", f"/tasks/{task_id}/comments", "carol", {"text": "first"})
    for method in ("PUT", "PATCH", "DELETE"):
        assert inbox.call(method, f"/tasks/{task_id}/comments", "carol", {}).status_code == 405


# Queries ----------------------------------------------------------------------------------


def test_inbox_pages_and_counts_what_each_person_may_work(inbox, clock):
    ids = []
    for n in range(7):
        clock.now = MONDAY + timedelta(minutes=n)
        ids.append(inbox.start(f"PR-{n}"))
    inbox.call("POST", f"/tasks/{ids[0]}/claim", "carl")
    pages = [
        inbox.call("GET", f"/tasks?scope=mine&page={p}&page_size=4", "carol").json for p in (1, 2)
    ]
    assert [p["total"] for p in pages] == [6, 6]
    assert [len(p["items"]) for p in pages] == [4, 2]
    assert pages[0]["pages"] == 2
    assert [t["id"] for p in pages for t in p["items"]] == ids[1:]
    carl = inbox.call("GET", "/tasks?scope=mine&page_size=50", "carl").json
    assert carl["total"] == 7 and carl["items"][0]["id"] == ids[0]
    group = inbox.call("GET", "/tasks?scope=group", "carl").json
    assert group["total"] == 6
    assert inbox.call("GET", "/tasks?scope=mine", "bella").json["total"] == 6
    assert inbox.call("GET", "/tasks?scope=mine", "dave").json["total"] == 0
    assert inbox.call("GET", "/tasks?scope=all", "admin").json["total"] == 7
    keyed = inbox.call("GET", "/tasks?business_key=PR-3", "carol").json
    assert [t["business_key"] for t in keyed["items"]] == ["PR-3"]
    claimed = inbox.call("GET", "/tasks?scope=all&state=claimed", "admin").json
    assert [t["id"] for t in claimed["items"]] == [ids[0]]


def test_overdue_filter_and_due_date_sort(inbox, clock):
    first = inbox.start("PR-1")
    clock.now = MONDAY + timedelta(days=2)
    second = inbox.start("PR-2")
    clock.now = MONDAY + timedelta(days=4)
    overdue = inbox.call("GET", "/tasks?overdue=true", "carol").json
    assert [t["id"] for t in overdue["items"]] == [first] and overdue["total"] == 1
    latest_due_first = inbox.call("GET", "/tasks?sort=-due_at", "carol").json
    assert [t["id"] for t in latest_due_first["items"]] == [second, first]


def test_completed_tasks_are_listed_for_who_completed_them(inbox):
    task_id = inbox.start()
    inbox.call("POST", f"/tasks/{task_id}/complete", "carol", {"variables": {"decision": "reject"}})
    done = inbox.call("GET", "/tasks?status=completed", "carol").json
    assert [t["id"] for t in done["items"]] == [task_id]
    assert inbox.call("GET", "/tasks", "carol").json["total"] == 0
    assert inbox.call("GET", "/tasks?status=completed", "carl").json["total"] == 0


@pytest.mark.parametrize(
    "query", ["scope=everyone", "status=done", "sort=name", "overdue=yes", "page=0"]
)
def test_bad_inbox_query_is_400_naming_the_problem(inbox, query):
    response = inbox.call("GET", f"/tasks?{query}", "carol")
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


def test_two_candidates_claiming_at_once_one_wins_the_other_gets_409(inbox):
    from concurrent.futures import ThreadPoolExecutor

    task_id = inbox.start()
    with ThreadPoolExecutor(2) as pool:
        codes = sorted(
            pool.map(
                lambda user: inbox.call("POST", f"/tasks/{task_id}/claim", user).status_code,
                ["carol", "carl"],
            )
        )
    assert codes == [200, 409]
    assert [h[0] for h in inbox.history(task_id)].count("task_claimed") == 1


def test_task_offered_by_name_and_by_group_counts_once(inbox):
    task_id = inbox.start("PR-9", **purchase(backup_user="carol"))
    mine = inbox.call("GET", "/tasks?scope=mine", "carol").json
    assert (mine["total"], [t["id"] for t in mine["items"]]) == (1, [task_id])
    due_sorted = inbox.call("GET", "/tasks?scope=mine&sort=due_at", "carol").json
    assert due_sorted["total"] == 1
