"""Typed settings read from the environment and `.env` (12-factor).

A bad value stops start-up with one line naming the setting: `load_settings()` raises
`SettingsError`, whose message the CLI prints as it is.
"""

from __future__ import annotations

import json
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError


class SettingsError(Exception):
    """A setting has a value the product cannot run with."""


class Settings(BaseSettings):
    """Every setting, its type and its default. Names are the environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    database_url: str | None = Field(
        None, description="Postgres DSN; empty runs an embedded Postgres in DATA_DIR."
    )
    redis_url: str | None = Field(
        None, description="Redis URL; empty runs an embedded Redis in DATA_DIR."
    )
    data_dir: Path = Field(
        Path(".patone"), description="Where the embedded Postgres/Redis and local files live."
    )
    secret_key: str | None = Field(
        None,
        description="Signing/encryption key; generated once into DATA_DIR/secret_key if empty.",
    )
    secret_key_fallbacks: list[str] = Field(
        default_factory=list,
        description="Earlier SECRET_KEYs (JSON list), accepted for decryption while rotating.",
    )
    broker_url: str | None = Field(
        None,
        description="Where jobs are queued: amqp://... for RabbitMQ; by default Redis (REDIS_URL).",
    )
    allow_private_urls: bool = Field(
        False, description="Let tenants point webhooks and plugins at private addresses."
    )
    base_domain: str = Field(
        "localhost", description="Tenants live at <slug>.BASE_DOMAIN (demo.localhost works)."
    )
    public_url: str = Field(
        "",
        description="Where each company is reached from outside, {slug} standing for it "
        "(https://{slug}.example.com); used in links and provider callbacks.",
    )
    host: str = Field("127.0.0.1", description="Address `patone serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `patone serve` listens on.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Log level of the JSON logs."
    )
    debug: bool = Field(False, description="Show error details to clients. Never in production.")
    trust_proxy_headers: bool = Field(
        False,
        description="Believe X-Forwarded-Proto and X-Forwarded-For (behind your own proxy only).",
    )
    demo_tenant: bool | None = Field(
        None,
        description="Create the `demo` tenant at start-up; default: only on the embedded DB.",
    )
    shards: dict[str, str] = Field(
        default_factory=dict,
        description='Extra database clusters as JSON {"name": "dsn"}; "default" is DATABASE_URL.',
    )
    db_pool_min: int = Field(1, ge=0, description="Smallest connection pool per shard.")
    db_pool_max: int = Field(10, ge=1, description="Largest connection pool per shard.")
    db_pool_max_queries: int = Field(
        5000, ge=1, description="Recycle a pooled connection after this many queries."
    )
    db_pool_max_idle: float = Field(
        60.0, ge=0, description="Close pooled connections idle this many seconds."
    )
    migrate_concurrency: int = Field(
        4, ge=1, le=64, description="Tenants migrated at once by `patone migrate`."
    )
    tenant_cache_ttl: float = Field(
        5.0, ge=0, description="Seconds a process caches a tenant lookup."
    )
    tenant_spares: int = Field(
        3,
        ge=0,
        le=100,
        description="Ready-made empty tenant schemas each app server keeps topped up, so a new "
        "company is made by renaming one (0: off; every company is made from scratch).",
    )
    tenant_delete_grace_days: int = Field(
        30, ge=0, description="Days a deleted tenant can be restored before purge."
    )
    session_idle_timeout: int = Field(
        12 * 3600, ge=60, description="Seconds a staff session lasts without a request."
    )
    session_max_age: int = Field(
        7 * 86400, ge=60, description="Seconds a staff session lasts at most, however busy."
    )
    session_cookie_secure: bool | None = Field(
        None,
        description="Mark session cookies Secure; empty: when the request came over HTTPS "
        "(set true behind a TLS-terminating proxy that does not forward the scheme).",
    )

    @field_validator(
        "database_url", "redis_url", "secret_key", "session_cookie_secure", mode="before"
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _postgres_dsn(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("must start with postgresql:// or postgres://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("base_domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        value = value.strip().lower().rstrip(".")
        if not value or any(c in value for c in "/: "):
            raise ValueError("must be a bare host name such as example.com")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("amqp://", "amqps://", "redis://", "rediss://")):
            raise ValueError("must start with amqp://, amqps://, redis:// or rediss://")
        return value or None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and (not value.startswith(("http://", "https://")) or "{slug}" not in value):
            raise ValueError("must be an http(s) URL containing {slug}")
        return value

    @field_validator("shards", mode="before")
    @classmethod
    def _shards_json(cls, value: object) -> object:
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        return value

    @property
    def embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def create_demo_tenant(self) -> bool:
        return self.embedded_postgres if self.demo_tenant is None else self.demo_tenant

    def tenant_url_template(self) -> str:
        """PUBLIC_URL, or the local address of `patone serve` (http://{slug}.BASE_DOMAIN:PORT)."""
        return self.public_url or f"http://{{slug}}.{self.base_domain}:{self.port}"

    def resolved_secret_key(self) -> str:
        """SECRET_KEY, or one generated once and kept in DATA_DIR so restarts keep sessions."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    name = str(first["loc"][0]).upper() if first["loc"] else "settings"
    message = first["msg"].removeprefix("Value error, ")
    return f"Invalid setting {name}: {message}"


def load_settings(**overrides: object) -> Settings:
    """Read the settings; raise `SettingsError` with one line naming the bad setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None
    except (json.JSONDecodeError, SourceError) as error:
        # pydantic-settings decodes complex values (SHARDS) itself and names the field in quotes.
        match = re.search(r'field "(\w+)"', str(error))
        name = match.group(1).upper() if match else "SHARDS"
        raise SettingsError(f"Invalid setting {name}: not valid JSON") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
