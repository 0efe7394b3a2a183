"""Definitions: list, deploy, validate, and the stored XML (DESIGN §4)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from api.errors import BadRequest
from api.requests import actor, runtime
from engine.definitions.compile import SourceFile
from engine.errors import NotFound

bp = Blueprint("definitions", __name__, url_prefix="/api/v1/definitions")


def _uploaded_files() -> list[SourceFile]:
    files = [
        SourceFile(f.filename or "upload.bpmn", f.read())
        for f in request.files.getlist("file") + request.files.getlist("files")
    ]
    if not files:
        raise BadRequest("upload .bpmn (and .dmn) files as multipart field 'file'")
    for source in files:
        if not source.name.lower().endswith((".bpmn", ".dmn", ".xml")):
            raise BadRequest(
                f"{source.name}: only .bpmn and .dmn files are accepted",
                [{"field": "file", "message": f"{source.name} is not .bpmn or .dmn"}],
            )
    return files


@bp.get("")
def list_definitions():
    rt = runtime()
    with rt.uow(write=False) as uow:
        return {"items": rt.catalog.summary(uow)}


@bp.post("")
def deploy():
    rt = runtime()
    files = _uploaded_files()
    with rt.uow() as uow:
        results = rt.catalog.deploy(uow, files, actor().user)
        uow.commit()
    items = [
        {"key": r.key, "version": r.version, "checksum": r.checksum, "created": r.created}
        for r in results
    ]
    status = 201 if any(r.created for r in results) else 200
    body = dict(items[0]) if len(items) == 1 else {"items": items}
    return body, status


@bp.post("/validate")
def validate():
    compiled = runtime().catalog.compile(_uploaded_files())
    return {"valid": True, "process_ids": compiled.process_ids, "checksum": compiled.checksum}


@bp.get("/<key>/versions/<int(max=2147483647):version>/bpmn")
def get_xml(key: str, version: int):
    rt = runtime()
    with rt.uow(write=False) as uow:
        row = rt.catalog.version(uow, key, version)
        bpmn = [f for f in row.files if not f["name"].lower().endswith(".dmn")]
        if not bpmn:
            raise NotFound(f"{key} v{version} has no BPMN file")
        return Response(bpmn[0]["content"], mimetype="application/xml")
