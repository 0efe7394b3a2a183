"""Drive the real server with a few client threads over keep-alive connections."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from bench.measure import Throughput


class Client:
    """One keep-alive HTTP/1.1 connection, as an ERP adapter or an inbox UI would hold."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._connection = http.client.HTTPConnection(self._host, self._port, timeout=60)

    def call(self, method: str, path: str, token: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self._connection.request(method, path, data, headers)
            response = self._connection.getresponse()
        except (http.client.HTTPException, ConnectionError):
            # The server closed an idle connection; one fresh attempt is what a client does.
            self._connection.close()
            self._connection = http.client.HTTPConnection(self._host, self._port, timeout=60)
            self._connection.request(method, path, data, headers)
            response = self._connection.getresponse()
        payload = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {payload[:500]!r}")
        return json.loads(payload) if payload else None

    def close(self) -> None:
        self._connection.close()


def drive(
    base: str, count: int, threads: int, one_instance: Callable[[Client, int], None]
) -> Throughput:
    """Run `one_instance` `count` times spread over `threads` connections; time each run."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    next_number = iter(range(count))

    def worker() -> None:
        client = Client(base)
        mine = []
        try:
            while True:
                with lock:
                    number = next(next_number, None)
                if number is None or errors:
                    break
                begun = time.perf_counter()
                one_instance(client, number)
                mine.append(time.perf_counter() - begun)
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()
            with lock:
                latencies.extend(mine)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return Throughput(len(latencies), elapsed, latencies)
