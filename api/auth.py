"""Bearer tokens: signed user tokens, and API keys for systems stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import bindparam, select

from engine.runtime.commands import Actor
from engine.store.tables import ApiKey
from engine.store.uow import UnitOfWorkFactory

KEY_PREFIX = "fgk_"
TOKEN_SALT = "flowgate-user-token"


# Built once, from the table's plain columns: with the ORM's annotated columns, matching the
# result to the statement cost more than the query itself, on every ERP request.
_KEYS = ApiKey.__table__.c
_KEY_LOOKUP = select(_KEYS.id, _KEYS.name, _KEYS.roles, _KEYS.revoked_at, _KEYS.last_used_at).where(
    _KEYS.key_hash == bindparam("digest")
)


class Unauthenticated(Exception):
    """No token, or one that is malformed, expired, revoked or unknown."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class TokenService:
    def __init__(self, secret_key: str, uow: UnitOfWorkFactory, ttl_hours: int = 12) -> None:
        self._signer = URLSafeTimedSerializer(secret_key, salt=TOKEN_SALT)
        self.secret_key = secret_key  # for log redaction (api/logging.py)
        self._uow = uow
        self.ttl_seconds = ttl_hours * 3600

    def issue(self, user: str, roles: list[str], groups: list[str] | None = None) -> str:
        return self._signer.dumps(
            {"sub": user, "roles": sorted(roles), "groups": sorted(groups or [])}
        )

    def create_key(self, name: str, roles: list[str]) -> str:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._uow() as uow:
            uow.session.add(ApiKey(name=name, key_hash=hash_key(key), roles=sorted(roles)))
            uow.commit()
        return key

    def authenticate(self, header: str | None) -> Actor:
        if not header or not header.startswith("Bearer "):
            raise Unauthenticated("missing bearer token")
        token = header[len("Bearer ") :].strip()
        if token.startswith(KEY_PREFIX):
            return self._api_key(token)
        try:
            claims = self._signer.loads(token, max_age=self.ttl_seconds)
        except SignatureExpired:
            raise Unauthenticated("token expired") from None
        except BadSignature:
            raise Unauthenticated("invalid token") from None
        return Actor(claims["sub"], frozenset(claims["roles"]), frozenset(claims["groups"]))

    def _api_key(self, key: str) -> Actor:
        digest = hash_key(key)
        # One read on a bare connection, every request: an ORM session around it cost as much
        # as the rest of the check. Not a write transaction: on SQLite it would queue every
        # ERP call on the one write lock.
        with self._uow.engine.connect() as connection:
            row = connection.execute(_KEY_LOOKUP, {"digest": digest}).one_or_none()
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("unknown or revoked API key")
        now = datetime.now(UTC)
        # Recording every use would serialise all ERP calls on one row; a minute is enough
        # to tell an auditor whether a key is still in use.
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            with self._uow() as uow:
                stored = uow.session.get(ApiKey, row.id)
                if stored is not None:
                    stored.last_used_at = now
                    uow.commit()
        return Actor(f"key:{row.name}", frozenset(row.roles))
