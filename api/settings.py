"""Configuration from FLOWGATE_* environment variables, each with a sane default (DESIGN §5)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "on", "yes"}


def _names(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


# Variable names (glob patterns, any depth) masked for roles outside `unmasked_roles`:
# bank details, licence numbers and personal contact data.
SENSITIVE_VARIABLES = (
    "*bank_account*",
    "iban",
    "swift",
    "bic",
    "*licen?e_no*",
    "*licen?e_number*",
    "contact_*",
    "*email*",
    "*phone*",
    "*mobile*",
)


MESSAGE_TTLS = {"vendor_invoice": 30 * 24 * 3600}


def _ttls(value: str | None) -> dict[str, int]:
    """`name=seconds,...` (FLOWGATE_MESSAGE_TTLS); unset keeps the defaults above."""
    if value is None:
        return dict(MESSAGE_TTLS)
    ttls = {}
    for item in _names(value):
        name, sep, seconds = item.partition("=")
        if not sep or not seconds.strip().isdigit():
            raise ValueError(f"FLOWGATE_MESSAGE_TTLS: '{item}' is not name=seconds")
        ttls[name.strip()] = int(seconds)
    return ttls


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./var")
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    # Server processes for `flowgate serve` and threads each. Two by default, so a 2-core
    # machine runs requests on both cores (bench/README: ~1.2-1.5x W1 over HTTP); 1 is a
    # single threaded werkzeug process.
    workers: int = 2
    threads: int = 8
    secret_key: str = ""
    scheduler: bool = True
    tick_seconds: float = 1.0
    processes_dir: Path = Path("./processes")
    seed_demo: bool = True
    token_ttl_hours: int = 12
    message_ttl_seconds: int = 600
    # Per message name, seconds: a vendor invoice often comes days before the goods.
    message_ttls: dict[str, int] = field(default_factory=lambda: dict(MESSAGE_TTLS))
    max_body_bytes: int = 4 * 1024 * 1024
    # Security (issue 7): see SECURITY.md.
    log_level: str = "INFO"
    sensitive_variables: tuple[str, ...] = SENSITIVE_VARIABLES
    unmasked_roles: tuple[str, ...] = ("admin", "auditor")
    # Per key: far above the rate the engine is built for (W1 200/s), so it only stops a runaway
    # client, never a busy ERP.
    rate_limit_per_minute: int = 30000
    max_json_depth: int = 32
    # Outbox to the ERP: the n-th failed delivery waits backoff * 2**n; the dead_after-th
    # failure dead-letters the row.
    outbox_backoff_seconds: float = 1.0
    outbox_dead_after: int = 8
    # The nightly credit re-score runs at this UTC hour (DOMAIN §1).
    rescore_hour: int = 2
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("FLOWGATE_DATA_DIR", "./var"))
        url = env.get("FLOWGATE_DATABASE_URL") or f"sqlite:///{data_dir / 'flowgate.db'}"
        values: dict[str, object] = {
            "data_dir": data_dir,
            "database_url": url,
            "host": env.get("FLOWGATE_HOST", "127.0.0.1"),
            "port": int(env.get("FLOWGATE_PORT", "8000")),
            "workers": int(env.get("FLOWGATE_WORKERS", "2")),
            "threads": int(env.get("FLOWGATE_THREADS", "8")),
            "secret_key": env.get("FLOWGATE_SECRET_KEY", ""),
            "scheduler": _flag(env.get("FLOWGATE_SCHEDULER", "on")),
            "tick_seconds": float(env.get("FLOWGATE_TICK_SECONDS", "1")),
            "processes_dir": Path(env.get("FLOWGATE_PROCESSES_DIR", "./processes")),
            "seed_demo": _flag(env.get("FLOWGATE_SEED_DEMO", "on")),
            "token_ttl_hours": int(env.get("FLOWGATE_TOKEN_TTL_HOURS", "12")),
            "message_ttl_seconds": int(env.get("FLOWGATE_MESSAGE_TTL_SECONDS", "600")),
            "message_ttls": _ttls(env.get("FLOWGATE_MESSAGE_TTLS")),
            "max_body_bytes": int(env.get("FLOWGATE_MAX_BODY_BYTES", str(4 * 1024 * 1024))),
            "log_level": env.get("FLOWGATE_LOG_LEVEL", "INFO"),
            "sensitive_variables": _names(
                env.get("FLOWGATE_SENSITIVE_VARIABLES", ",".join(SENSITIVE_VARIABLES))
            ),
            "unmasked_roles": _names(env.get("FLOWGATE_UNMASKED_ROLES", "admin,auditor")),
            "rate_limit_per_minute": int(env.get("FLOWGATE_RATE_LIMIT_PER_MINUTE", "30000")),
            "max_json_depth": int(env.get("FLOWGATE_MAX_JSON_DEPTH", "32")),
            "outbox_backoff_seconds": float(env.get("FLOWGATE_OUTBOX_BACKOFF_SECONDS", "1")),
            "outbox_dead_after": int(env.get("FLOWGATE_OUTBOX_DEAD_AFTER", "8")),
            "rescore_hour": int(env.get("FLOWGATE_RESCORE_HOUR", "2")),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
