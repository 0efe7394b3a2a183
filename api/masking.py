"""Masking of sensitive process variables by role (issue 7).

Which variable names are sensitive is configuration (`FLOWGATE_SENSITIVE_VARIABLES`, glob
patterns matched case-insensitively against every key at any depth); roles in
`FLOWGATE_UNMASKED_ROLES` see the values. The others see only the last four characters of a
long string (enough to tell two bank accounts apart) and nothing of anything else.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from flask import current_app, g

MASK = "***"


class Masker:
    def __init__(self, patterns: tuple[str, ...], unmasked_roles: tuple[str, ...]) -> None:
        self.patterns = tuple(p.lower() for p in patterns)
        self.unmasked_roles = frozenset(unmasked_roles)

    def sensitive(self, name: str) -> bool:
        lowered = name.lower()
        return any(fnmatchcase(lowered, pattern) for pattern in self.patterns)

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
    return Masker(settings.sensitive_variables, settings.unmasked_roles)


def masked(value: Any) -> Any:
    """`value` as the calling user may see it (call at the point of serialisation)."""
    who = g.get("actor")
    m = masker()
    if who is not None and m.may_see(who.roles | who.groups):
        return value
    return m.mask(value)
