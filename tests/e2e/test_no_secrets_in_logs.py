"""The logs of a full end-to-end run are JSON lines and hold no token, key or secret.

The real server runs at DEBUG level through the order flow, the scheduler's timer, the bad
requests, a webhook subscription, the audit export and a forged key; then every token, key and
secret used is searched for in its output. The one exception is the demo banner, which
`flowgate serve` prints on purpose in embedded demo mode (DESIGN §5); it is cut out first.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tests.e2e import test_http_flow as flow
from tests.e2e.conftest import start_server

SIGNING_KEY = "e2e-signing-key-that-must-never-be-logged"
WEBHOOK_SECRET = "whsec-e2e-0123456789abcdef"
FORGED_KEY = "fgk_forgedKeyThatDoesNotExist0123456789"
PRINTED = ("deployed ", "flowgate serving on ")


def without_demo_banner(lines: list[str]) -> list[str]:
    kept, in_banner = [], False
    for line in lines:
        if line.startswith("demo tokens (also in "):
            in_banner = True
            continue
        if in_banner and line.startswith("  "):
            continue
        in_banner = False
        kept.append(line)
    return kept


def test_a_full_run_logs_json_lines_and_never_a_token_key_or_secret(tmp_path: Path):
    (tmp_path / "processes").mkdir()
    server = start_server(
        tmp_path, {"FLOWGATE_SECRET_KEY": SIGNING_KEY, "FLOWGATE_LOG_LEVEL": "DEBUG"}
    )
    try:
        flow.test_order_flows_through_service_gateway_task_message_and_timer(server)
        flow.test_boundary_timer_fires_by_the_servers_scheduler(server)
        flow.test_bad_requests_get_problem_json_never_500(server)
        hook = {"url": "http://127.0.0.1:9/hook", "events": ["*"], "secret": WEBHOOK_SECRET}
        assert server.call("POST", "/api/v1/webhooks", hook, token="admin")[0] == 201
        export = urllib.request.Request(
            server.base + "/api/v1/audit/export",
            headers={"Authorization": f"Bearer {server.tokens['auditor']}"},
        )
        with urllib.request.urlopen(export, timeout=30) as response:
            events = [json.loads(line) for line in response.read().splitlines()]
        assert {"definition_deployed", "task_completed", "timer_fired"} <= {
            e["action"] for e in events
        }
        assert server.call("GET", "/api/v1/audit/verify", token="auditor")[1]["ok"] is True
        assert server.call("GET", "/api/v1/instances", token=FORGED_KEY)[0] == 401
        assert server.call("GET", "/api/v1/instances", token=SIGNING_KEY)[0] == 401
    finally:
        server.stop()

    lines = without_demo_banner(server.log.read_text().splitlines())
    log = "\n".join(lines)
    secrets = {*server.tokens.values(), SIGNING_KEY, WEBHOOK_SECRET, FORGED_KEY}
    assert len(secrets) >= 14
    leaked = [s[:12] + "…" for s in secrets if s in log]
    assert leaked == []

    structured = [json.loads(line) for line in lines if line and not line.startswith(PRINTED)]
    requests = [e for e in structured if e["message"] == "request"]
    assert len(requests) > 20
    assert {"request_id", "method", "path", "status", "duration_ms", "actor"} <= set(requests[0])
    assert any(e["status"] == 401 and e["actor"] is None for e in requests)
