"""Does an engine step cost more as an instance's history grows? (`python -m bench.bench_history`)

An instance that loops (a dunning round, a re-check, an approval sent back) keeps every finished
task in its tree. SpiffWorkflow finds the READY tasks of each engine step by walking that whole
tree; flowgate's workflow (`engine/runtime/workflow.py`) scans its flat task dict and orders only
the matches. This runs one model that loops N times through a gateway and a script task before
it waits at a user task, then times the queries each engine step and each projection make, both
ways, side by side. A second table gives the state blob of the same instances and the time to
save and load it, as SpiffWorkflow keeps the tree (every finished task: both grow with the
rounds run) and as flowgate saves it, earlier rounds pruned (`prune_finished_rounds`). Neither
grows with other instances: see bench_engine's load figures.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from engine.definitions.compile import SourceFile, compile_definition
from engine.runtime.state import dump_state, load_state
from engine.runtime.workflow import FlowgateWorkflow, prune_finished_rounds
from engine.sandbox import make_script_engine
from tests.e2e.conftest import ROOT

MODEL = (ROOT / "tests" / "fixtures" / "rounds.bpmn").read_bytes()
QUERIES = {
    "READY (every engine step)": TaskState.READY,
    "READY|WAITING|STARTED (variables)": TaskState.READY | TaskState.WAITING | TaskState.STARTED,
}


def _per_call_us(query, repeat: int) -> float:
    begun = time.perf_counter()
    for _ in range(repeat):
        query()
    return (time.perf_counter() - begun) / repeat * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_history", description=__doc__)
    parser.add_argument("--rounds", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args(argv)
    spec, subs = compile_definition([SourceFile("rounds.bpmn", MODEL)]).specs["rounds"]
    print("| finished tasks | query | SpiffWorkflow's walk µs | flowgate's scan µs | ratio |")
    print("| ---: | --- | ---: | ---: | ---: |")
    blobs = []
    for rounds in (int(r) for r in args.rounds.split(",")):
        workflow = FlowgateWorkflow(spec, subs, script_engine=make_script_engine())
        workflow.get_tasks(state=TaskState.READY)[0].data.update(done=0, rounds=rounds)
        workflow.do_engine_steps()
        finished = len([t for t in workflow.tasks.values() if t.state == TaskState.COMPLETED])
        for label, mask in QUERIES.items():
            walk = _per_call_us(partial(BpmnWorkflow.get_tasks, workflow, state=mask), 30)
            scan = _per_call_us(partial(workflow.get_tasks, state=mask), args.repeat)
            print(f"| {finished:,} | {label} | {walk:,.1f} | {scan:,.1f} | {walk / scan:,.1f}x |")
        whole = _stored(workflow, spec, subs)
        prune_finished_rounds(workflow)
        pruned = _stored(workflow, spec, subs)
        cells = " | ".join(f"{a:,.2f} / {b:,.2f}" for a, b in zip(whole, pruned, strict=True))
        blobs.append(f"| {finished:,} | {cells} |")
    print()
    print("whole tree / as flowgate saves it (earlier rounds pruned)")
    print("| finished tasks | blob KB (compressed) | save ms | load ms |")
    print("| ---: | ---: | ---: | ---: |")
    print("\n".join(blobs))


def _stored(workflow: FlowgateWorkflow, spec, subs) -> tuple[float, float, float]:
    """Blob KB, save ms and load ms of `workflow` as it stands."""
    blob = dump_state(workflow)
    save = _per_call_us(partial(dump_state, workflow), 10) / 1e3
    load = _per_call_us(partial(load_state, blob, spec, subs), 10) / 1e3
    return len(blob) / 1024, save, load


if __name__ == "__main__":
    main()
