"""W3: order to cash straight through (no holds) over HTTP on SQLite, against the same model run
by plain in-memory SpiffWorkflow (issue 4).

Run: .venv/bin/python -m bench.bench_o2c [--instances N] [--threads T] [--profile]
Target (2 cores, SQLite): at least 50 completed O2C instances/s through HTTP.

Each instance is one grade-A order for a released lot with stock, driven as the ERP drives it:
`POST /processes/order_to_cash/instances`, `POST /messages shipment_confirmed` (the UDIs of the
shipped units) and `POST /messages payment_received` for the full amount, which closes it. That
is three commands; between them the engine runs the model's 20-odd service, rule and gateway
steps, the `credit` and `shipment` decisions, three journal entries and the outbox rows.

The in-memory baseline runs the same BPMN with every service and business rule task as a no-op,
the gateway variables of the straight path preset, and the two messages caught directly.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.camunda.parser.task_spec import CamundaTaskParser
from SpiffWorkflow.camunda.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.util.task import TaskState

from bench.http_load import Client, drive
from bench.measure import Throughput
from bench.spiff_memory import NoOpServiceTask, PlainParser
from tests.e2e.conftest import ROOT, Server, start_server

MODEL = ROOT / "processes" / "order_to_cash.bpmn"
PROCESS_KEY = "order_to_cash"
GTIN = "06901234567892"
LOT = "LW3"
CUSTOMER = "W3-A"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
COMMANDS_PER_INSTANCE = 3
WARM_UP = 20
GOAL = 50.0

# One ERP key sends every command here, so its rate limit is off; access logs are not timed.
QUIET_UNLIMITED = {"FLOWGATE_RATE_LIMIT_PER_MINUTE": "0", "FLOWGATE_LOG_LEVEL": "WARNING"}

Call = Callable[[str, str, Any], Any]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_o2c", description=__doc__)
    parser.add_argument("--instances", type=int, default=int(os.environ.get("BENCH_O2C_N", 300)))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 4)))
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the in-process path; print top costs"
    )
    return parser.parse_args(argv)


# The workload, over any transport ------------------------------------------------------------


def seed(call: Call) -> None:
    """A grade-A customer with room for every order and a released lot with stock for all."""
    call("PUT", f"/api/v1/customers/{CUSTOMER}", {
        "name": "W3 Hospital", "currency": "CNY", "credit_limit": "1000000000.00",
        "payment_terms_days": 30, "license_expires_on": "2035-12-31", "grade": "A",
    })  # fmt: skip
    call("PUT", f"/api/v1/lots/{GTIN}/{LOT}", {
        "expiry_date": "2030-12-31", "status": "released", "unit_cost": "50.00",
        "qty_on_hand": 10_000_000,
    })  # fmt: skip


class W3:
    """One order to cash, straight through; times each of its three commands."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.commands: list[float] = []
        self.lock = threading.Lock()

    def _timed(self, call: Call, method: str, path: str, body: Any) -> Any:
        begun = time.perf_counter()
        answer = call(method, path, body)
        with self.lock:
            self.commands.append(time.perf_counter() - begun)
        return answer

    def _message(self, call: Call, name: str, order_no: str, payload: dict[str, Any]) -> Any:
        body = {
            "name": name,
            "correlation_key": order_no,
            "payload": {"order_no": order_no, **payload},
        }
        return self._timed(call, "POST", "/api/v1/messages", body)

    def __call__(self, call: Call, n: int) -> None:
        order_no = f"SO-{self.run}-{n}"
        line = {"line_no": 1, "gtin": GTIN, "lot": LOT, "qty": 2,
                "unit_price": "1200.00", "tax_rate": "0.13"}  # fmt: skip
        order = {"order_no": order_no, "customer_id": CUSTOMER, "currency": "CNY",
                 "order_date": "2026-11-23", "requested_ship_date": "2026-11-25",
                 "lines": [line]}  # fmt: skip
        started = self._timed(
            call,
            "POST",
            f"/api/v1/processes/{PROCESS_KEY}/instances",
            {"business_key": order_no, "variables": {"order": order}},
        )
        if [w["name"] for w in started["waiting_for"]] != ["shipment_confirmed"]:
            raise RuntimeError(f"W3 order {order_no} was held: {started}")
        udis = [f"(01){GTIN}(17)301231(10){LOT}(21){order_no}-{k}" for k in (1, 2)]
        self._message(call, "shipment_confirmed", order_no, {
            "ship_date": "2026-11-25", "lines": [{"line_no": 1, "qty": 2, "udis": udis}],
        })  # fmt: skip
        paid = self._message(call, "payment_received", order_no, {
            "invoice_no": f"INV-{order_no}", "amount": "2712.00", "paid_on": "2026-12-20",
        })  # fmt: skip
        if paid.get("instance_status") != "completed":
            raise RuntimeError(f"W3 order {order_no} did not close: {paid}")


# Through the real server ---------------------------------------------------------------------


def serve(tmp: Path) -> Server:
    (tmp / "processes").mkdir()
    shutil.copy(MODEL, tmp / "processes")
    # Production settings otherwise: the scheduler's ticks compete for the same cores.
    return start_server(
        tmp,
        {
            "FLOWGATE_SCHEDULER": "on",
            "FLOWGATE_TICK_SECONDS": "1",
            **QUIET_UNLIMITED,
        },
    )


def over_http(server: Server, count: int, threads: int) -> tuple[Throughput, W3]:
    token = server.tokens["erp"]

    def over(client: Client) -> Call:
        return lambda method, path, body: client.call(method, path, token, body)

    seed(over(Client(server.base)))
    warm = W3("warm")
    for n in range(WARM_UP):
        warm(over(Client(server.base)), n)
    work = W3("http")
    figure = drive(server.base, count, threads, lambda client, n: work(over(client), n))
    return figure, work


# In process: the same requests through Flask's test client, no sockets -----------------------


def in_process_client(tmp: Path) -> tuple[Any, Call]:
    """The embedded container on its own SQLite file with the O2C model deployed, and a call
    through Flask's test client as the ERP key; the caller closes the container."""
    from api.app import create_app
    from api.bootstrap import bootstrap, deploy_directory
    from api.settings import Settings

    (tmp / "models").mkdir()
    shutil.copy(MODEL, tmp / "models")
    settings = Settings.from_env(
        {
            "FLOWGATE_DATA_DIR": str(tmp),
            "FLOWGATE_SCHEDULER": "off",
            **QUIET_UNLIMITED,
        }
    )
    container = bootstrap(settings)
    try:
        deploy_directory(container, tmp / "models")
        client = create_app(container=container).test_client()
        key = container.tokens.create_key("w3", ["erp_system"])
    except BaseException:
        container.close()
        raise
    headers = {"Authorization": f"Bearer {key}"}

    def call(method: str, path: str, body: Any) -> Any:
        response = client.open(path, method=method, json=body, headers=headers)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.json}")
        return response.json

    return container, call


def in_process(tmp: Path, count: int, profile: bool) -> tuple[Throughput, str]:
    container, call = in_process_client(tmp)
    try:
        seed(call)
        warm = W3("warm")
        for n in range(WARM_UP):
            warm(call, n)
        work, latencies = W3("inproc"), []
        begun = time.perf_counter()
        for n in range(count):
            one = time.perf_counter()
            work(call, n)
            latencies.append(time.perf_counter() - one)
        elapsed = time.perf_counter() - begun
        # Profiled separately: cProfile roughly halves the rate it watches.
        report = _profiled(lambda n: work(call, n), range(count, 2 * count)) if profile else ""
        return Throughput(count, elapsed, latencies), report
    finally:
        container.close()


def _profiled(one: Callable[[int], None], numbers: range) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for n in numbers:
        one(n)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
    stats.print_stats(40)
    stats.sort_stats("tottime").print_stats(25)
    return out.getvalue()


# Plain in-memory SpiffWorkflow ---------------------------------------------------------------


class NoDecisionParser(CamundaTaskParser):
    @staticmethod
    def get_decision_ref(node: Any) -> str:
        return node.get(f"{{{CAMUNDA}}}decisionRef")


class O2CPlainParser(PlainParser):
    """Business rule tasks are no-ops too: the decision is preset in the gateway variables."""

    OVERRIDE_PARSER_CLASSES = {
        **PlainParser.OVERRIDE_PARSER_CLASSES,
        full_tag("businessRuleTask"): (NoDecisionParser, NoOpServiceTask),
    }


# What the handlers return on the straight path; every other branch's variable is false/empty.
STRAIGHT_PATH = {
    "credit_route": "release",
    "credit_approval": "",
    "prepayment_required": False,
    "prepayment_complete": False,
    "shipment_route": "pass",
    "qa_outcome": "",
    "override_outcome": "",
    "recheck_needed": False,
    "udi_route": "ok",
    "paid_in_full": True,
    "dunning_escalated": {},
    "dunning_due": "2099-01-01T00:00:00+00:00",
}


def _catch(workflow: BpmnWorkflow, name: str) -> None:
    event = BpmnEvent(MessageEventDefinition(name), payload={"payload": {}, "result_var": name})
    workflow.event_manager.catch(event, internal=False)
    workflow.do_engine_steps()


def in_memory(count: int) -> tuple[Throughput, int]:
    """Run the model to the end `count` times; return the figure and the tasks per instance."""
    parser = O2CPlainParser()
    parser.add_bpmn_file(str(MODEL))
    spec, subprocesses = parser.get_spec(PROCESS_KEY), parser.get_subprocess_specs(PROCESS_KEY)
    latencies, tasks = [], 0
    begun = time.perf_counter()
    for _ in range(count):
        one = time.perf_counter()
        workflow = BpmnWorkflow(spec, subprocesses)
        workflow.data.update(STRAIGHT_PATH)
        workflow.get_tasks(state=TaskState.READY)[0].data.update(STRAIGHT_PATH)
        workflow.do_engine_steps()
        _catch(workflow, "shipment_confirmed")
        _catch(workflow, "payment_received")
        if not workflow.completed:
            waiting = [t.task_spec.name for t in workflow.get_tasks(state=TaskState.WAITING)]
            raise RuntimeError(f"O2C did not complete in memory; waiting at {waiting}")
        latencies.append(time.perf_counter() - one)
        tasks = len(workflow.get_tasks(state=TaskState.COMPLETED))
    return Throughput(count, time.perf_counter() - begun, latencies), tasks


# Report --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flowgate-bench-o2c-") as name:
        tmp = Path(name)
        (tmp / "http").mkdir()
        server = serve(tmp / "http")
        try:
            http, work = over_http(server, args.instances, args.threads)
        finally:
            server.stop()
        (tmp / "inproc").mkdir()
        inproc, profile = in_process(tmp / "inproc", args.instances, args.profile)
    memory, tasks = in_memory(max(args.instances, 1000))
    commands = Throughput(len(work.commands), http.seconds, work.commands)
    print(f"W3 order to cash straight through: {args.instances} instances, SQLite")
    print(f"(one instance = {COMMANDS_PER_INSTANCE} commands, {tasks} BPMN tasks completed)")
    print("| path | instances/s | tasks/s | commands/s | p50 ms | p99 ms | vs in-memory |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, figure in (
        (f"HTTP, {args.threads} client threads (per instance)", http),
        ("in-process Flask test client, 1 thread", inproc),
        ("in-memory SpiffWorkflow, no-op services", memory),
    ):
        print(
            f"| {label} | {figure.rate:.1f} | {figure.rate * tasks:,.0f} "
            f"| {figure.rate * COMMANDS_PER_INSTANCE:.1f} | {figure.p50_ms:.1f} "
            f"| {figure.p99_ms:.1f} | {figure.rate / memory.rate:.2%} |"
        )
    print(
        f"| HTTP, per command | | | {commands.rate:.1f} | {commands.p50_ms:.1f} "
        f"| {commands.p99_ms:.1f} | |"
    )
    met = "met" if http.rate >= GOAL else "NOT MET"
    print(f"target: >= {GOAL:.0f} completed O2C instances/s over HTTP: {met}")
    if profile:
        print()
        print(profile)


if __name__ == "__main__":
    main()
