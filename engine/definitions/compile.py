"""Turn uploaded BPMN/DMN files into a validated definition, or element-level errors."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.exceptions import SpiffWorkflowException

from engine.definitions.camunda import BPMN_NS, NS, expression_body, read_elements
from engine.definitions.durations import due_from
from engine.definitions.parser import FlowgateParser, UnsafeDocument, parse_xml
from engine.errors import InvalidDefinition
from engine.runtime.forms import constraint_problems
from engine.sandbox import check_source

GATEWAYS = {"exclusiveGateway", "inclusiveGateway", "complexGateway", "eventBasedGateway"}


@dataclass(frozen=True)
class SourceFile:
    name: str
    content: bytes

    @property
    def kind(self) -> str:
        return "dmn" if self.name.lower().endswith(".dmn") else "bpmn"


@dataclass
class CompiledDefinition:
    """Validated files plus what the engine reads from them."""

    files: list[SourceFile]
    process_ids: list[str]
    # Per process id: element id -> the Camunda attributes the engine acts on.
    elements: dict[str, dict[str, dict[str, Any]]]
    checksum: str
    specs: dict[str, tuple[Any, dict[str, Any]]] = field(default_factory=dict, repr=False)


def checksum(files: Iterable[SourceFile]) -> str:
    digest = hashlib.sha256()
    for source in sorted(files, key=lambda f: f.name):
        digest.update(source.name.encode() + b"\0")
        digest.update(hashlib.sha256(source.content).digest())
    return digest.hexdigest()


def _error(element_id: str | None, message: str, file_name: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"element_id": element_id, "message": message}
    if file_name:
        error["file"] = file_name
    return error


def _check_flows(tree: etree._ElementTree, name: str) -> list[dict[str, Any]]:
    errors = []
    for process in tree.xpath("//bpmn:process", namespaces=NS):
        kinds = {
            node.get("id"): etree.QName(node).localname
            for node in process.iter(f"{{{BPMN_NS}}}*")
            if node.get("id")
        }
        for flow in process.xpath(".//bpmn:sequenceFlow", namespaces=NS):
            flow_id = flow.get("id")
            for end in ("sourceRef", "targetRef"):
                if flow.get(end) not in kinds:
                    errors.append(
                        _error(flow_id, f"{end} '{flow.get(end)}' is not an element", name)
                    )
            condition = flow.find(f"{{{BPMN_NS}}}conditionExpression")
            if condition is not None and kinds.get(flow.get("sourceRef")) not in GATEWAYS:
                errors.append(
                    _error(
                        flow_id,
                        f"has a condition but its source '{flow.get('sourceRef')}' "
                        "is not a gateway",
                        name,
                    )
                )
            if condition is not None and (condition.text or "").strip():
                for message in check_source(condition.text.strip(), "eval"):
                    errors.append(_error(flow_id, f"condition refused: {message}", name))
        starts = process.xpath("./bpmn:startEvent", namespaces=NS)
        if process.get("isExecutable", "true") != "false" and not starts:
            errors.append(_error(process.get("id"), "process has no start event", name))
        for script in process.xpath(".//bpmn:scriptTask", namespaces=NS):
            text = script.findtext(f"{{{BPMN_NS}}}script") or ""
            for message in check_source(text, "exec"):
                errors.append(_error(script.get("id"), f"script refused: {message}", name))
    return errors


def _check_elements(
    elements: dict[str, dict[str, Any]],
    known_topic: Callable[[str], bool],
    known_ruleset: Callable[[str], bool],
    dmn_decisions: set[str],
) -> list[dict[str, Any]]:
    errors = []
    for element_id, info in elements.items():
        topic = info.get("topic")
        if info["type"] == "serviceTask" and topic and not known_topic(topic):
            errors.append(_error(element_id, f"unknown service topic '{topic}'"))
        if info["type"] == "serviceTask" and not topic:
            # A model from another tool (e.g. zeebe:taskDefinition) would otherwise skip the step.
            errors.append(_error(element_id, "service task has no camunda:topic (External)"))
        ref = info.get("decision_ref")
        if ref and ref not in dmn_decisions and not known_ruleset(ref):
            errors.append(_error(element_id, f"decisionRef '{ref}' is neither a DMN nor a ruleset"))
        for attr in ("assignee", "candidate_groups", "candidate_users", "due_date"):
            body = expression_body(info.get(attr))
            if body is not None:
                for message in check_source(body, "eval"):
                    errors.append(_error(element_id, f"{attr} expression refused: {message}"))
        for form_field in info.get("form") or []:
            for problem in constraint_problems(form_field):
                errors.append(_error(element_id, f"form field '{form_field['id']}' {problem}"))
        due = info.get("due_date")
        if due and expression_body(due) is None:
            problem = _literal_due_date_problem(due)
            if problem:
                errors.append(_error(element_id, f"camunda:dueDate {due!r}: {problem}"))
    return errors


_PROCESS_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,199}")


def _literal_due_date_problem(text: str) -> str | None:
    """Why a literal `camunda:dueDate` could never be used: read as every task reads it."""
    try:
        due_from(text.strip(), datetime.now(UTC))
    except Exception as exc:  # SpiffWorkflow raises a bare Exception for a bad duration
        return str(exc) or "not an ISO 8601 duration or datetime"
    return None


def load_parser(
    files: Iterable[SourceFile],
) -> tuple[FlowgateParser, dict[str, etree._ElementTree]]:
    parser = FlowgateParser()
    trees = {}
    for source in files:
        tree = parse_xml(source.content, source.name)
        trees[source.name] = tree
        if source.kind == "dmn":
            parser.add_dmn_xml(tree.getroot(), filename=source.name)
        else:
            parser.add_bpmn_xml(tree.getroot(), filename=source.name)
    return parser, trees


def compile_definition(
    files: list[SourceFile],
    known_topic: Callable[[str], bool] = lambda _t: True,
    known_ruleset: Callable[[str], bool] = lambda _r: True,
) -> CompiledDefinition:
    """Parse and validate; raise `InvalidDefinition` listing every problem by element id."""
    if not any(f.kind == "bpmn" for f in files):
        raise InvalidDefinition("no .bpmn file uploaded", [_error(None, "no .bpmn file")])
    for source in files:
        try:
            source.content.decode("utf-8")
        except UnicodeDecodeError:
            # The XML parser reads UTF-16 too, but the stored copy (and every export) is UTF-8.
            message = "must be encoded as UTF-8"
            raise InvalidDefinition(
                f"{source.name}: {message}", [_error(None, message, source.name)]
            ) from None
    try:
        parser, trees = load_parser(files)
    except UnsafeDocument as exc:
        raise InvalidDefinition(str(exc), [_error(None, str(exc))]) from exc
    except ValidationException as exc:
        raise InvalidDefinition(
            str(exc), [_error(exc.id or None, str(exc), exc.file_name)]
        ) from exc
    except (SpiffWorkflowException, etree.XMLSyntaxError, ValueError, KeyError) as exc:
        raise InvalidDefinition(str(exc), [_error(None, f"cannot parse: {exc}")]) from exc

    # Element ids are unique within a file only: two processes uploaded together may both
    # have a `wait_payment`, so each file keeps its own map (see _process_elements).
    by_file: dict[str, dict[str, dict[str, Any]]] = {}
    errors: list[dict[str, Any]] = []
    dmn_ids = set(parser.dmn_parsers)
    for name, tree in trees.items():
        if name.lower().endswith(".dmn"):
            continue
        by_file[name] = read_elements(tree)
        errors.extend(_check_flows(tree, name))
        errors.extend(_check_elements(by_file[name], known_topic, known_ruleset, dmn_ids))

    process_files = {
        node.get("id"): name
        for name, tree in trees.items()
        for node in tree.xpath("//bpmn:process", namespaces=NS)
        if node.get("isExecutable", "true") != "false"
    }
    process_ids = list(process_files)
    if not process_ids:
        errors.append(_error(None, "no executable process"))
    for process_id in process_ids:
        # The id is the process key in every URL (/processes/{key}/instances).
        if not _PROCESS_KEY.fullmatch(process_id or ""):
            errors.append(
                _error(process_id, "process id must be a letter or _ then letters, digits, _ . -")
            )
    specs: dict[str, tuple[Any, dict[str, Any]]] = {}
    if not errors:
        for process_id in process_ids:
            try:
                specs[process_id] = (
                    parser.get_spec(process_id),
                    parser.get_subprocess_specs(process_id),
                )
            except ValidationException as exc:
                errors.append(_error(exc.id or process_id, str(exc), exc.file_name))
            except (SpiffWorkflowException, KeyError, ValueError) as exc:
                errors.append(_error(process_id, f"cannot build process: {exc}"))
    if errors:
        raise InvalidDefinition(f"{len(errors)} problem(s) in the uploaded model", errors)
    elements = {
        key: _process_elements(by_file, process_files[key], specs[key][1]) for key in process_ids
    }
    return CompiledDefinition(files, process_ids, elements, checksum(files), specs)


def _process_elements(
    by_file: dict[str, dict[str, dict[str, Any]]], own_file: str, subprocess_specs: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The elements one process runs: those of the processes it calls, then its own file's,
    which win where an id repeats. Merging every uploaded file's map gave O2C's `wait_payment`
    the correlation key of P2P's, once the two were uploaded together."""
    elements: dict[str, dict[str, Any]] = {}
    for spec in subprocess_specs.values():
        elements.update(by_file.get(getattr(spec, "file", None) or "", {}))
    elements.update(by_file[own_file])
    return elements
