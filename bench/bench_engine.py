"""Engine workloads through the real server, side by side with plain in-memory SpiffWorkflow.

Run: .venv/bin/python -m bench.bench_engine [--w1 N] [--w2 N] [--threads T] [--seeded N]
     [--workers 1,2] [--profile]
Targets (issue 2, 2 cores, SQLite): W1 >= 200 instances/s through HTTP and >= 40 % of the
in-memory rate; W2 >= 150 completed instances/s; a 20-element instance's blob < 4 KB
compressed; load time independent of the number of finished instances.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import tempfile
from pathlib import Path

from bench import engine_store, spiff_memory
from bench.ceiling import serve_ceiling
from bench.http_load import Client, drive
from bench.measure import Throughput
from tests.e2e.conftest import Server, start_server

MODELS = Path(__file__).resolve().parent / "models"
W1_MODEL, W1_KEY = MODELS / "w1_publish.bpmn", "bench_w1"
W2_MODEL, W2_KEY = MODELS / "w2_approval.bpmn", "bench_w2"
ORDER_KEY = "bench_order"
WARM_UP = 50
# The stack without the engine (bench/ceiling.py): W1 over HTTP cannot beat these.
CEILINGS = {"hello": "Flask, JSON in and out", "insert": "Flask + one ORM insert"}


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_engine", description=__doc__)
    parser.add_argument("--w1", type=int, default=_env_int("BENCH_W1_N", 2000))
    parser.add_argument("--w2", type=int, default=_env_int("BENCH_W2_N", 1000))
    parser.add_argument("--threads", type=int, default=_env_int("BENCH_THREADS", 4))
    parser.add_argument(
        "--workers",
        default=os.environ.get("BENCH_WORKERS", "1,2"),
        help="server processes to measure over HTTP, comma-separated (1 = werkzeug, N = gunicorn)",
    )
    parser.add_argument("--seeded", type=int, default=_env_int("BENCH_SEEDED", 100_000))
    parser.add_argument(
        "--w2-list", action="store_true", help="list the approver's inbox before each complete"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile in-process W1 starts; print top costs"
    )
    return parser.parse_args(argv)


# Through HTTP -------------------------------------------------------------------------------


def serve(tmp: Path, workers: int) -> Server:
    processes = tmp / "processes"
    processes.mkdir()
    for model in (W1_MODEL, W2_MODEL):
        shutil.copy(model, processes)
    # The scheduler stays on, as in production: its ticks compete for the same cores.
    env = {
        "FLOWGATE_SCHEDULER": "on",
        "FLOWGATE_TICK_SECONDS": "1",
        "FLOWGATE_WORKERS": str(workers),
    }
    return start_server(tmp, env)


def server_label(workers: int) -> str:
    return "1 process" if workers == 1 else f"{workers} gunicorn workers"


def w1_over_http(server: Server, count: int, threads: int) -> Throughput:
    erp = server.tokens["erp"]
    path = f"/api/v1/processes/{W1_KEY}/instances"

    def one(client: Client, n: int) -> None:
        body = client.call("POST", path, erp, {"business_key": f"SO-{n}"})
        if body["status"] != "completed":
            raise RuntimeError(f"W1 instance did not complete: {body}")

    drive(server.base, WARM_UP, threads, lambda c, n: one(c, -1 - n))
    return drive(server.base, count, threads, one)


def ceiling_over_http(server: Server, count: int, threads: int) -> Throughput:
    """The same client against the stack with no engine (bench/ceiling.py)."""

    def one(client: Client, n: int) -> None:
        body = client.call("POST", "/rows", "-", {"business_key": f"SO-{n}"})
        if body["status"] != "completed":
            raise RuntimeError(f"ceiling server answered {body}")

    drive(server.base, WARM_UP, threads, lambda c, n: one(c, -1 - n))
    return drive(server.base, count, threads, one)


def w2_over_http(server: Server, count: int, threads: int, list_inbox: bool) -> Throughput:
    erp, carol = server.tokens["erp"], server.tokens["carol"]
    path = f"/api/v1/processes/{W2_KEY}/instances"

    def one(client: Client, n: int) -> None:
        started = client.call("POST", path, erp, {"business_key": f"CR-{n}"})
        task_id = started["active_tasks"][0]["id"]
        if list_inbox:
            client.call("GET", f"/api/v1/tasks?scope=mine&business_key=CR-{n}", carol)
        done = client.call("POST", f"/api/v1/tasks/{task_id}/complete", carol, {})
        if done["status"] != "completed":
            raise RuntimeError(f"W2 instance did not complete: {done}")

    drive(server.base, WARM_UP, threads, lambda c, n: one(c, -1 - n))
    return drive(server.base, count, threads, one)


# Report -------------------------------------------------------------------------------------


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def row(label: str, figure: Throughput, baseline: Throughput | None = None) -> str:
    ratio = f"{figure.rate / baseline.rate:>8.1%}" if baseline else f"{'':>8}"
    return f"{label:<56}{figure.rate:>10,.0f}{figure.p50_ms:>10.2f}{figure.p99_ms:>10.2f}  {ratio}"


def profile_in_process(container: engine_store.Container, count: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    engine_store.in_process_starts(container, W1_KEY, count)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
    stats.print_stats(35)
    stats.sort_stats("tottime").print_stats(20)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flowgate-bench-") as name:
        tmp = Path(name)
        over_http: dict[int, tuple[Throughput, Throughput]] = {}
        ceilings: dict[tuple[int, str], Throughput] = {}
        for workers in [int(w) for w in args.workers.split(",")]:
            http_dir = tmp / f"http-{workers}"
            http_dir.mkdir()
            server = serve(http_dir, workers)
            try:
                over_http[workers] = (
                    w1_over_http(server, args.w1, args.threads),
                    w2_over_http(server, args.w2, args.threads, args.w2_list),
                )
            finally:
                server.stop()
            for mode in CEILINGS:
                server = serve_ceiling(http_dir, workers, mode)
                try:
                    ceilings[workers, mode] = ceiling_over_http(server, args.w1, args.threads)
                finally:
                    server.stop()
        w1_memory = spiff_memory.run_straight_through(W1_MODEL, W1_KEY, args.w1)
        w2_memory = spiff_memory.run_with_user_task(W2_MODEL, W2_KEY, args.w2)

        container = engine_store.embedded_container(tmp / "store", MODELS)
        try:
            engine_store.in_process_starts(container, W1_KEY, WARM_UP)
            w1_in_process = engine_store.in_process_starts(container, W1_KEY, args.w1)
            blobs = engine_store.blob_sizes(container, ORDER_KEY)
            empty, full, seed_seconds, rows_per_instance = engine_store.load_times_against_history(
                container, W2_KEY, args.seeded
            )
            profile = profile_in_process(container, args.w1) if args.profile else ""
        finally:
            container.close()

    print(f"{'workload':<56}{'inst/s':>10}{'p50 ms':>10}{'p99 ms':>10}  {'vs mem':>8}")
    for workers, (w1_http, _) in over_http.items():
        label = f"W1 HTTP, {server_label(workers)}, {args.threads} client threads"
        print(row(label, w1_http, w1_memory))
    for (workers, mode), figure in ceilings.items():
        label = f"  stack ceiling: {CEILINGS[mode]}, {server_label(workers)}"
        print(row(label, figure, w1_memory))
    print(row("W1 in-process commands.start, 1 thread", w1_in_process, w1_memory))
    print(row("W1 in-memory SpiffWorkflow, 1 thread", w1_memory))
    for workers, (_, w2_http) in over_http.items():
        print(row(f"W2 HTTP start + complete, {server_label(workers)}", w2_http, w2_memory))
    print(row("W2 in-memory SpiffWorkflow, 1 thread", w2_memory))
    for workers, (w1_http, _) in over_http.items():
        insert = ceilings.get((workers, "insert"))
        if insert is not None:
            print(
                f"W1 over HTTP is {w1_http.rate / insert.rate:.0%} of the stack's "
                f"Flask + one ORM insert ceiling ({server_label(workers)})"
            )
    for workers, (w1_http, w2_http) in over_http.items():
        share = w1_http.rate / w1_memory.rate
        print(
            f"targets, {server_label(workers)}: W1 >= 200/s {verdict(w1_http.rate >= 200)}, "
            f">= 40 % of in-memory {verdict(share >= 0.4)}; "
            f"W2 >= 150/s {verdict(w2_http.rate >= 150)}"
        )
    print()
    print(
        f"load one waiting instance (median)      {'0 finished':>14}"
        f"{f'{full.completed_instances:,} finished':>20}{'ratio':>8}"
    )
    print(
        f"  _load: select + inflate blob + spec   {empty.load_ms:>11.3f} ms"
        f"{full.load_ms:>17.3f} ms{full.load_ms / empty.load_ms:>8.2f}"
    )
    print(
        f"  complete_task, commit included        {empty.complete_ms:>11.3f} ms"
        f"{full.complete_ms:>17.3f} ms{full.complete_ms / empty.complete_ms:>8.2f}"
    )
    print(
        f"  (seeded {full.completed_instances:,} finished instances, "
        f"{rows_per_instance} rows each, in {seed_seconds:.1f} s)"
    )
    print()
    for blob in blobs:
        print(
            f"blob of the 20-element model waiting at {blob.waiting_at}: "
            f"{blob.compressed:,} bytes compressed ({blob.uncompressed:,} raw), "
            f"target < 4 KB {verdict(blob.compressed < 4096)}"
        )
    if profile:
        print()
        print(profile)


if __name__ == "__main__":
    main()
