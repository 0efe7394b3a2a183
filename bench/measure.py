"""Throughput and latency figures shared by the engine workloads."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Throughput:
    """`count` instances finished in `seconds` of wall time, with each one's latency."""

    count: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def percentile(self, p: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else float("nan")
        return statistics.quantiles(self.latencies, n=100)[p - 1]

    @property
    def p50_ms(self) -> float:
        return self.percentile(50) * 1e3

    @property
    def p99_ms(self) -> float:
        return self.percentile(99) * 1e3
