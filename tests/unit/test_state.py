"""The instance blob keeps Decimal and date values and leaves the spec out."""

from __future__ import annotations

import zlib
from datetime import date
from decimal import Decimal
from pathlib import Path

from SpiffWorkflow.bpmn import BpmnWorkflow

from engine.definitions.compile import SourceFile, compile_definition
from engine.runtime.state import dump_state, load_state

FIXTURE = (Path(__file__).resolve().parents[1] / "fixtures" / "approval.bpmn").read_bytes()


def test_decimal_and_date_survive_a_save_and_load_without_the_spec_in_the_blob():
    spec, subs = compile_definition([SourceFile("a.bpmn", FIXTURE)]).specs["approval"]
    workflow = BpmnWorkflow(spec, subs)
    start = workflow.get_tasks()[0]
    start.data.update(amount=Decimal("1200.00"), due=date(2026, 11, 30))
    blob = dump_state(workflow)
    assert b"Approve order" not in zlib.decompress(blob)
    restored = load_state(blob, spec, subs)
    data = restored.get_task_from_id(start.id).data
    assert data == {"amount": Decimal("1200.00"), "due": date(2026, 11, 30)}
