"""Configuration from FLOWGATE_* environment variables, each with a sane default (DESIGN §5)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "on", "yes"}


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./var")
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str = ""
    scheduler: bool = True
    tick_seconds: float = 1.0
    processes_dir: Path = Path("./processes")
    seed_demo: bool = True
    token_ttl_hours: int = 12
    message_ttl_seconds: int = 600
    max_body_bytes: int = 4 * 1024 * 1024
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
            "secret_key": env.get("FLOWGATE_SECRET_KEY", ""),
            "scheduler": _flag(env.get("FLOWGATE_SCHEDULER", "on")),
            "tick_seconds": float(env.get("FLOWGATE_TICK_SECONDS", "1")),
            "processes_dir": Path(env.get("FLOWGATE_PROCESSES_DIR", "./processes")),
            "seed_demo": _flag(env.get("FLOWGATE_SEED_DEMO", "on")),
            "token_ttl_hours": int(env.get("FLOWGATE_TOKEN_TTL_HOURS", "12")),
            "message_ttl_seconds": int(env.get("FLOWGATE_MESSAGE_TTL_SECONDS", "600")),
            "max_body_bytes": int(env.get("FLOWGATE_MAX_BODY_BYTES", str(4 * 1024 * 1024))),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
