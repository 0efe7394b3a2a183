"""The `flowgate` command line (DESIGN §5): serve, worker, db upgrade, deploy, token, key."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import date
from pathlib import Path

from api.settings import Settings


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def cmd_serve(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from api.app import create_app
    from api.bootstrap import bootstrap, deploy_directory, freeze_heap, seed_demo

    settings = Settings.from_env()
    host, port = args.host or settings.host, args.port or settings.port
    container = bootstrap(settings)
    for line in deploy_directory(container, settings.processes_dir):
        print(f"deployed {line}", flush=True)
    if settings.seed_demo and settings.embedded:
        tokens = seed_demo(container)
        print("demo tokens (also in %s):" % (settings.data_dir / "demo_tokens.env"))
        for user, token in tokens.items():
            print(f"  {user:<8} {token}")
    workers = args.workers or settings.workers
    if workers > 1:
        from api.workers import FlowgateServer

        # Workers build their own containers after the fork (api/workers.py).
        container.close()
        FlowgateServer(settings, host, port, workers).run()
        return 0
    if settings.scheduler:
        container.start_scheduler()
    app = create_app(container=container)
    freeze_heap()
    server = make_server(host, port, app, threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"flowgate serving on http://{host}:{server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        container.close()
    return 0


def cmd_worker(_args: argparse.Namespace) -> int:
    from api.bootstrap import bootstrap

    container = bootstrap(Settings.from_env())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    container.start_scheduler()
    print("flowgate worker running the scheduler", flush=True)
    stop.wait()
    container.close()
    return 0


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    from engine.store.migrate import upgrade

    upgrade(Settings.from_env().database_url)
    print("database is up to date")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from api.bootstrap import bootstrap, deploy_directory
    from engine.definitions.compile import SourceFile
    from engine.errors import InvalidDefinition

    container = bootstrap(Settings.from_env())
    status = 0
    for raw in args.paths:
        path = Path(raw)
        try:
            if path.is_dir():
                lines = deploy_directory(container, path)
            else:
                with container.runtime.uow() as uow:
                    results = container.runtime.catalog.deploy(
                        uow, [SourceFile(path.name, path.read_bytes())], "cli"
                    )
                    uow.commit()
                lines = [f"{r.key} v{r.version}" for r in results]
        except InvalidDefinition as exc:
            status = 1
            print(f"{path}: {exc.detail}", file=sys.stderr)
            for error in exc.errors:
                print(f"  {error.get('element_id') or '-'}: {error['message']}", file=sys.stderr)
            continue
        for line in lines:
            print(f"deployed {line}")
    container.close()
    return status


def cmd_token_create(args: argparse.Namespace) -> int:
    from api.bootstrap import bootstrap

    container = bootstrap(Settings.from_env())
    print(container.tokens.issue(args.user, _split(args.roles), _split(args.groups)))
    container.close()
    return 0


def _operator() -> str:
    """Who runs the CLI, for the audit trail (the OS account; there is no token here)."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def cmd_key_create(args: argparse.Namespace) -> int:
    from api.bootstrap import bootstrap
    from engine.store.audit import acting_as

    container = bootstrap(Settings.from_env())
    with acting_as(_operator(), "cli"):
        print(container.tokens.create_key(args.name, _split(args.roles)))
    container.close()
    return 0


def cmd_key_revoke(args: argparse.Namespace) -> int:
    """Revoke a key by name; it answers 401 from the next request on."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from api.bootstrap import bootstrap
    from engine.store.audit import acting_as
    from engine.store.tables import ApiKey

    container = bootstrap(Settings.from_env())
    with acting_as(_operator(), "cli"), container.runtime.uow() as uow:
        row = uow.session.execute(
            select(ApiKey).where(ApiKey.name == args.name)
        ).scalar_one_or_none()
        if row is None:
            print(f"no API key named {args.name!r}", file=sys.stderr)
            status = 1
        elif row.revoked_at is not None:
            print(f"{args.name} was already revoked at {row.revoked_at.isoformat()}")
            status = 0
        else:
            row.revoked_at = datetime.now(UTC)
            uow.commit()
            print(f"revoked {args.name}")
            status = 0
    container.close()
    return status


def cmd_key_list(_args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from api.bootstrap import bootstrap
    from engine.store.tables import ApiKey

    container = bootstrap(Settings.from_env())
    with container.runtime.uow(write=False) as uow:
        for row in uow.session.execute(select(ApiKey).order_by(ApiKey.name)).scalars():
            last = row.last_used_at.isoformat() if row.last_used_at else "never"
            state = f"revoked {row.revoked_at.isoformat()}" if row.revoked_at else "active"
            print(f"{row.name}\t{','.join(row.roles)}\t{state}\tlast used {last}")
    container.close()
    return 0


def cmd_audit_verify(_args: argparse.Namespace) -> int:
    """Recompute the audit hash chain; exit 1 and name the first broken row if it is broken."""
    from api.bootstrap import bootstrap
    from engine.store.audit import verify_chain

    container = bootstrap(Settings.from_env())
    with container.runtime.uow(write=False) as uow:
        result = verify_chain(uow.session)
    container.close()
    if result.ok:
        print(f"audit chain intact: {result.checked} events, head {result.head_hash}")
        return 0
    print(f"audit chain broken at seq {result.broken_at}: {result.reason}", file=sys.stderr)
    print(f"last good: seq {result.head_seq} hash {result.head_hash}", file=sys.stderr)
    return 1


def cmd_rescore(args: argparse.Namespace) -> int:
    """The nightly credit re-score now (DOMAIN §1: "recomputed nightly and on demand")."""
    from api.bootstrap import bootstrap
    from engine.rescore import rescore_customers

    container = bootstrap(Settings.from_env())
    try:
        rules = getattr(container.runtime.rules, "rules", None)
        if rules is None:
            print("no rules engine is wired: nothing to score with", file=sys.stderr)
            return 1
        as_of = date.fromisoformat(args.as_of) if args.as_of else None
        outcomes = rescore_customers(container.runtime, rules, as_of)
    finally:
        container.close()
    print(", ".join(f"{outcome} {count}" for outcome, count in sorted(outcomes.items())) or "none")
    return 1 if outcomes.get("failed") else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowgate", description="flowgate workflow service")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the API (and the scheduler unless disabled)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="server processes (FLOWGATE_WORKERS)")
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("worker", help="run only the scheduler").set_defaults(func=cmd_worker)
    db = sub.add_parser("db", help="database maintenance").add_subparsers(dest="db", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)
    deploy = sub.add_parser("deploy", help="deploy .bpmn files or directories")
    deploy.add_argument("paths", nargs="+")
    deploy.set_defaults(func=cmd_deploy)
    token = sub.add_parser("token").add_subparsers(dest="token", required=True)
    create = token.add_parser("create", help="print a signed user token")
    create.add_argument("--user", required=True)
    create.add_argument("--roles", required=True)
    create.add_argument("--groups")
    create.set_defaults(func=cmd_token_create)
    key = sub.add_parser("key").add_subparsers(dest="key", required=True)
    key_create = key.add_parser("create", help="print a new API key (stored hashed)")
    key_create.add_argument("--name", required=True)
    key_create.add_argument("--roles", required=True)
    key_create.set_defaults(func=cmd_key_create)
    key_revoke = key.add_parser("revoke", help="revoke an API key by name")
    key_revoke.add_argument("--name", required=True)
    key_revoke.set_defaults(func=cmd_key_revoke)
    key.add_parser("list", help="API keys with their last use").set_defaults(func=cmd_key_list)
    rescore = sub.add_parser("rescore", help="re-score every customer's credit now")
    rescore.add_argument("--as-of", help="the day to score as of (YYYY-MM-DD; default today)")
    rescore.set_defaults(func=cmd_rescore)
    audit = sub.add_parser("audit").add_subparsers(dest="audit", required=True)
    audit.add_parser("verify", help="verify the audit hash chain").set_defaults(
        func=cmd_audit_verify
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from api.logging import configure_logging

    configure_logging(Settings.from_env().log_level)
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
