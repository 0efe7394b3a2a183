"""Instruction counts per instance, in process, for comparing two trees on a noisy machine.

Wall-clock rates here swing by a third within an hour (two vCPUs shared with other work);
callgrind counts instructions, which are the same from run to run. Set-up, deployment and a
warm-up run outside the count: only the measured loop, run through `sys.call_tracing`, is
collected.

Run (about a minute per workload):
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out --collect-atstart=no \\
        --toggle-collect=sys_call_tracing .venv/bin/python -m bench.instructions w1 100
and divide the "Collected" figure by the count. To compare with another commit, check it out
in a git worktree and run the same command there with PYTHONPATH set to the worktree.
Without valgrind the same command prints the wall-clock time per instance.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from bench import engine_store
from bench.bench_engine import MODELS, W1_KEY, W2_KEY
from engine.runtime import commands

WARM_UP = 10


def w1(tmp: Path) -> Callable[[int], None]:
    """`commands.start` of start -> service task -> end."""
    container = engine_store.embedded_container(tmp / "store", MODELS)
    return lambda n: commands.start(container.runtime, W1_KEY, f"SO-{n}", {}, engine_store.ERP)


def w2(tmp: Path) -> Callable[[int], None]:
    """`start` and `complete_task` of start -> user task -> end."""
    container = engine_store.embedded_container(tmp / "store", MODELS)
    rt = container.runtime

    def one(n: int) -> None:
        started = commands.start(rt, W2_KEY, f"CR-{n}", {}, engine_store.ERP).body
        task_id = started["active_tasks"][0]["id"]
        commands.complete_task(rt, task_id, {}, engine_store.CREDIT_MANAGER)

    return one


def o2c(tmp: Path) -> Callable[[int], None]:
    """Order to cash straight through: start, shipment, payment (W3's three commands)."""
    from bench.bench_o2c import W3, in_process_client, seed

    _container, call = in_process_client(tmp)
    seed(call)
    work = W3("count")
    return lambda n: work(call, n)


def p2p(tmp: Path) -> Callable[[int], None]:
    """Procure to pay from start to the matched invoice: W4's commands and its inbox reads."""
    from tests.integration.conftest import make_container
    from tests.integration.p2p_support import make_api

    api = make_api(make_container(f"sqlite:///{tmp / 'p2p.db'}", tmp))
    api.supplier()

    def one(n: int) -> None:
        qty = 1000 + n
        line = {"line_no": 1, "sku": "SKU-1", "gtin": "06901234567892", "qty": qty}
        api.start(f"PR-{n}", [{**line, "unit_price": "35.00"}])
        api.done("approve_requisition", "dora", decision="approve")
        api.receive("GR-1", (1, f"L{n}", qty, date(2028, 12, 31)))
        api.done("incoming_inspection", "quinn", result="pass")
        net = 35 * qty
        tax = net * 13 // 100
        api.invoice(f"INV-{n}", [(1, qty, "35.00")], f"{tax}.00", f"{net + tax}.00")

    return one


WORKLOADS = {"w1": w1, "w2": w2, "o2c": o2c, "p2p": p2p}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("count", type=int, nargs="?", default=50)
    args = parser.parse_args(argv)
    # The access log of the test-client workloads is not what is being counted.
    with (
        tempfile.TemporaryDirectory(prefix="flowgate-instructions-") as name,
        contextlib.redirect_stderr(io.StringIO()),
    ):
        one = WORKLOADS[args.workload](Path(name))
        for n in range(WARM_UP):
            one(-1 - n)

        def loop() -> None:
            for n in range(args.count):
                one(n)

        begun = time.perf_counter()
        sys.call_tracing(loop, ())
        elapsed = time.perf_counter() - begun
    print(f"{args.workload}: {args.count} instances, {elapsed / args.count * 1e3:.2f} ms each")


if __name__ == "__main__":
    main()
