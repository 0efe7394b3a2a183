"""Masking of sensitive process variables by role (issue 7).

Which variable names are sensitive is configuration (`FLOWGATE_SENSITIVE_VARIABLES`, glob
patterns matched case-insensitively against every key at any depth); roles in
`FLOWGATE_UNMASKED_ROLES` see the values. The others see only the last four characters of a
long string (enough to tell two bank accounts apart) and nothing of anything else.
"""

from __future__ import annotations

import re
from fnmatch import translate
from functools import cache
from typing import Any

from flask import current_app, g

MASK = "***"
_KNOWN_KEYS = 10_000


class Masker:
    def __init__(self, patterns: tuple[str, ...], unmasked_roles: tuple[str, ...]) -> None:
        self.patterns = tuple(p.lower() for p in patterns)
        self.unmasked_roles = frozenset(unmasked_roles)
        # One compiled alternation, and each key's answer kept: fnmatch per pattern per key was
        # a fifth of GET /instances/{id} for a P2P instance (about 70 keys, 10 patterns).
        joined = "|".join(translate(p) for p in self.patterns)
        self._match = re.compile(joined).match if joined else None
        self._known: dict[str, bool] = {}

    def sensitive(self, name: str) -> bool:
        known = self._known.get(name)
        if known is None:
            known = self._match is not None and self._match(name.lower()) is not None
            if len(self._known) < _KNOWN_KEYS:  # keys come from payloads: keep the cache bounded
                self._known[name] = known
        return known

    def may_see(self, roles: frozenset[str]) -> bool:
        return bool(roles & self.unmasked_roles)

    def mask(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: self._hide(v) if self.sensitive(str(k)) else self.mask(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.mask(v) for v in value]
        return value

    @staticmethod
    def _hide(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str) and len(value) >= 8:
            return MASK + value[-4:]
        return MASK


def masker() -> Masker:
    settings = current_app.extensions["flowgate"].settings
    return _masker(tuple(settings.sensitive_variables), tuple(settings.unmasked_roles))


@cache
def _masker(patterns: tuple[str, ...], unmasked_roles: tuple[str, ...]) -> Masker:
    return Masker(patterns, unmasked_roles)


def masked(value: Any) -> Any:
    """`value` as the calling user may see it (call at the point of serialisation)."""
    who = g.get("actor")
    m = masker()
    if who is not None and m.may_see(who.roles | who.groups):
        return value
    return m.mask(value)
