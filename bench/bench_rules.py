"""Credit decisions through the durable-rules host vs the same checks in plain Python.

Run: .venv/bin/python -m bench.bench_rules [--cpu N]  (targets, issue 3: >= 5,000 decisions/s
on one core with the decision record built; p99 of one evaluation < 2 ms with 8 threads)

`--cpu N` pins the process to CPU N, as a deployment with one worker process per core would be:
under the GIL the 8 threads then hand over on one core instead of bouncing between two.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime

from rules.credit import check_credit
from rules.repository import InMemoryRulesetRepository
from rules.service import RulesService
from tests.unit.rules.credit_oracle import credit_checks, random_credit

AS_OF = date(2026, 11, 23)
DECISIONS = 20_000
THREADS = 8


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_rules")
    parser.add_argument("--cpu", type=int, help="pin the process to this CPU")
    options = parser.parse_args(argv or [])
    if options.cpu is not None:
        os.sched_setaffinity(0, {options.cpu})
    rules = RulesService(InMemoryRulesetRepository.from_defaults())
    rng = random.Random(7)
    credits = [random_credit(rng, AS_OF) for _ in range(DECISIONS)]
    _, parameters = rules.parameters("credit", AS_OF)
    for credit in credits[:200]:  # warm up: register the ruleset, fill caches
        check_credit(rules, credit, AS_OF).to_record()

    started, cpu_started = time.perf_counter(), time.process_time()
    for credit in credits:
        check_credit(rules, credit, AS_OF).to_record()
    host_rate = DECISIONS / (time.perf_counter() - started)
    # CPU time too: on a shared machine, wall time also counts what other processes took.
    host_cpu_us = (time.process_time() - cpu_started) / DECISIONS * 1e6

    started = time.perf_counter()
    for credit in credits:
        credit_checks(credit, AS_OF, parameters)
    plain_rate = DECISIONS / (time.perf_counter() - started)

    written = {size: written_rate(rules, credits[:2000], size) for size in (1, 100)}

    latencies: list[float] = []
    lock = threading.Lock()

    def work(chunk: list) -> None:
        mine = []
        for credit in chunk:
            begun = time.perf_counter()
            check_credit(rules, credit, AS_OF).to_record()
            mine.append(time.perf_counter() - begun)
        with lock:
            latencies.extend(mine)

    chunks = [credits[i::THREADS] for i in range(THREADS)]
    threads = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cuts = statistics.quantiles(latencies, n=100)

    print(f"{'credit decision, 1 thread':<40}{'decisions/s':>14}")
    print(f"{'  through host + decision record':<40}{host_rate:>14,.0f}")
    for size, rate in written.items():
        label = f"  + record stored in SQLite, {size}/commit"
        print(f"{label:<40}{rate:>14,.0f}")
    print(f"{'  plain Python checks':<40}{plain_rate:>14,.0f}")
    print(f"{'  ratio plain / host':<40}{plain_rate / host_rate:>14.1f}x")
    print(f"{'  CPU per decision through host (us)':<40}{host_cpu_us:>14.1f}")
    pinned = f" (pinned to CPU {options.cpu})" if options.cpu is not None else ""
    print(
        f"{THREADS} threads{pinned}, one evaluation: "
        f"p50 {cuts[49] * 1e3:.3f} ms, p99 {cuts[98] * 1e3:.3f} ms"
    )


def written_rate(rules: RulesService, credits: list, per_commit: int) -> float:
    """Decisions/s with each record stored as a process stores it (engine.decisions, audited
    session, real migrated SQLite file), `per_commit` decisions per transaction."""
    from api.bootstrap import bootstrap
    from api.settings import Settings
    from engine.decisions import store_decision

    with tempfile.TemporaryDirectory(prefix="flowgate-bench-rules-") as name:
        settings = Settings.from_env({"FLOWGATE_DATA_DIR": name, "FLOWGATE_SCHEDULER": "off"})
        container = bootstrap(settings, rules=None)
        try:
            now = datetime.now(UTC)
            started = time.perf_counter()
            for first in range(0, len(credits), per_commit):
                with container.runtime.uow() as uow:
                    for credit in credits[first : first + per_commit]:
                        record = check_credit(rules, credit, AS_OF).to_record()
                        store_decision(uow.session, record, None, "bench", now)
                    uow.commit()
            return len(credits) / (time.perf_counter() - started)
        finally:
            container.close()


if __name__ == "__main__":
    main(sys.argv[1:])
