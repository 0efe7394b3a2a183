"""The `flowgate` command line (DESIGN §5): serve, worker, db upgrade, deploy, token, key."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from api.settings import Settings


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def cmd_serve(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from api.app import create_app
    from api.bootstrap import bootstrap, deploy_directory, seed_demo

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
    if settings.scheduler:
        container.start_scheduler()
    app = create_app(container=container)
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


def cmd_key_create(args: argparse.Namespace) -> int:
    from api.bootstrap import bootstrap

    container = bootstrap(Settings.from_env())
    print(container.tokens.create_key(args.name, _split(args.roles)))
    container.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowgate", description="flowgate workflow service")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the API (and the scheduler unless disabled)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
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
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
