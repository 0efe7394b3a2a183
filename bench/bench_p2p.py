"""W4: procure to pay through HTTP to paid — one approval, one receipt, one inspection, a
matching invoice (issue 5).

Run: .venv/bin/python -m bench.bench_p2p [--instances N] [--threads T] [--backend sqlite|postgres]
Target: p99 task-completion latency below 50 ms at 50 % of the maximum throughput, on SQLite and
on PostgreSQL (FLOWGATE_BENCH_POSTGRES_URL: a database the bench may use; it works in its own
schema and drops it afterwards).

Phase 1 drives instances with T client threads as fast as they go and reports completed task
completions per second (the maximum). Phase 2 paces instance starts at half that rate and reports
the p50/p99 latency of `POST /tasks/{id}/complete` alone, which is what an approver feels.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.http_load import Client
from bench.measure import Throughput
from tests.conftest import postgres_schema_url
from tests.e2e.conftest import ROOT, Server, free_port, spawn_module, wait_until_ready

MODEL = ROOT / "processes" / "procure_to_pay.bpmn"
GTIN = "06901234567892"
USERS = {"dora": "dept_manager", "quinn": "qa_manager", "admin": "admin"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_p2p", description=__doc__)
    parser.add_argument("--instances", type=int, default=int(os.environ.get("BENCH_P2P_N", 60)))
    # The paced phase sets the p99: with 80 instances (160 completions) it was the one or two
    # worst, and swung 49 - 130 ms between identical runs.
    parser.add_argument("--paced", type=int, default=int(os.environ.get("BENCH_P2P_PACED", 200)))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 4)))
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    # One round's p99 swung 22 - 80 ms between identical runs on PostgreSQL within one hour
    # (the machine's other tenants); the median of several rounds is the figure to quote.
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_P2P_ROUNDS", 3)))
    return parser.parse_args(argv)


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


@contextmanager
def serve(tmp: Path, database_url: str | None) -> Iterator[Server]:
    (tmp / "processes").mkdir()
    shutil.copy(MODEL, tmp / "processes")
    port = free_port()
    env = {
        **os.environ,
        "FLOWGATE_DATA_DIR": str(tmp / "var"),
        "FLOWGATE_PORT": str(port),
        "FLOWGATE_PROCESSES_DIR": str(tmp / "processes"),
        "FLOWGATE_SECRET_KEY": "bench-secret-key",
        "FLOWGATE_SCHEDULER": "on",
        # The payment-date timer is due at once; a short tick keeps it off the critical path.
        "FLOWGATE_TICK_SECONDS": "0.1",
        "FLOWGATE_LOG_LEVEL": "WARNING",
    }
    env.pop("FLOWGATE_DATABASE_URL", None)
    if database_url:
        env["FLOWGATE_DATABASE_URL"] = database_url
        _cli(env, "db", "upgrade")
    process = spawn_module(["api.cli", "serve"], tmp / "server.log", env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, base, tmp / "server.log")
        tokens = {
            user: _cli(env, "token", "create", "--user", user, "--roles", group, "--groups", group)
            for user, group in USERS.items()
        }
        tokens["erp"] = _cli(env, "key", "create", "--name", "bench-erp", "--roles", "erp_system")
        yield Server(base, tokens, process, tmp / "server.log")
    finally:
        Server(base, {}, process, tmp / "server.log").stop()


class W4:
    """One P2P instance to paid; records the latency of every task completion."""

    def __init__(self, server: Server, run: str, offset: int) -> None:
        self.server, self.run, self.offset = server, run, offset
        self.completions: list[float] = []
        self.lock = threading.Lock()
        # Forty days back: the net date has passed, so payment is requested at once.
        self.invoice_date = (datetime.now(UTC) - timedelta(days=40)).date().isoformat()

    def _complete(self, client: Client, task_id: str, who: str, variables: dict) -> None:
        begun = time.perf_counter()
        client.call(
            "POST",
            f"/api/v1/tasks/{task_id}/complete",
            self.server.tokens[who],
            {"variables": variables},
        )
        with self.lock:
            self.completions.append(time.perf_counter() - begun)

    def _message(self, client: Client, name: str, po_no: str, payload: dict) -> None:
        body = {"name": name, "correlation_key": po_no, "payload": {"po_no": po_no, **payload}}
        client.call("POST", "/api/v1/messages", self.server.tokens["erp"], body)

    def __call__(self, client: Client, n: int) -> None:
        erp, req_no = self.server.tokens["erp"], f"PR-{self.run}-{n}"
        po_no = f"PO-{req_no}"
        # A distinct quantity per instance, or the duplicate check (same supplier, same amount
        # within three days) would rightly hold every invoice after the first.
        qty = 1000 + self.offset + n  # 35,000 and up: one dept_manager approval
        line = {"line_no": 1, "sku": "SKU-1", "gtin": GTIN, "qty": qty, "unit_price": "35.00"}
        requisition = {
            "req_no": req_no,
            "requester": "peter",
            "cost_center": "CC-100",
            "category": "consumables",
            "supplier_id": "S001",
            "currency": "CNY",
            "lines": [line],
        }
        started = client.call(
            "POST",
            "/api/v1/processes/procure_to_pay/instances",
            erp,
            {"business_key": req_no, "variables": {"requisition": requisition}},
        )
        self._complete(client, started["active_tasks"][0]["id"], "dora", {"decision": "approve"})
        lot = f"L{self.run}{n}"
        udi = f"(01){GTIN}(17)301231(10){lot}"
        receipt = {"line_no": 1, "qty": qty, "gtin": GTIN, "lot": lot}
        receipt |= {"expiry_date": "2030-12-31", "udi": udi}
        self._message(client, "goods_received", po_no, {"receipt_no": "GR-1", "lines": [receipt]})
        instance = client.call("GET", f"/api/v1/instances/{started['id']}", erp)
        self._complete(client, instance["active_tasks"][0]["id"], "quinn", {"result": "pass"})
        invoice = {"invoice_no": f"INV-{req_no}", "invoice_date": self.invoice_date}
        net = Decimal("35.00") * qty
        tax = (net * Decimal("0.13")).quantize(Decimal("0.01"))
        invoice |= {"lines": [{"line_no": 1, "qty": qty, "unit_price": "35.00"}]}
        invoice |= {"tax_amount": str(tax), "total": str(net + tax)}
        self._message(client, "vendor_invoice", po_no, invoice)
        # The payment-date timer is already due; the scheduler fires it within a tick.
        while not any(
            w.get("name") == "payment_executed"
            for w in client.call("GET", f"/api/v1/instances/{started['id']}", erp)["waiting_for"]
        ):
            time.sleep(0.05)
        paid = {"invoice_no": f"INV-{req_no}", "amount": str(net + tax), "paid_on": "2026-11-23"}
        self._message(client, "payment_executed", po_no, paid)
        final = client.call("GET", f"/api/v1/instances/{started['id']}", erp)
        if final["status"] != "completed":
            raise RuntimeError(f"W4 instance did not reach paid: {final}")


def closed_loop(work: W4, count: int, threads: int) -> Throughput:
    from bench.http_load import drive

    return drive(work.server.base, count, threads, work)


def paced(work: W4, count: int, threads: int, rate: float) -> None:
    """Start instances at `rate` per second (open loop) with up to `threads` in flight."""
    interval = 1.0 / rate
    gate = threading.Semaphore(threads)
    errors: list[BaseException] = []

    def one(n: int) -> None:
        client = Client(work.server.base)
        try:
            work(client, n)
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()
            gate.release()

    pool = []
    begun = time.perf_counter()
    for n in range(count):
        time.sleep(max(0.0, begun + n * interval - time.perf_counter()))
        gate.acquire()
        thread = threading.Thread(target=one, args=(n,))
        thread.start()
        pool.append(thread)
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]


def measure(
    backend: str, database_url: str | None, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """`args.rounds` rounds on one server, each a flat-out phase and a paced one at half of it."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp), database_url) as server:
        Client(server.base).call(
            "PUT",
            "/api/v1/suppliers/S001",
            server.tokens["erp"],
            {"name": "Medsupply", "blocked": False, "bank_account_trusted": True},
        )
        W4(server, "warm", 0)(Client(server.base), 0)
        for number in range(1, args.rounds + 1):
            offset = number * (args.instances + args.paced + 10)
            flat_out = W4(server, f"max{number}", offset)
            run = closed_loop(flat_out, args.instances, args.threads)
            half = W4(server, f"half{number}", offset + args.instances)
            paced(half, args.paced, args.threads, rate=run.rate / 2)
            latency = Throughput(len(half.completions), 1.0, half.completions)
            rows.append(
                {
                    "backend": backend,
                    "round": number,
                    "instances/s max": run.rate,
                    "tasks/s max": len(flat_out.completions) / run.seconds,
                    "p50": latency.p50_ms,
                    "p95": latency.percentile(95) * 1e3,
                    "p99": latency.p99_ms,
                    "n": len(half.completions),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = []
    if args.backend in ("sqlite", "both"):
        rows += measure("sqlite", None, args)
    pg = os.environ.get("FLOWGATE_BENCH_POSTGRES_URL")
    if args.backend in ("postgres", "both") and pg:
        with postgres_schema_url(pg, prefix="bench") as url:
            rows += measure("postgres", url, args)
    print(
        f"W4 procure to pay to paid, {args.rounds} rounds per backend: {args.instances} instances"
        f" flat out, then {args.paced} paced at half that rate; {args.threads} threads"
    )
    print("| backend | round | instances/s | tasks/s (max) | complete p50 / p95 / p99 ms | n |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['backend']} | {row['round']} | {row['instances/s max']:.1f}"
            f" | {row['tasks/s max']:.1f} | {row['p50']:.1f} / {row['p95']:.1f} / {row['p99']:.1f}"
            f" | {row['n']} |"
        )
    for backend in dict.fromkeys(row["backend"] for row in rows):
        p99 = statistics.median(row["p99"] for row in rows if row["backend"] == backend)
        verdict = "met" if p99 < 50 else "NOT MET"
        print(f"{backend}: median p99 of the rounds {p99:.1f} ms; target < 50 ms {verdict}")


if __name__ == "__main__":
    main()
