"""Drive a small model through the real server over HTTP: the newcomer's walk-through."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from tests.e2e.conftest import Server

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "approval.bpmn"


def multipart(name: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: application/xml\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def deploy(server: Server, content: bytes, name: str = "approval.bpmn") -> tuple[int, dict]:
    body, kind = multipart(name, content)
    return server.call("POST", "/api/v1/definitions", raw=body, content_type=kind, token="analyst")


def e2e_model() -> bytes:
    # The server has only built-in topics; the approver group arrives as a start variable.
    return FIXTURE.read_bytes().replace(b"demo.lookup", b"outbox.publish")


def test_order_flows_through_service_gateway_task_message_and_timer(server: Server):
    status, deployed = deploy(server, e2e_model())
    assert status == 201 and deployed["version"] == 1
    assert deploy(server, e2e_model())[0] == 200

    start = {
        "business_key": "SO-1",
        "variables": {
            "amount": 5000,
            "approver_group": "credit_manager",
            "approval_timeout": "P1D",
        },
    }
    status, instance = server.call(
        "POST",
        "/api/v1/processes/approval/instances",
        start,
        token="erp",
        headers={"Idempotency-Key": "so-1"},
    )
    assert status == 201, instance
    assert (
        server.call(
            "POST",
            "/api/v1/processes/approval/instances",
            start,
            token="erp",
            headers={"Idempotency-Key": "so-1"},
        )[1]["id"]
        == instance["id"]
    )

    status, inbox = server.call("GET", "/api/v1/tasks?scope=mine", token="carol")
    assert status == 200 and inbox["total"] == 1
    task = inbox["items"][0]
    assert task["form"]["fields"][0]["id"] == "decision"

    status, problem = server.call(
        "POST",
        f"/api/v1/tasks/{task['id']}/complete",
        {"variables": {"decision": "perhaps"}},
        token="carol",
    )
    assert status == 422 and problem["errors"][0]["field"] == "decision"
    status, _ = server.call(
        "POST",
        f"/api/v1/tasks/{task['id']}/complete",
        {"variables": {"decision": "approve"}},
        token="carol",
    )
    assert status == 200
    assert (
        server.call(
            "POST",
            f"/api/v1/tasks/{task['id']}/complete",
            {"variables": {"decision": "approve"}},
            token="carol",
        )[0]
        == 409
    )

    status, delivered = server.call(
        "POST",
        "/api/v1/messages",
        {
            "name": "payment_received",
            "correlation_key": "SO-1",
            "payload": {"amount": "5000.00"},
            "message_id": "pay-1",
        },
        token="erp",
    )
    assert status == 200 and delivered["instance_status"] == "completed"

    status, detail = server.call("GET", f"/api/v1/instances/{instance['id']}", token="auditor")
    assert detail["status"] == "completed" and detail["variables"]["paid"] == "5000.00"
    assert "outbox_queued" in [e["type"] for e in detail["history"]]


def test_boundary_timer_fires_by_the_servers_scheduler(server: Server):
    deploy(server, e2e_model())
    _, instance = server.call(
        "POST",
        "/api/v1/processes/approval/instances",
        {
            "business_key": "SO-2",
            "variables": {
                "amount": 5000,
                "approver_group": "credit_manager",
                "approval_timeout": "PT0.5S",
            },
        },
        token="erp",
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        _, detail = server.call("GET", f"/api/v1/instances/{instance['id']}", token="admin")
        if detail["status"] == "completed":
            break
        time.sleep(0.2)
    assert detail["status"] == "completed"
    assert "timer_fired" in [e["type"] for e in detail["history"]]


def test_bad_requests_get_problem_json_never_500(server: Server):
    assert server.call("GET", "/api/v1/tasks")[0] == 401
    assert server.call("GET", "/api/v1/tasks", token="not-a-token")[0] == 401
    assert server.call("POST", "/api/v1/processes/approval/instances", {}, token="carol")[0] == 403
    status, problem = server.call(
        "POST", "/api/v1/processes/approval/instances", raw=b"{not json", token="erp"
    )
    assert status == 400 and problem["title"] == "Bad request"
    assert server.call("POST", "/api/v1/processes/nope/instances", {}, token="erp")[0] == 404
    status, problem = deploy(server, b"<bpmn:definitions xmlns:bpmn='x'/>")
    assert status == 422
    hostile = FIXTURE.read_bytes().replace(
        b'paid = payment_received["amount"]', b"__import__('os').system('id')"
    )
    status, problem = deploy(server, hostile)
    assert status == 422 and problem["errors"][0]["element_id"] == "book"
    assert server.call("GET", "/healthz")[0] == 200
