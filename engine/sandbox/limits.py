"""The limits one evaluation runs under."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SandboxLimits:
    """Per evaluation limits; every evaluate/execute call gets a fresh budget."""

    # Loop iterations, comprehension items and lambda calls, counted together.
    max_steps: int = 100_000
    max_seconds: float = 1.0
    max_range_length: int = 100_000
    # Items of a list/tuple or characters of a str that one operation may produce.
    max_sequence_length: int = 1_000_000
    # 4,096 bits is about 1,233 decimal digits: far beyond any amount or quantity.
    max_int_bits: int = 4_096
    # Widths and precisions in f-string specs and %-formatting.
    max_format_width: int = 1_000
    # Resident-memory growth of the process while one evaluation runs (Linux only);
    # None switches the check off.
    max_memory_growth_bytes: int | None = 256 * 1024 * 1024
