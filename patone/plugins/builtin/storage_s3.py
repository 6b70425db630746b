"""Files in an S3 bucket (AWS, or an S3-compatible service such as MinIO or Cloudflare R2), with
the official SDK (boto3).

Every key is put under the tenant's slug (`<prefix>/<slug>/<key>`), so companies that share a
bucket never see each other's files. One boto3 client is built per distinct configuration and
reused: clients are thread-safe, and building one costs milliseconds of CPU. Calls block, which
is fine: the plugin manager runs plain hook implementations in its thread pool.
"""

from __future__ import annotations

import hashlib
import threading
from functools import lru_cache
from typing import Annotated, Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from pydantic import BaseModel, Field, field_validator

from patone.plugins import ssrf
from patone.plugins.hookspecs import hookimpl
from patone.plugins.storage import check_expires_in, check_key, tenant_folder, tenant_key
from patone.plugins.types import (
    NetworkTarget,
    PluginInfo,
    SecretFor,
    StoredFile,
    TenantView,
    UserError,
)

NAME = "storage-s3"
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_REFUSED = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "AllAccessDisabled"}
)


class StorageError(Exception):
    """S3 refused or failed a call; the message says what to fix."""


class S3Settings(BaseModel):
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    region: str = Field("us-east-1", pattern=r"^[a-z0-9-]{2,32}$")
    access_key_id: str = Field(min_length=1, max_length=128)
    secret_access_key: Annotated[str, SecretFor("endpoint_url")] = Field(
        min_length=1, max_length=256
    )
    endpoint_url: Annotated[str, NetworkTarget("url")] = Field(
        "", description="S3-compatible service (MinIO, R2); empty for AWS itself."
    )
    prefix: str = Field("", description="Folder in the bucket for this installation's files.")
    server_side_encryption: Literal["", "AES256", "aws:kms"] = ""
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto", description="auto: path-style with endpoint_url (what MinIO expects), else virtual."
    )
    timeout: float = Field(2, gt=0, le=30)  # two tries fit the plugin manager's 5 s

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        return check_key(value) if value else value


_building = threading.Lock()


def _client(settings: S3Settings) -> Any:
    """The client for these settings, built once and reused; a company's own endpoint passes
    the SSRF guard first, at every call (boto3 resolves the name itself: checked, not pinned)."""
    if settings.endpoint_url:
        try:
            ssrf.check_url(
                settings.endpoint_url,
                field="config.endpoint_url",
                allow_private=ssrf.allow_private_targets(),
            )
        except UserError as refused:
            raise StorageError(f"S3 not called: {refused.message}") from None
    style = settings.addressing_style
    if style == "auto":
        style = "path" if settings.endpoint_url else "virtual"
    return _client_for(
        settings.region,
        settings.access_key_id,
        settings.secret_access_key,
        settings.endpoint_url,
        style,
        settings.timeout,
    )


@lru_cache(maxsize=64)
def _client_for(
    region: str, key_id: str, secret: str, endpoint_url: str, style: str, timeout: float
) -> Any:
    """One client per distinct connection (companies on one account and endpoint share it)."""
    with _building:  # boto3 sessions are not thread-safe while they load their data
        extra: dict[str, Any] = {}
        if endpoint_url:
            # Checksums on every request (boto3 >= 1.36) are refused by some S3-compatible
            # services; send them only where S3 requires them.
            extra = {
                "request_checksum_calculation": "when_required",
                "response_checksum_validation": "when_required",
            }
        config = Config(
            region_name=region,
            signature_version="s3v4",
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": style},
            **extra,
        )
        return boto3.session.Session().client(
            "s3",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            endpoint_url=endpoint_url or None,
            config=config,
        )


def _settings(config: dict[str, Any]) -> S3Settings:
    return S3Settings.model_validate(config)


def _where(settings: S3Settings) -> str:
    return settings.endpoint_url or f"AWS {settings.region}"


def _failure(settings: S3Settings, action: str, error: Exception) -> StorageError:
    """A StorageError saying what went wrong in words an operator can act on."""
    bucket = settings.bucket
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        text = str(error.response.get("Error", {}).get("Message", "")) or code
        if code == "NoSuchBucket":
            return StorageError(f"bucket {bucket!r} does not exist at {_where(settings)}")
        if code in _REFUSED:
            return StorageError(
                f"S3 refused to {action} in bucket {bucket!r} ({code}): check the access key, "
                "its secret and the bucket policy"
            )
        return StorageError(f"S3 could not {action} in bucket {bucket!r}: {code}: {text}")
    if isinstance(error, BotoConnectionError | HTTPClientError):  # refused, timed out, reset
        return StorageError(f"cannot reach S3 at {_where(settings)} to {action}: {error}")
    return StorageError(f"S3 could not {action} in bucket {bucket!r}: {error}")


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        title="Files in S3",
        description="Keep photos, signatures and reports in an Amazon S3 bucket or an "
        "S3-compatible service (MinIO, Cloudflare R2).",
        settings=S3Settings,
        secret_fields=frozenset({"secret_access_key"}),
    )


@hookimpl
def store_file(
    tenant: TenantView, config: dict[str, Any], key: str, content: bytes, content_type: str
) -> StoredFile:
    settings = _settings(config)
    name = tenant_key(tenant.slug, key, settings.prefix)
    digest = hashlib.sha256(content).hexdigest()
    options: dict[str, Any] = {
        "Bucket": settings.bucket,
        "Key": name,
        "Body": content,
        "ContentType": content_type or "application/octet-stream",
        "Metadata": {"sha256": digest},
    }
    if settings.server_side_encryption:
        options["ServerSideEncryption"] = settings.server_side_encryption
    try:
        answer = _client(settings).put_object(**options)
    except (ClientError, BotoCoreError) as error:
        raise _failure(settings, "store a file", error) from None
    return StoredFile(
        key=key,
        size=len(content),
        content_type=options["ContentType"],
        sha256=digest,
        location=f"s3://{settings.bucket}/{name}",
        provider=NAME,
        etag=str(answer.get("ETag", "")).strip('"'),
    )


@hookimpl
def read_file(tenant: TenantView, config: dict[str, Any], key: str) -> bytes | None:
    settings = _settings(config)
    name = tenant_key(tenant.slug, key, settings.prefix)
    try:
        answer = _client(settings).get_object(Bucket=settings.bucket, Key=name)
        return bytes(answer["Body"].read())
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in _MISSING:
            return None  # not here: a fallback storage may have it
        raise _failure(settings, "read a file", error) from None
    except BotoCoreError as error:
        raise _failure(settings, "read a file", error) from None


@hookimpl
def file_url(tenant: TenantView, config: dict[str, Any], key: str, expires_in: int) -> str | None:
    """A presigned GET. The object is looked up first (one HEAD): a URL to a file the bucket
    does not have would only fail later in the user's browser."""
    settings = _settings(config)
    name = tenant_key(tenant.slug, key, settings.prefix)
    check_expires_in(expires_in)
    client = _client(settings)
    try:
        client.head_object(Bucket=settings.bucket, Key=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in _MISSING:
            return None
        raise _failure(settings, "look up a file", error) from None
    except BotoCoreError as error:
        raise _failure(settings, "look up a file", error) from None
    url: str = client.generate_presigned_url(
        "get_object", Params={"Bucket": settings.bucket, "Key": name}, ExpiresIn=expires_in
    )
    return url


@hookimpl
def delete_file(tenant: TenantView, config: dict[str, Any], key: str) -> bool:
    settings = _settings(config)
    name = tenant_key(tenant.slug, key, settings.prefix)
    try:
        _client(settings).delete_object(Bucket=settings.bucket, Key=name)
    except (ClientError, BotoCoreError) as error:
        raise _failure(settings, "delete a file", error) from None
    return True


@hookimpl
def delete_all_files(tenant: TenantView, config: dict[str, Any]) -> None:
    """Delete everything under the tenant's folder, a page of 1,000 keys at a time."""
    settings = _settings(config)
    folder = tenant_folder(tenant.slug, settings.prefix)
    client = _client(settings)
    try:
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=settings.bucket, Prefix=folder
        ):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                answer = client.delete_objects(Bucket=settings.bucket, Delete={"Objects": keys})
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise StorageError(
                        f"S3 bucket {settings.bucket!r} kept {len(answer['Errors'])} of the "
                        f"company's files ({first.get('Code')}: {first.get('Message')})"
                    )
    except (ClientError, BotoCoreError) as error:
        raise _failure(settings, "delete the company's files", error) from None
