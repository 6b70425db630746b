"""A tenant's files (photos, signatures, reports), kept by whichever storage plugin it enabled.

The one way the rest of the product stores, reads, links to and deletes files: keys are checked
before any plugin sees them, and a file that no storage has, or a storage that failed, is an
error a user can act on instead of a None.
"""

from __future__ import annotations

from patone.core.runtime.errors import NotFound, UserError
from patone.plugins import config as plugins
from patone.plugins.storage import InvalidFileKey, check_expires_in, check_key
from patone.plugins.types import StoredFile
from patone.settings import get_settings
from patone.tenants.isolation import TenantRef


class StorageUnavailable(UserError):
    """No storage took the file (the plugin's error is in the server log)."""


def _key(key: str) -> str:
    try:
        return check_key(key)
    except InvalidFileKey as error:
        raise UserError("invalid_key", str(error), "key") from None


async def store_file(
    tenant: TenantRef, key: str, content: bytes, content_type: str = "application/octet-stream"
) -> StoredFile:
    """Store `content` under `key` (replacing what was there) and say where it went."""
    answer = await plugins.call_first(
        tenant, "store_file", key=_key(key), content=content, content_type=content_type
    )
    if answer is None or not isinstance(answer.value, StoredFile):
        raise StorageUnavailable(
            "storage_unavailable", "No file storage took the file; try again later."
        )
    return answer.value


async def read_file(tenant: TenantRef, key: str) -> bytes:
    """The file's bytes; NotFound when no storage of the tenant has it."""
    answer = await plugins.call_first(tenant, "read_file", key=_key(key))
    if answer is None:
        raise NotFound("not_found", f"There is no file {key!r}.", "key")
    return bytes(answer.value)


async def file_url(tenant: TenantRef, key: str, expires_in: int = 3600) -> str:
    """A link to the file that works for `expires_in` seconds (at most 7 days)."""
    try:
        check_expires_in(expires_in)
    except ValueError as error:
        raise UserError("invalid", str(error), "expires_in") from None
    answer = await plugins.call_first(tenant, "file_url", key=_key(key), expires_in=expires_in)
    if answer is None:
        raise NotFound("not_found", f"There is no file {key!r}.", "key")
    return str(answer.value)


async def delete_file(tenant: TenantRef, key: str) -> None:
    """Delete the file from every storage the tenant enabled; a missing file is no error."""
    results = await plugins.call_all(tenant, "delete_file", key=_key(key))
    failed = sorted(result.plugin for result in results if result.error is not None)
    if failed:
        raise StorageUnavailable(
            "storage_unavailable",
            f"The file could not be deleted from {', '.join(failed)}; try again later.",
        )


async def delete_all_files(tenant: TenantRef) -> None:
    """Delete every file of the tenant from every storage it enabled (its purge).

    A process that has not set the plugins up (a command line) uses the installed ones as
    configured by the settings, so a purge from anywhere leaves no file behind."""
    own = None
    try:
        runtime = plugins.get_runtime()
    except RuntimeError:
        runtime = own = plugins.runtime_from_settings(get_settings())
    try:
        results = await plugins.call_all(tenant, "delete_all_files", runtime=runtime)
    finally:
        if own is not None:
            own.manager.close()
    failed = sorted(result.plugin for result in results if result.error is not None)
    if failed:
        raise StorageUnavailable(
            "storage_unavailable",
            f"The company's files could not be deleted from {', '.join(failed)}; try again.",
        )
