"""Flask app factory: blueprints, authentication against the role matrix, errors."""

from __future__ import annotations

from flask import Flask, g, request

from api import decisions, definitions, health, instances, messages, rulesets, tasks, webhooks
from api.audit import bp as audit_bp
from api.auth import Unauthenticated
from api.bootstrap import Container, bootstrap
from api.errors import Unauthorized, register_error_handlers
from api.guards import install_guards
from api.logging import configure_logging, install_request_logging, register_secret
from api.permissions import PERMISSIONS, PUBLIC, allowed
from api.settings import Settings
from engine.errors import Forbidden
from engine.store.audit import AUDIT_CONTEXT, AuditContext


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
    app.register_blueprint(tasks.delegations_bp)
    app.register_blueprint(audit_bp)
    # Order to cash: ERP master data, postings, outbox and recall (issue 4).
    from api import customers, journal, lots, outbox, receivables, reports, traceability

    for module in (customers, receivables, lots, journal, traceability, outbox, reports):
        app.register_blueprint(module.bp)
    # Procure to pay: supplier master data and purchase-order views (issue 5).
    from api import purchasing

    app.register_blueprint(purchasing.suppliers_bp)
    app.register_blueprint(purchasing.purchase_orders_bp)
    from api import users

    app.register_blueprint(users.bp)
    register_error_handlers(app)
    configure_logging(container.settings.log_level)
    register_secret(container.tokens.secret_key)
    install_request_logging(app)

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
        # Who and how, for every audit event this request writes (engine/store/audit.py).
        g.audit_token = AUDIT_CONTEXT.set(
            AuditContext(
                g.actor.user,
                "api_key" if g.actor.user.startswith("key:") else "user_token",
                {"request": f"{request.method} {request.path}", "request_id": g.get("request_id")},
            )
        )

    @app.teardown_request
    def forget_actor(_exc: BaseException | None) -> None:
        token = g.pop("audit_token", None)
        if token is not None:
            try:
                AUDIT_CONTEXT.reset(token)
            except ValueError:  # torn down in another context: just clear it
                AUDIT_CONTEXT.set(None)

    install_guards(app, container.settings.max_json_depth, container.settings.rate_limit_per_minute)
    return app
