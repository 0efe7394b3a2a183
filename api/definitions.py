"""Definitions: list, deploy, validate, and the stored XML (DESIGN §4)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from api.errors import BadRequest
from api.requests import actor, has_control_character, runtime
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
    seen: set[str] = set()
    for source in files:
        problem = _bad_file_name(source.name, seen)
        if problem is not None:
            raise BadRequest(f"file {problem}", [{"field": "file", "message": problem}])
        seen.add(source.name)
    return files


MAX_FILE_NAME = 200


def _bad_file_name(name: str, seen: set[str]) -> str | None:
    """What is wrong with an uploaded file's name: it is stored with the version, shown in
    every validation error and export, and keys the files of one deployment."""
    if not name.lower().endswith((".bpmn", ".dmn", ".xml")):
        return f"{name[:MAX_FILE_NAME]!r} is not .bpmn or .dmn"
    if len(name) > MAX_FILE_NAME:
        return f"names must be at most {MAX_FILE_NAME} characters"
    if has_control_character(name) or "/" in name or "\\" in name:
        return f"{name!r} has a control character or a path separator"
    if name in seen:
        # Files are keyed by name: the second would silently replace the first.
        return f"{name!r} is uploaded twice"
    return None


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
