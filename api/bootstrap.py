"""The composition root: the one place where store, rules, services and scheduler are wired."""

from __future__ import annotations

import gc
import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from api.auth import TokenService
from api.settings import Settings
from engine.definitions.catalog import DefinitionCatalog
from engine.definitions.compile import SourceFile
from engine.handlers.p2p import install as install_p2p
from engine.runtime.commands import Runtime
from engine.runtime.execution import DecisionMaker, NoRules
from engine.scheduler import Scheduler
from engine.services import ServiceRegistry, default_registry
from engine.store.db import make_engine
from engine.store.migrate import upgrade
from engine.store.uow import UnitOfWorkFactory

log = logging.getLogger("flowgate")


@dataclass
class Container:
    settings: Settings
    engine: Engine
    runtime: Runtime
    tokens: TokenService
    scheduler: Scheduler | None = None
    demo_tokens: dict[str, str] = field(default_factory=dict)

    def start_scheduler(self) -> None:
        if self.scheduler is None:
            self.scheduler = Scheduler(
                self.runtime,
                self.settings.tick_seconds,
                outbox_dead_after=self.settings.outbox_dead_after,
                outbox_backoff_seconds=self.settings.outbox_backoff_seconds,
            )
            _schedule_dunning(self)
            _schedule_rescore(self)
            self.scheduler.start()

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()
            self.scheduler = None
        self.engine.dispose()


def _secret_key(settings: Settings) -> str:
    """FLOWGATE_SECRET_KEY, or a key kept in the data dir so embedded tokens survive restarts."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def _rules_hook(uow: UnitOfWorkFactory) -> DecisionMaker:
    """The durable-rules decision hook over the rulesets published in the database.

    Seeding the shipped defaults here, at start-up, means no business rule task ever has to
    write them from inside its own command's transaction (engine/store/rulesets.py).
    """
    try:
        from engine.decisions import RulesDecisionMaker
        from engine.store.rulesets import SqlRulesetRepository
        from rules.service import RulesService
    except ImportError:
        return NoRules()
    repository = SqlRulesetRepository(uow)
    repository.seed_defaults()
    return RulesDecisionMaker(RulesService(repository))


def _register_o2c(services: ServiceRegistry, rules: DecisionMaker) -> None:
    """Order-to-cash service tasks, when the rules engine is wired (they need its rulesets)."""
    import json
    import os

    from domain.journal import AccountMap
    from engine.handlers.o2c import O2C

    service = getattr(rules, "rules", None)
    if service is not None:
        overrides = json.loads(os.environ.get("FLOWGATE_ACCOUNT_MAP") or "{}")
        O2C(service, AccountMap.from_config(overrides)).register(services)


def bootstrap(
    settings: Settings | None = None,
    services: ServiceRegistry | None = None,
    migrate: bool = True,
    rules: DecisionMaker | None = None,
) -> Container:
    settings = settings or Settings.from_env()
    if migrate:
        upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    services = services or default_registry()
    uow = UnitOfWorkFactory(engine)
    rules = rules or _rules_hook(uow)
    _register_o2c(services, rules)
    known_ruleset = getattr(rules, "knows", lambda _key: False)
    catalog = DefinitionCatalog(lambda t: t in services, known_ruleset)
    runtime = Runtime(
        uow,
        catalog,
        services,
        rules,
        message_ttl=timedelta(seconds=settings.message_ttl_seconds),
        message_ttls={k: timedelta(seconds=v) for k, v in settings.message_ttls.items()},
    )
    install_p2p(services, runtime.completion_guards, outbox_replies=runtime.outbox_replies)
    from engine.handlers.o2c import n_eyes_guard

    runtime.completion_guards.setdefault("n_eyes", n_eyes_guard)
    tokens = TokenService(_secret_key(settings), runtime.uow, settings.token_ttl_hours)
    return Container(settings, engine, runtime, tokens)


def freeze_heap() -> None:
    """Hide what start-up built from the garbage collector before serving requests.

    Modules, SQLAlchemy's mappers and compiled statements, the rules host and the parsed
    models are some 150,000 objects that live as long as the process. Every full collection
    walked all of them: a pause of 80-140 ms now and then, inside whichever request was
    running, which made the tail of task-completion latency (bench_p2p). Frozen objects are
    never scanned again; what requests create is collected as before.
    """
    gc.collect()
    gc.freeze()


def deploy_directory(container: Container, directory: Path) -> list[str]:
    """Deploy every .bpmn (with the .dmn files beside it) found in `directory`."""
    if not directory.is_dir():
        return []
    dmn = [SourceFile(p.name, p.read_bytes()) for p in sorted(directory.glob("*.dmn"))]
    deployed = []
    for path in sorted(directory.glob("*.bpmn")):
        with container.runtime.uow() as uow:
            results = container.runtime.catalog.deploy(
                uow, [SourceFile(path.name, path.read_bytes()), *dmn], "flowgate"
            )
            uow.commit()
        deployed += [f"{r.key} v{r.version}" for r in results]
    return deployed


DEMO_USERS = {
    "admin": (["admin"], []),
    "analyst": (["analyst"], []),
    "auditor": (["auditor"], []),
    "carol": (["credit_manager"], ["credit_manager"]),
    "frank": (["finance_director"], ["finance_director"]),
    "quinn": (["qa_manager"], ["qa_manager"]),
    "sam": (["sales_manager"], ["sales_manager"]),
    "dora": (["dept_manager"], ["dept_manager"]),
    "amy": (["ap_clerk"], ["ap_clerk"]),
    "mark": (["ap_manager"], ["ap_manager"]),
    "colin": (["collections"], ["collections"]),
    "cfo": (["cfo"], ["cfo"]),
}


def seed_demo(container: Container) -> dict[str, str]:
    """Demo users' tokens and one ERP API key, written to the data dir for the README."""
    tokens = {
        user: container.tokens.issue(user, roles, groups)
        for user, (roles, groups) in DEMO_USERS.items()
    }
    key_file = container.settings.data_dir / "erp_api_key"
    if key_file.exists():
        tokens["erp"] = key_file.read_text().strip()
    else:
        tokens["erp"] = container.tokens.create_key("demo-erp", ["erp_system"])
        key_file.write_text(tokens["erp"])
        key_file.chmod(0o600)
    (container.settings.data_dir / "demo_tokens.env").write_text(
        "".join(f"{user.upper()}_TOKEN={token}\n" for user, token in tokens.items())
    )
    container.demo_tokens = tokens
    _seed_o2c(container)
    return tokens


def _seed_o2c(container: Container) -> None:
    """O2C demo customers and lots (README, order to cash): each hold can be seen."""
    from engine.handlers.o2c import seed_o2c_demo

    with container.runtime.uow() as uow:
        seed_o2c_demo(uow.session, container.runtime.clock().date())
        uow.commit()


def _schedule_dunning(container: Container) -> None:
    """The dunning sweep (DOMAIN §1) on the scheduler, every minute, on the runtime's clock."""
    from engine.handlers.o2c import sweep_dunning

    rules = getattr(container.runtime.rules, "rules", None)
    if rules is None or container.scheduler is None:
        return
    # The Scheduler has no public way to add a job; it wraps one APScheduler instance.
    container.scheduler._scheduler.add_job(
        container.scheduler._guarded("dunning", lambda: sweep_dunning(container.runtime, rules)),
        "interval",
        seconds=60,
        id="dunning",
        max_instances=1,
        coalesce=True,
    )


def _schedule_rescore(container: Container) -> None:
    """The nightly credit re-score (DOMAIN §1) at FLOWGATE_RESCORE_HOUR UTC."""
    from engine.rescore import rescore_customers

    rules = getattr(container.runtime.rules, "rules", None)
    if rules is None or container.scheduler is None:
        return
    container.scheduler._scheduler.add_job(
        container.scheduler._guarded(
            "rescore", lambda: rescore_customers(container.runtime, rules)
        ),
        "cron",
        hour=container.settings.rescore_hour,
        minute=0,
        id="rescore",
        max_instances=1,
        coalesce=True,
        # A process that was down at the hour still scores when it comes back that night.
        misfire_grace_time=6 * 3600,
    )
