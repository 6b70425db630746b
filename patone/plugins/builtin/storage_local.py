"""Files on this installation's disk: the default storage, on with no configuration.

Each tenant's files live in `DATA_DIR/files/<slug>/<key>`, written atomically (a temporary file
renamed into place, so a reader never sees half a photo). `file_url` gives a signed link to the
app's own `/files/<key>` route, valid for the tenant it was made for and until it expires; the
signing key is derived from SECRET_KEY. It is `trylast`, so a company that turned on a real
storage (S3) keeps its files there, and this one answers only when that storage does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import mimetypes
import os
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from patone.plugins.hookspecs import hookimpl
from patone.plugins.host import error_response, request_tenant
from patone.plugins.storage import (
    InvalidFileKey,
    check_expires_in,
    check_key,
    tenant_folder,
    tenant_key,
)
from patone.plugins.types import PluginInfo, StoredFile, TenantView
from patone.settings import Settings, get_settings

NAME = "storage-local"
URL_PREFIX = "/files/"


class LocalFiles:
    """One installation's files on disk, and the key their links are signed with."""

    def __init__(self, root: Path, secret: str) -> None:
        self.root = root
        self._signing_key = hashlib.sha256(b"patone file links v1\x00" + secret.encode()).digest()

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalFiles:
        root = settings.data_dir.expanduser().resolve() / "files"
        return cls(root, settings.resolved_secret_key())

    def path(self, slug: str, key: str) -> Path:
        """Where a tenant's file lives; never outside that tenant's folder."""
        path = self.root / tenant_key(slug, key)
        if not path.resolve().is_relative_to((self.root / slug).resolve()):
            raise InvalidFileKey(f"{key!r} leads outside the company's folder")
        return path

    def store(self, slug: str, key: str, content: bytes, content_type: str) -> StoredFile:
        target = self.path(slug, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return StoredFile(
            key=key,
            size=len(content),
            content_type=content_type or "application/octet-stream",
            sha256=hashlib.sha256(content).hexdigest(),
            location=target.as_uri(),
            provider=NAME,
        )

    def read(self, slug: str, key: str) -> bytes | None:
        try:
            return self.path(slug, key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def delete(self, slug: str, key: str) -> bool:
        """Remove the file and the folders it leaves empty; False if it was not there."""
        path = self.path(slug, key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return False
        top = self.root / slug
        folder = path.parent
        while folder != top and folder.is_relative_to(top):
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone): leave it
                break
            folder = folder.parent
        return True

    def delete_all(self, slug: str) -> None:
        """Remove the tenant's whole folder (its purge)."""
        folder = self.root / tenant_folder(slug)
        if folder.exists():
            shutil.rmtree(folder)

    def _signature(self, slug: str, tenant_id: str, key: str, expires: int) -> str:
        # The id as well as the slug: a company that later takes a purged slug has another id.
        message = f"{slug}\x00{tenant_id}\x00{key}\x00{expires}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    def url(
        self, slug: str, tenant_id: str, key: str, expires_in: int, now: float | None = None
    ) -> str:
        """A link to `/files/<key>` on the tenant's own host, good for `expires_in` seconds."""
        expires = int(now if now is not None else time.time()) + check_expires_in(expires_in)
        signature = self._signature(slug, tenant_id, key, expires)
        query = urlencode({"expires": expires, "sig": signature})
        return f"{URL_PREFIX}{quote(check_key(key), safe='/')}?{query}"

    def check_link(
        self,
        slug: str,
        tenant_id: str,
        key: str,
        expires: str,
        signature: str,
        now: float | None = None,
    ) -> str | None:
        """None if the link is good, else why not (`bad_signature` or `link_expired`)."""
        if not expires.isdigit() or not hmac.compare_digest(
            self._signature(slug, tenant_id, key, int(expires)), signature
        ):
            return "bad_signature"
        if int(expires) < (now if now is not None else time.time()):
            return "link_expired"
        return None


_installation: LocalFiles | None = None


def configure(files: LocalFiles | None) -> None:
    """Use these files (the app does this with its settings; None: back to DATA_DIR)."""
    global _installation
    _installation = files


def installation() -> LocalFiles:
    """The files this process uses: as configured, else from the process settings."""
    global _installation
    if _installation is None:
        _installation = LocalFiles.from_settings(get_settings())
    return _installation


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        title="Files on this server",
        description="Keeps photos, signatures and reports on the server's disk, and hands out "
        "links to them that expire. The default when no other storage is on.",
        default_enabled=True,
    )


@hookimpl(trylast=True)
def store_file(tenant: TenantView, key: str, content: bytes, content_type: str) -> StoredFile:
    return installation().store(tenant.slug, key, content, content_type)


@hookimpl(trylast=True)
def read_file(tenant: TenantView, key: str) -> bytes | None:
    return installation().read(tenant.slug, key)


@hookimpl(trylast=True)
def file_url(tenant: TenantView, key: str, expires_in: int) -> str | None:
    files = installation()
    if not files.path(tenant.slug, key).is_file():
        return None
    return files.url(tenant.slug, tenant.id, key, expires_in)


@hookimpl(trylast=True)
def delete_all_files(tenant: TenantView) -> None:
    installation().delete_all(tenant.slug)


@hookimpl(trylast=True)
def delete_file(tenant: TenantView, key: str) -> bool:
    return installation().delete(tenant.slug, key)


async def serve(request: Request) -> Response:
    """GET /files/<key>?expires=..&sig=..: a file of the request's tenant, if the link is good.

    Served with `nosniff` and a sandboxing Content-Security-Policy: files are uploaded by users,
    and an HTML or SVG one must not run script on the company's own domain.
    """
    tenant = request_tenant(request, "Files belong to a company: use its address.")
    key = request.path_params["key"]
    files = installation()
    try:
        path = files.path(tenant.slug, key)
    except InvalidFileKey:
        return error_response("not_found", "No such file.")
    problem = files.check_link(
        tenant.slug,
        tenant.id,
        key,
        request.query_params.get("expires", ""),
        request.query_params.get("sig", ""),
    )
    if problem == "link_expired":
        return error_response(problem, "This link has expired; ask for a new one.")
    if problem is not None:
        return error_response(problem, "This link is not valid.")
    if not await asyncio.to_thread(path.is_file):
        return error_response("not_found", "No such file.")
    media_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    left = max(0, int(request.query_params["expires"]) - int(time.time()))
    return FileResponse(
        path,
        media_type=media_type,
        headers={
            "Cache-Control": f"private, max-age={left}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        },
    )
