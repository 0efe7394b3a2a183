"""The procure-to-pay model opens in Camunda Modeler / bpmn-js (diagram interchange for every
element, the five lanes) and deploys through the catalog with every topic bound."""

from __future__ import annotations

from lxml import etree

from engine.definitions.camunda import NS
from engine.definitions.compile import SourceFile
from tests.integration.p2p_support import MODEL

DI = {"bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI", **NS}


def test_every_element_has_a_shape_or_edge_and_the_lanes_are_named():
    tree = etree.parse(str(MODEL))
    process = tree.find("bpmn:process", NS)
    elements = {
        node.get("id")
        for node in process
        if isinstance(node.tag, str) and etree.QName(node).localname != "laneSet"
    }
    drawn = {node.get("bpmnElement") for node in tree.iterfind(".//bpmndi:BPMNShape", DI)}
    drawn |= {node.get("bpmnElement") for node in tree.iterfind(".//bpmndi:BPMNEdge", DI)}
    assert elements - drawn == set()
    lanes = list(process.iterfind("bpmn:laneSet/bpmn:lane", NS))
    assert [lane.get("name") for lane in lanes] == [
        "Requester",
        "Approvers",
        "Purchasing",
        "Warehouse/QA",
        "AP",
    ]
    assert {lane.get("id") for lane in lanes} <= drawn
    in_lanes = {ref.text for ref in process.iterfind(".//bpmn:flowNodeRef", NS)}
    flow_nodes = {e for e in elements if not e.startswith("f_") and not e.startswith("lane_")}
    assert flow_nodes == in_lanes


def test_model_deploys_through_the_catalog(container):
    with container.runtime.uow() as uow:
        [result] = container.runtime.catalog.deploy(
            uow, [SourceFile("procure_to_pay.bpmn", MODEL.read_bytes())], "test"
        )
        uow.commit()
    assert result.key == "procure_to_pay" and result.version == 1
