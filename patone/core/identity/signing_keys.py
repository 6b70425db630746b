"""The keys that sign access tokens: ES256 key pairs that rotate, each named by a `kid`.

Keys live in `platform.signing_keys`, the private half sealed with a key derived from
SECRET_KEY (its own purpose string). The newest key whose `active_from` has passed signs; older
keys keep verifying until `verify_until`, when the last token they signed has expired.

A rotated key is published at once (`/.well-known/jwks.json` reads the stored keys, not a
process's memory) and signs only after `ACTIVATION_DELAY`: the JWKS cache lifetime plus a
margin of one refresh interval, so a verifier that cached the key set just before the rotation
has fetched it again, and every one of our processes has reloaded its keyring, before any token
signed with the new key reaches them.

Each process keeps a `Keyring` in memory: verifying a token costs no query. It is loaded at
start-up (or on first use), refreshed every `REFRESH_INTERVAL` by the app, and reloaded at most
every few seconds when a token names a kid it does not know. A process that can open none of the
stored keys (a first start, or a SECRET_KEY changed without fallbacks) adds one of its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from joserfc.jwk import ECKey

from patone.core.runtime.db import engine
from patone.core.runtime.scheduler import periodic
from patone.plugins.secrets import SecretBox

log = logging.getLogger(__name__)

ALGORITHM = "ES256"
CURVE = "P-256"
MAX_TOKEN_TTL = 24 * 3600  # the longest-lived access token (`patone tokens issue --ttl`)
REFRESH_INTERVAL = 60.0
JWKS_MAX_AGE = 60  # seconds a verifier may cache /.well-known/jwks.json
ACTIVATION_DELAY = JWKS_MAX_AGE + REFRESH_INTERVAL
KEY_LIFETIME = 30 * 24 * 3600  # the periodic job rotates a key this old
_MISS_RELOAD_GAP = 5.0  # an unknown kid reloads the keyring at most this often
_LOCK = 0x70746E6B6579  # serialises bootstrap and rotation between processes
_PURPOSE = "patone token signing keys v1"

_COLUMNS = "kid, public_jwk, private_jwk, created_at, active_from, verify_until"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    public: ECKey
    private: ECKey | None  # None when this process's SECRET_KEY cannot open it
    created_at: float
    active_from: float
    verify_until: float | None


def _epoch(value: Any) -> float | None:
    return None if value is None else float(value.timestamp())


class Keyring:
    """The signing keys as this process knows them (see the module docstring)."""

    def __init__(self, secret: str, fallbacks: Sequence[str] = ()) -> None:
        self.fallbacks = tuple(fallbacks)
        self._box = SecretBox(secret, fallbacks, purpose=_PURPOSE)
        self._keys: dict[str, SigningKey] = {}
        self.loaded_at: float | None = None  # time.monotonic() of the last load
        self._last_miss_reload = 0.0

    # --- reading -----------------------------------------------------------------------------

    def signing_key(self) -> SigningKey:
        """The newest active key this process can sign with."""
        now = time.time()
        usable = [k for k in self._keys.values() if k.private is not None and k.active_from <= now]
        if not usable:
            raise RuntimeError("no signing key is loaded: load the keyring first")
        return max(usable, key=lambda k: (k.active_from, k.created_at))

    def verification_key(self, kid: str) -> ECKey | None:
        """The public key named `kid` if it still verifies; an unknown kid reloads the keyring
        (at most every few seconds) in case another process rotated or bootstrapped a key."""
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._last_miss_reload > _MISS_RELOAD_GAP:
            self._last_miss_reload = time.monotonic()
            self.load_blocking()
            key = self._keys.get(kid)
        if key is None or (key.verify_until is not None and key.verify_until < time.time()):
            return None
        return key.public

    def kids(self) -> list[str]:
        return sorted(self._keys)

    def get(self, kid: str) -> SigningKey | None:
        """The loaded key named `kid`, if any (its `active_from` says when it signs)."""
        return self._keys.get(kid)

    # --- loading -----------------------------------------------------------------------------

    def _open(self, row: Any) -> SigningKey:
        public = ECKey.import_key(json.loads(row["public_jwk"]))
        private: ECKey | None
        try:
            private = ECKey.import_key(json.loads(self._box.open(json.loads(row["private_jwk"]))))
        except ValueError:
            private = None
        return SigningKey(
            kid=row["kid"],
            public=public,
            private=private,
            created_at=_epoch(row["created_at"]) or 0.0,
            active_from=_epoch(row["active_from"]) or 0.0,
            verify_until=_epoch(row["verify_until"]),
        )

    async def _read(self, connection: asyncpg.Connection) -> dict[str, SigningKey]:
        rows = await connection.fetch(
            f"SELECT {_COLUMNS} FROM platform.signing_keys "
            "WHERE verify_until IS NULL OR verify_until > now()"
        )
        return {row["kid"]: self._open(row) for row in rows}

    def _can_sign(self, keys: dict[str, SigningKey]) -> bool:
        now = time.time()
        return any(k.private is not None and k.active_from <= now for k in keys.values())

    async def load_from(self, connection: asyncpg.Connection) -> None:
        """Read the keys; add one if this process can sign with none of them."""
        keys = await self._read(connection)
        if not self._can_sign(keys):
            async with connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
                keys = await self._read(connection)
                if not self._can_sign(keys):
                    await self.add_key(connection, activate_in=0)
                    if any(k.private is None for k in keys.values()):
                        log.warning(
                            "signing key created: none stored could be opened with this key"
                        )
                    else:  # a new data dir: nothing is wrong
                        log.info("signing key created")
                    keys = await self._read(connection)
        self._keys = keys
        self.loaded_at = time.monotonic()

    async def load(self) -> None:
        """Load (or reload) from the default database's pool."""
        async with engine.acquire() as connection:
            await self.load_from(connection)

    def load_blocking(self) -> None:
        """Load on a connection of its own in another thread: for synchronous callers before
        the keyring was loaded (it blocks the caller for one query)."""
        dsn = engine.dsn()

        async def load() -> None:
            connection = await asyncpg.connect(**engine.connection_options(dsn))
            try:
                await self.load_from(connection)
            finally:
                await connection.close()

        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, load()).result()

    def ensure_loaded(self) -> None:
        if self.loaded_at is None or time.monotonic() - self.loaded_at > 10 * REFRESH_INTERVAL:
            self.load_blocking()

    async def refresh_forever(self) -> None:
        """Reload every REFRESH_INTERVAL (the app runs this as a task)."""
        while True:
            await asyncio.sleep(REFRESH_INTERVAL)
            try:
                await self.load()
            except Exception:
                log.warning("signing keys could not be reloaded", exc_info=True)

    # --- writing -----------------------------------------------------------------------------

    async def add_key(self, connection: asyncpg.Connection, *, activate_in: float) -> str:
        """Store a new key pair that starts signing in `activate_in` seconds; older keys verify
        until the last token they may sign has expired. Returns its kid."""
        private = ECKey.generate_key(CURVE, auto_kid=True)
        kid = str(private.kid)
        row = await connection.fetchrow(
            "INSERT INTO platform.signing_keys (kid, algorithm, public_jwk, private_jwk, "
            "active_from) VALUES ($1, $2, $3::jsonb, $4::jsonb, "
            "now() + make_interval(secs => $5)) RETURNING active_from",
            kid,
            ALGORITHM,
            json.dumps(private.as_dict(private=False)),
            json.dumps(self._box.seal(json.dumps(private.as_dict(private=True)))),
            float(activate_in),
        )
        await connection.execute(
            "UPDATE platform.signing_keys "
            "SET verify_until = $2::timestamptz + make_interval(secs => $3) "
            "WHERE kid <> $1 AND verify_until IS NULL",
            kid,
            row["active_from"],
            float(MAX_TOKEN_TTL),
        )
        await connection.execute(
            "DELETE FROM platform.signing_keys WHERE verify_until < now() - interval '1 day'"
        )
        return kid


async def rotate(keyring: Keyring, *, activate_in: float = ACTIVATION_DELAY) -> str:
    """Add a new signing key (active after `activate_in` seconds) and reload; returns its kid."""
    async with engine.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        kid = await keyring.add_key(connection, activate_in=activate_in)
    await keyring.load()
    return kid


async def rotate_if_due(keyring: Keyring) -> str | None:
    """Rotate when the newest key is older than KEY_LIFETIME; returns the new kid, if any."""
    newest = await engine.fetch("SELECT max(created_at) AS at FROM platform.signing_keys")
    at = newest[0]["at"] if newest else None
    if at is not None and time.time() - at.timestamp() < KEY_LIFETIME:
        return None
    return await rotate(keyring)


async def published() -> dict[str, Any]:
    """The public keys that verify now (RFC 7517 JWK Set), newest first, as stored: a key
    rotated by another process is listed at once, before it signs."""
    rows = await engine.fetch(
        "SELECT kid, public_jwk FROM platform.signing_keys "
        "WHERE verify_until IS NULL OR verify_until > now() ORDER BY active_from DESC, kid"
    )
    return {
        "keys": [
            {**json.loads(row["public_jwk"]), "kid": row["kid"], "alg": ALGORITHM, "use": "sig"}
            for row in rows
        ]
    }


_keyrings: dict[str, Keyring] = {}


def keyring_for(secret: str, fallbacks: Sequence[str] | None = None) -> Keyring:
    """The process's keyring for this SECRET_KEY, made on first use (and again when other
    `fallbacks` are named); it loads itself when first used if nobody loaded it before."""
    found = _keyrings.get(secret)
    if found is None or (fallbacks is not None and found.fallbacks != tuple(fallbacks)):
        found = _keyrings[secret] = Keyring(secret, fallbacks or ())
    return found


@periodic("signing_keys.rotate", every=3600)
async def rotate_when_due() -> None:
    """Rotate the signing key once it is KEY_LIFETIME old (the scheduler's leader runs this)."""
    from patone.settings import get_settings

    settings = get_settings()
    await rotate_if_due(keyring_for(settings.resolved_secret_key(), settings.secret_key_fallbacks))
