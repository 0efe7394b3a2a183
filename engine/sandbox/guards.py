"""Runtime guards: the budget, the bounded operators and the attribute allow list.

One `Runtime` is made per evaluation; its bound methods are the helpers that
`rewrite.py` weaves into the compiled code, so every evaluation gets a fresh
step budget, deadline and memory baseline.
"""

from __future__ import annotations

import operator
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta, timezone
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any

from engine.sandbox import rewrite
from engine.sandbox.errors import SandboxViolation
from engine.sandbox.limits import SandboxLimits

_SEQUENCES = (str, list, tuple)
_NUMBERS = (int, float, Decimal)
_MEMORY_CHECK_INTERVAL = 0.01  # seconds; reading /proc costs a few microseconds
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")

_BINARY = {"+": operator.add, "*": operator.mul, "**": operator.pow}
_BINARY |= {"<<": operator.lshift, "%": operator.mod}
_IN_PLACE = {"+": operator.iadd, "*": operator.imul, "**": operator.ipow}
_IN_PLACE |= {"<<": operator.ilshift, "%": operator.imod}

# Attribute allow list, by type along the MRO. Everything else, including every
# attribute of functions, generators, iterators and classes not listed below,
# is refused: that closes the paths from objects back to frames and builtins.
_STR_METHODS = {
    "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum",
    "isalpha", "isascii", "isdecimal", "isdigit", "islower", "isnumeric", "isspace",
    "istitle", "isupper", "lower", "lstrip", "partition", "removeprefix",
    "removesuffix", "rfind", "rindex", "rpartition", "rsplit", "rstrip", "split",
    "splitlines", "startswith", "strip", "swapcase", "title", "upper",
    # size-checked below
    "center", "join", "ljust", "replace", "rjust", "zfill",
}  # fmt: skip
_DATE_ATTRIBUTES = {
    "day", "isocalendar", "isoformat", "isoweekday", "month", "replace", "strftime",
    "toordinal", "weekday", "year",
}  # fmt: skip
_CLOCK_ATTRIBUTES = {"hour", "minute", "second", "microsecond", "tzinfo", "utcoffset"}
_INSTANCE_ATTRIBUTES: dict[type, frozenset[str]] = {
    str: frozenset(_STR_METHODS),
    list: frozenset(
        {"append", "clear", "copy", "count", "extend", "index", "insert", "pop", "remove"}
        | {"reverse", "sort"}
    ),
    tuple: frozenset({"count", "index"}),
    dict: frozenset(
        {"clear", "copy", "get", "items", "keys", "pop", "popitem", "setdefault", "update"}
        | {"values"}
    ),
    set: frozenset(
        {"add", "clear", "copy", "difference", "difference_update", "discard"}
        | {"intersection", "intersection_update", "isdisjoint", "issubset", "issuperset"}
        | {"pop", "remove", "symmetric_difference", "union", "update"}
    ),
    int: frozenset({"bit_length", "denominator", "imag", "numerator", "real"}),
    float: frozenset({"imag", "is_integer", "real"}),
    Decimal: frozenset(
        {"adjusted", "compare", "copy_abs", "copy_negate", "copy_sign", "exp", "is_finite"}
        | {"is_nan", "is_signed", "is_zero", "ln", "log10", "max", "min", "normalize"}
        | {"quantize", "sqrt", "to_eng_string", "to_integral_value"}
    ),
    date: frozenset(_DATE_ATTRIBUTES),
    datetime: frozenset(_CLOCK_ATTRIBUTES | {"astimezone", "date", "time", "timestamp"}),
    time_of_day: frozenset(_CLOCK_ATTRIBUTES | {"isoformat", "replace", "strftime"}),
    timedelta: frozenset({"days", "microseconds", "seconds", "total_seconds"}),
    timezone: frozenset({"tzname", "utcoffset"}),
}
_CLASS_ATTRIBUTES: dict[type, frozenset[str]] = {
    date: frozenset({"fromisocalendar", "fromisoformat", "fromordinal", "max", "min", "today"}),
    datetime: frozenset(
        {"combine", "fromisocalendar", "fromisoformat", "max", "min", "now", "strptime", "today"}
    ),
    timedelta: frozenset({"max", "min", "resolution"}),
    timezone: frozenset({"utc"}),
    dict: frozenset({"fromkeys"}),
}
_allowed_by_type: dict[type, frozenset[str]] = {}


def allowed_attributes(obj: object) -> frozenset[str]:
    """Attributes a sandboxed script may read on `obj`."""
    if isinstance(obj, type):
        return _CLASS_ATTRIBUTES.get(obj, frozenset())
    kind = type(obj)
    allowed = _allowed_by_type.get(kind)
    if allowed is None:
        allowed = frozenset().union(*(_INSTANCE_ATTRIBUTES.get(k, ()) for k in kind.__mro__))
        _allowed_by_type[kind] = allowed
    return allowed


def _resident_bytes() -> int | None:
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
    except OSError:
        return None  # not Linux: the memory check is off, the other limits still hold
    try:
        return int(os.read(fd, 128).split()[1]) * _PAGE_SIZE
    finally:
        os.close(fd)


_HELPER_NAMES = frozenset(
    {
        "__builtins__",
        rewrite.TICK,
        rewrite.GETATTR,
        rewrite.GETATTR_OR_KEY,
        rewrite.RENDER,
        rewrite.BINOP,
        rewrite.AUGMENT,
        rewrite.AUGMENT_ITEM,
    }
)
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Runtime:
    """The limits of one evaluation and the guarded helpers that enforce them."""

    def __init__(self, limits: SandboxLimits) -> None:
        self.limits = limits
        self.steps = 0
        now = time.monotonic()
        self.deadline = now + limits.max_seconds
        self.next_memory_check = now + _MEMORY_CHECK_INTERVAL
        # Read at the first tick, not here: most evaluations (a gateway condition, a key
        # expression) never loop or call, and reading /proc for each cost three system calls
        # under the write lock. Nothing can grow memory much before its first tick.
        self.memory_baseline: int | None = None
        self._baseline_due = limits.max_memory_growth_bytes is not None

    @staticmethod
    def helper_names() -> frozenset[str]:
        """Names in `namespace()` that are machinery, never task data."""
        return _HELPER_NAMES

    def namespace(self) -> dict[str, Any]:
        """Globals for one evaluation: the helpers and the builtins allow list."""
        return {
            "__builtins__": self.builtins(),
            rewrite.TICK: self.tick,
            rewrite.GETATTR: self.getattr,
            rewrite.GETATTR_OR_KEY: self.getattr_or_key,
            rewrite.RENDER: self.render,
            rewrite.BINOP: self.binary,
            rewrite.AUGMENT: self.augment,
            rewrite.AUGMENT_ITEM: self.augment_item,
        }

    def builtins(self) -> dict[str, Any]:
        return {
            "abs": abs,
            "all": all,
            "any": any,
            "bool": bool,
            "dict": dict,
            "enumerate": enumerate,
            "float": float,
            "int": int,
            "len": len,
            "list": list,
            "max": max,
            "min": min,
            "range": self.range,
            "reversed": reversed,
            "round": round,
            "set": set,
            "sorted": sorted,
            "str": self.str,
            "sum": self.sum,
            "tuple": tuple,
            "zip": self.zip,
            "Decimal": Decimal,
            "date": date,
            "datetime": datetime,
            "timedelta": timedelta,
            "timezone": timezone,
        }

    # -- budget ---------------------------------------------------------------

    def tick(self) -> bool:
        self.steps += 1
        if self._baseline_due:
            self._baseline_due = False
            self.memory_baseline = _resident_bytes()
        if self.steps > self.limits.max_steps:
            raise SandboxViolation(
                f"step limit exceeded: more than {self.limits.max_steps:,} loop iterations or calls"
            )
        now = time.monotonic()
        if now > self.deadline:
            raise SandboxViolation(
                f"time limit exceeded: ran longer than {self.limits.max_seconds}s"
            )
        if self.memory_baseline is not None and now >= self.next_memory_check:
            self.next_memory_check = now + _MEMORY_CHECK_INTERVAL
            self._check_memory()
        return True

    def _check_memory(self) -> None:
        resident = _resident_bytes()
        growth_limit = self.limits.max_memory_growth_bytes
        if resident is None or self.memory_baseline is None or growth_limit is None:
            return
        grown = resident - self.memory_baseline
        if grown > growth_limit:
            raise SandboxViolation(
                f"memory limit exceeded: grew by {grown // 2**20:,} MiB "
                f"(limit {growth_limit // 2**20:,} MiB)"
            )

    def _refuse_size(self, size: int, what: str) -> None:
        if size > self.limits.max_sequence_length:
            raise SandboxViolation(
                f"{what} would have {size:,} items; the limit is "
                f"{self.limits.max_sequence_length:,}"
            )

    def _refuse_bits(self, bits: int, what: str) -> None:
        if bits > self.limits.max_int_bits:
            raise SandboxViolation(
                f"{what} would need about {bits:,} bits; the limit is {self.limits.max_int_bits:,}"
            )

    # -- operators --------------------------------------------------------------

    def _check_binary(self, symbol: str, left: Any, right: Any) -> None:
        if symbol == "+":
            if isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
                self._refuse_size(len(left) + len(right), "concatenation")
        elif symbol == "*":
            if isinstance(left, _SEQUENCES) and isinstance(right, int):
                self._refuse_size(len(left) * right, "repetition")
            elif isinstance(right, _SEQUENCES) and isinstance(left, int):
                self._refuse_size(len(right) * left, "repetition")
            elif isinstance(left, int) and isinstance(right, int):
                self._refuse_bits(left.bit_length() + right.bit_length(), "multiplication")
        elif symbol == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                self._refuse_bits((abs(left).bit_length() - 1) * right, "power")
        elif symbol == "<<":
            if isinstance(left, int) and isinstance(right, int) and left:
                self._refuse_bits(left.bit_length() + right, "shift")
        elif symbol == "%" and isinstance(left, str):
            self._check_percent_format(left, right)

    def _check_percent_format(self, template: str, values: Any) -> None:
        for width, precision in _PERCENT_SPEC.findall(template):
            for number in (width, precision):
                if number == "*":
                    raise SandboxViolation("'*' widths in %-formatting are not allowed")
                if number and int(number) > self.limits.max_format_width:
                    raise SandboxViolation(
                        f"%-format width {int(number):,} is over the limit of "
                        f"{self.limits.max_format_width:,}"
                    )
        self.render(values)

    def binary(self, symbol: str, left: Any, right: Any) -> Any:
        self._check_binary(symbol, left, right)
        return _BINARY[symbol](left, right)

    def augment(self, symbol: str, current: Any, value: Any) -> Any:
        # operator.iadd keeps `items += more` mutating the list in place, as Python does.
        self._check_binary(symbol, current, value)
        return _IN_PLACE[symbol](current, value)

    def augment_item(self, container: Any, key: Any, symbol: str, value: Any) -> None:
        container[key] = self.augment(symbol, container[key], value)

    # -- rendering --------------------------------------------------------------

    def render(self, value: Any) -> Any:
        """Refuse turning a structure into text when the text would be huge.

        `[big] * 1000` is 1,000 references, but its repr repeats `big` 1,000 times.
        The walk is bounded by the same budget, so it is cheap even then.
        """
        budget = self.limits.max_sequence_length
        total = 0
        pending = [value]
        while pending:
            item = pending.pop()
            if isinstance(item, str):
                total += len(item)
            elif isinstance(item, list | tuple | set | frozenset):
                total += len(item) + 2
                if total <= budget:
                    pending.extend(item)
            elif isinstance(item, dict):
                total += 2 * len(item) + 2
                if total <= budget:
                    pending.extend(item.keys())
                    pending.extend(item.values())
            elif isinstance(item, int):
                total += item.bit_length() // 3 + 1
            else:
                total += 32
            if total > budget:
                self._refuse_size(total, "text")
        return value

    def str(self, value: Any = "") -> str:
        return str(self.render(value))

    # -- bounded builtins ---------------------------------------------------------

    def range(self, *args: int) -> range:
        bounded = range(*args)
        try:
            length = len(bounded)
        except OverflowError:
            length = self.limits.max_range_length + 1
        if length > self.limits.max_range_length:
            raise SandboxViolation(
                f"range of {length:,} items is over the limit of {self.limits.max_range_length:,}"
            )
        return bounded

    def sum(self, iterable: Iterable[Any], /, start: Any = 0) -> Any:
        # sum(lists, []) is quadratic concatenation in C, out of reach of the guards.
        if not isinstance(start, (*_NUMBERS, timedelta)):
            raise SandboxViolation("sum() adds numbers only")
        return sum(iterable, start)

    def zip(self, *iterables: Iterable[Any], strict: bool = False) -> zip:
        # zip(*[big] * 1000) materialises width x length tuples in one C call.
        lengths = [len(i) for i in iterables if hasattr(type(i), "__len__")]
        if lengths:
            self._refuse_size(len(iterables) * min(lengths), "zip")
        return zip(*iterables, strict=strict)

    # -- attributes ---------------------------------------------------------------

    def getattr(self, obj: Any, name: str) -> Any:
        if name.startswith("_") or name not in allowed_attributes(obj):
            owner = obj.__name__ if isinstance(obj, type) else type(obj).__name__
            raise SandboxViolation(f"attribute '.{name}' of {owner} is not allowed")
        value = getattr(obj, name)
        if isinstance(obj, str) and name in _SIZE_CHECKED_STR:
            return _SIZE_CHECKED_STR[name](self, obj, value)
        if isinstance(obj, list) and name == "extend":
            return self._checked_extend(obj, value)
        return value

    def getattr_or_key(self, obj: Any, name: str) -> Any:
        if isinstance(obj, Mapping) and name in obj:
            return obj[name]
        return self.getattr(obj, name)

    def _checked_extend(
        self, target: list[Any], extend: Callable[..., None]
    ) -> Callable[..., None]:
        def checked(items: Iterable[Any]) -> None:
            if hasattr(type(items), "__len__"):
                self._refuse_size(len(target) + len(items), "list")
            extend(items)

        return checked


def _padded(runtime: Runtime, text: str, method: Callable[..., str]) -> Callable[..., str]:
    def checked(width: int, *rest: Any) -> str:
        runtime._refuse_size(width, "padded text")
        return method(width, *rest)

    return checked


def _replaced(runtime: Runtime, text: str, method: Callable[..., str]) -> Callable[..., str]:
    def checked(old: str, new: str, count: int = -1) -> str:
        hits = text.count(old) if old else len(text) + 1
        if count >= 0:
            hits = min(hits, count)
        runtime._refuse_size(len(text) + hits * (len(new) - len(old)), "replaced text")
        return method(old, new, count)

    return checked


def _joined(runtime: Runtime, text: str, method: Callable[..., str]) -> Callable[..., str]:
    def checked(items: Iterable[str]) -> str:
        parts = list(items)
        size = sum(len(p) for p in parts if isinstance(p, str)) + len(text) * len(parts)
        runtime._refuse_size(size, "joined text")
        return method(parts)

    return checked


_SIZE_CHECKED_STR: dict[str, Callable[[Runtime, str, Any], Callable[..., str]]] = {
    "center": _padded,
    "ljust": _padded,
    "rjust": _padded,
    "zfill": _padded,
    "replace": _replaced,
    "join": _joined,
}
