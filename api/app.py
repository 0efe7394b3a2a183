"""Flask app factory: blueprints, authentication against the role matrix, errors."""

from __future__ import annotations

from flask import Flask, g, request

from api import decisions, definitions, health, instances, messages, rulesets, tasks, webhooks
from api.auth import Unauthenticated
from api.bootstrap import Container, bootstrap
from api.errors import Unauthorized, register_error_handlers
from api.permissions import PERMISSIONS, PUBLIC, allowed
from api.settings import Settings
from engine.errors import Forbidden


def create_app(settings: Settings | None = None, container: Container | None = None) -> Flask:
    container = container or bootstrap(settings)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = container.settings.max_body_bytes
    app.json.sort_keys = False
    app.extensions["flowgate"] = container
    for module in (health, definitions, instances, messages, tasks, webhooks):
        app.register_blueprint(module.bp)
    for module in (rulesets, decisions):
        app.register_blueprint(module.bp)
    register_error_handlers(app)

    @app.before_request
    def authenticate() -> None:
        if request.endpoint is None or PERMISSIONS.get(request.endpoint) == PUBLIC:
            return
        try:
            g.actor = container.tokens.authenticate(request.headers.get("Authorization"))
        except Unauthenticated as exc:
            raise Unauthorized(str(exc)) from None
        if not allowed(request.endpoint, g.actor.roles | g.actor.groups):
            raise Forbidden(f"{g.actor.user} may not call {request.method} {request.path}")

    return app
