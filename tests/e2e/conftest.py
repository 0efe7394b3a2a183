"""Start the real `flowgate serve` on a free port with its own data directory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    base: str
    tokens: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """SIGTERM (the server finishes in-flight requests), then kill if it hangs."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        if token:
            request.add_header("Authorization", f"Bearer {self.tokens.get(token, token)}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                payload = response.read()
                status = response.status
                kind = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            payload, status, kind = exc.read(), exc.code, exc.headers.get("Content-Type", "")
        return status, json.loads(payload) if "json" in kind and payload else payload


def spawn_module(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`python -m argv…` from the repository root, its output into `log`, no stdin."""
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", *argv],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def wait_until_ready(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    """Poll /readyz for up to a minute; a server that exits or never answers fails loudly."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            urllib.request.urlopen(base + "/readyz", timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not start: {log.read_text()}")


def start_server(tmp: Path, env_extra: dict[str, str] | None = None) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "FLOWGATE_DATA_DIR": str(tmp / "var"),
        "FLOWGATE_PORT": str(port),
        "FLOWGATE_PROCESSES_DIR": str(tmp / "processes"),
        "FLOWGATE_TICK_SECONDS": "0.2",
        **(env_extra or {}),
    }
    env.pop("FLOWGATE_DATABASE_URL", None)
    log = tmp / "server.log"
    process = spawn_module(["api.cli", "serve"], log, env)
    base = f"http://127.0.0.1:{port}"
    wait_until_ready(process, base, log)
    tokens = dict(
        line.split("=", 1) for line in (tmp / "var" / "demo_tokens.env").read_text().splitlines()
    )
    return Server(base, {k[:-6].lower(): v for k, v in tokens.items()}, process, log)


@pytest.fixture(params=["1", "2"], ids=["one-process", "two-gunicorn-workers"])
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    """The embedded server as `make run` starts it, and with `--workers 2` (gunicorn)."""
    (tmp_path / "processes").mkdir()
    srv = start_server(tmp_path, {"FLOWGATE_WORKERS": request.param})
    yield srv
    srv.stop()
