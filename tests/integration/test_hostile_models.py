"""The hostile BPMN corpus (tests/fixtures/hostile/) uploaded over HTTP: each model is refused
at deploy time naming the element or the file, or runs into an incident, quickly, and the
server keeps answering. test_deploy.py mutates approval.bpmn at the catalog level; this file
covers standalone models (XML bombs, other tools' exports, escapes) through the API."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from api.app import create_app
from tests.e2e.test_http_flow import multipart

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"

# file -> the element the error must name (None: the document itself), and what it says.
REFUSED = {
    "billion_laughs.bpmn": (None, "DTDs and entities are not allowed"),
    "external_entity.bpmn": (None, "DTDs and entities are not allowed"),
    "remote_dtd_after_padding.bpmn": (None, "DTDs and entities are not allowed"),
    "malformed.bpmn": (None, "not well-formed"),
    "not_bpmn.bpmn": (None, "no executable process"),
    "script_import.bpmn": ("evil", "import is not allowed"),
    "script_open_file.bpmn": ("evil", "'open' is not allowed"),
    "script_eval.bpmn": ("evil", "'eval' is not allowed"),
    "script_dunder_escape.bpmn": ("evil", "'.__class__' is not allowed"),
    "script_getattr_escape.bpmn": ("evil", "'getattr' is not allowed"),
    "no_start_event.bpmn": ("no_start", "no start event"),
    "dangling_flow.bpmn": ("f1", "'nowhere' is not an element"),
    "unknown_topic.bpmn": ("call_erp", "unknown service topic"),
    "foreign_zeebe.bpmn": ("charge", "no camunda:topic"),
}
# Valid BPMN whose scripts only misbehave when run: the instance gets an incident.
RUNAWAY = {
    "script_loop_forever.bpmn": "step limit",
    "script_memory_bomb.bpmn": "limit is 1,000,000",
}


@pytest.fixture
def client(container):
    return create_app(container=container).test_client()


@pytest.fixture
def auth(container) -> dict[str, dict[str, str]]:
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    return {
        "analyst": bearer(container.tokens.issue("ann", ["analyst"])),
        "erp": bearer(container.tokens.create_key("erp", ["erp_system"])),
    }


def upload(client, auth, name: str, content: bytes, path: str = "/api/v1/definitions"):
    # A prebuilt body: the test client's own multipart encoder leaves a temp file open for
    # uploads this large, which pytest (warnings as errors) reports.
    body, content_type = multipart(name, content)
    started = time.perf_counter()
    response = client.post(path, headers=auth["analyst"], data=body, content_type=content_type)
    return response, time.perf_counter() - started


def test_the_corpus_is_complete():
    assert {p.name for p in CORPUS.iterdir()} == set(REFUSED) | set(RUNAWAY) | {
        "foreign_signavio.bpmn"
    }


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_hostile_model_is_refused_naming_the_element_and_nothing_is_deployed(client, auth, name):
    element, message = REFUSED[name]
    for path in ("/api/v1/definitions/validate", "/api/v1/definitions"):
        response, elapsed = upload(client, auth, name, (CORPUS / name).read_bytes(), path)
        assert response.status_code == 422, response.json
        assert response.mimetype == "application/problem+json"
        assert elapsed < 2
        errors = response.json["errors"]
        assert any(e.get("element_id") == element and message in e["message"] for e in errors), (
            errors
        )
    listed = client.get("/api/v1/definitions", headers=auth["analyst"]).json
    assert listed["items"] == []
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("name", sorted(RUNAWAY))
def test_runaway_script_deploys_but_its_instance_stops_with_an_incident(client, auth, name):
    response, _ = upload(client, auth, name, (CORPUS / name).read_bytes())
    assert response.status_code == 201, response.json
    started = time.perf_counter()
    instance = client.post(
        f"/api/v1/processes/{response.json['key']}/instances",
        headers=auth["erp"],
        json={"business_key": "X-1", "variables": {}},
    )
    assert time.perf_counter() - started < 5
    assert instance.status_code == 201
    assert instance.json["status"] == "incident"
    assert instance.json["incident"]["element_id"] == "evil"
    assert RUNAWAY[name] in instance.json["incident"]["error"]
    assert client.get("/readyz").status_code == 200


def test_a_model_from_another_tool_runs_only_what_flowgate_understands(client, auth):
    """Signavio/Activiti extensions are ignored; the user task waits with no candidates."""
    response, _ = upload(
        client, auth, "foreign_signavio.bpmn", (CORPUS / "foreign_signavio.bpmn").read_bytes()
    )
    assert response.status_code == 201, response.json
    instance = client.post(
        "/api/v1/processes/signavio_review/instances",
        headers=auth["erp"],
        json={"business_key": "R-1"},
    ).json
    assert instance["status"] == "running"
    assert [(t["element_id"], t["candidate_groups"]) for t in instance["active_tasks"]] == [
        ("review", [])
    ]


def test_a_file_over_the_document_limit_is_422_and_over_the_body_limit_413(client, auth):
    model = (CORPUS / "foreign_signavio.bpmn").read_bytes()
    padded = model.replace(b"<process", b"<!--" + b"x" * (3 * 1024 * 1024) + b"--><process", 1)
    response, elapsed = upload(client, auth, "huge.bpmn", padded)
    assert response.status_code == 422 and elapsed < 2
    assert "larger than" in response.json["errors"][0]["message"]
    response, _ = upload(client, auth, "huger.bpmn", b" " * (5 * 1024 * 1024))
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"


def test_deeply_nested_xml_is_refused_without_recursing(client, auth):
    depth = 100_000
    body = (
        b'<?xml version="1.0"?><bpmn:definitions '
        b'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="x">'
        + b"<a>" * depth
        + b"</a>" * depth
        + b"</bpmn:definitions>"
    )
    response, elapsed = upload(client, auth, "nested.bpmn", body)
    assert response.status_code == 422 and elapsed < 5
