"""File storage: boto3 against a real S3 wire API (a moto server), the local disk as the default,
and two companies sharing one bucket without ever reaching each other's files."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from patone.app import create_app
from patone.core.domain import files
from patone.core.runtime.errors import UserError, ValidationFailed
from patone.platform import provisioning
from patone.plugins import config as plugins
from patone.plugins.builtin import storage_local, storage_s3
from patone.plugins.storage import InvalidFileKey, tenant_key
from patone.plugins.types import StoredFile
from patone.settings import load_settings
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.fakes import FakeDns
from tests.support import plugin_runtime, purge_and_take_slug
from tests.test_embedded import _free_port

ADMIN = actor_for("admin")
KEY_ID = "AKIAEXAMPLEKEY000001"
SECRET = "a-very-secret-access-key"
BAD_KEYS = ["../escape.jpg", "photos/../../x", "/etc/passwd", "a\x00b", "a\nb", "a//b", "a/", ""]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto server speaking S3's REST API on a free local port."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"patone-{uuid.uuid4().hex[:12]}"
    _boto(s3_endpoint).create_bucket(Bucket=name)
    return name


def _boto(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )


def _objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = _boto(endpoint)
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {
        item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        for item in listed
    }


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """The installation's local files, in a temporary folder."""
    root = tmp_path / "files"
    storage_local.configure(storage_local.LocalFiles(root, "installation-secret"))
    yield root
    storage_local.configure(None)


@pytest.fixture
def runtime(disk: Path) -> Iterator[None]:
    with plugin_runtime():
        yield


def _stored_on_disk(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def _enable_s3(tenant: TenantInfo, endpoint: str, bucket: str, **extra: Any) -> Any:
    return await plugins.configure_plugin(
        tenant,
        ADMIN,
        "storage-s3",
        enabled=True,
        config={
            "bucket": bucket,
            "region": "us-east-1",
            "access_key_id": KEY_ID,
            "secret_access_key": SECRET,
            "endpoint_url": endpoint,
            "prefix": "patone",
            **extra,
        },
    )


async def test_two_companies_sharing_a_bucket_never_see_each_others_files(
    two_tenants: tuple[TenantInfo, TenantInfo],
    s3_endpoint: str,
    bucket: str,
    disk: Path,
    runtime: None,
) -> None:
    acme, bolt = two_tenants
    state = await _enable_s3(acme, s3_endpoint, bucket)
    await _enable_s3(bolt, s3_endpoint, bucket)
    assert state.config["secret_access_key"] == "********"
    [listed] = [s for s in await plugins.plugin_states(acme, ADMIN) if s.name == "storage-s3"]
    assert listed.enabled and listed.config["secret_access_key"] == "********"
    assert SECRET not in repr(listed)

    key = "requests/1042/photo 1.jpg"
    stored = await files.store_file(acme, key, b"acme's tow truck", "image/jpeg")
    await files.store_file(bolt, key, b"bolt's flat tyre", "image/jpeg")
    assert stored == StoredFile(
        key=key,
        size=16,
        content_type="image/jpeg",
        sha256=stored.sha256,
        location=f"s3://{bucket}/patone/{acme.slug}/{key}",
        provider="storage-s3",
        etag=stored.etag,
    )
    assert len(stored.sha256) == 64 and stored.etag
    assert _objects(s3_endpoint, bucket) == {
        f"patone/{acme.slug}/{key}": b"acme's tow truck",
        f"patone/{bolt.slug}/{key}": b"bolt's flat tyre",
    }
    assert _stored_on_disk(disk) == []  # S3 answered first: nothing on the local disk

    assert await files.read_file(acme, key) == b"acme's tow truck"
    assert await files.read_file(bolt, key) == b"bolt's flat tyre"

    url = await files.file_url(acme, key, expires_in=300)
    assert url.startswith(f"{s3_endpoint}/{bucket}/patone/{acme.slug}/requests/1042/photo%201.jpg")
    assert "X-Amz-Expires=300" in url
    async with httpx.AsyncClient() as browser:
        fetched = await browser.get(url)
    assert fetched.status_code == 200 and fetched.content == b"acme's tow truck"
    assert fetched.headers["content-type"] == "image/jpeg"

    await files.delete_file(acme, key)
    with pytest.raises(UserError) as missing:
        await files.read_file(acme, key)
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    with pytest.raises(UserError):
        await files.file_url(acme, key)
    assert await files.read_file(bolt, key) == b"bolt's flat tyre"
    assert list(_objects(s3_endpoint, bucket)) == [f"patone/{bolt.slug}/{key}"]
    await files.delete_file(acme, key)  # deleting again is no error


async def test_a_company_that_did_not_turn_on_s3_keeps_its_files_on_the_local_disk(
    two_tenants: tuple[TenantInfo, TenantInfo],
    s3_endpoint: str,
    bucket: str,
    disk: Path,
    runtime: None,
) -> None:
    acme, bolt = two_tenants
    await _enable_s3(acme, s3_endpoint, bucket, prefix="")
    in_s3 = await files.store_file(acme, "signature.png", b"acme", "image/png")
    on_disk = await files.store_file(bolt, "signature.png", b"bolt", "image/png")
    assert in_s3.provider == "storage-s3" and in_s3.location.endswith(f"/{acme.slug}/signature.png")
    assert on_disk.provider == "storage-local"
    assert on_disk.location == (disk / bolt.slug / "signature.png").as_uri()
    assert list(_objects(s3_endpoint, bucket)) == [f"{acme.slug}/signature.png"]
    assert _stored_on_disk(disk) == [f"{bolt.slug}/signature.png"]
    assert await files.read_file(bolt, "signature.png") == b"bolt"
    assert (await files.file_url(bolt, "signature.png")).startswith("/files/signature.png?")
    await files.delete_file(bolt, "signature.png")
    assert _stored_on_disk(disk) == []
    assert await files.read_file(acme, "signature.png") == b"acme"


@pytest.mark.parametrize("key", BAD_KEYS)
def test_keys_that_could_escape_the_companys_folder_are_refused(key: str) -> None:
    with pytest.raises(InvalidFileKey):
        tenant_key("acme", key)


async def test_bad_keys_are_refused_with_a_clear_error_and_nothing_is_written(
    two_tenants: tuple[TenantInfo, TenantInfo],
    s3_endpoint: str,
    bucket: str,
    disk: Path,
    runtime: None,
) -> None:
    acme, bolt = two_tenants
    await _enable_s3(acme, s3_endpoint, bucket)
    for key in BAD_KEYS:
        with pytest.raises(UserError) as refused:
            await files.store_file(acme, key, b"x")
        assert (refused.value.code, refused.value.field) == ("invalid_key", "key")
    assert "'..'" in str((await _refusal(files.read_file(bolt, "../acme/x"))).message)
    # A plugin called directly refuses too (third-party callers do not go through files.py).
    results = await plugins.call_all(
        acme, "store_file", key="../../bolt/x", content=b"x", content_type="text/plain"
    )
    assert {r.plugin: (r.error or "").split(":")[0] for r in results} == {
        "storage-s3": "InvalidFileKey",
        "storage-local": "InvalidFileKey",
    }
    assert _objects(s3_endpoint, bucket) == {} and _stored_on_disk(disk) == []


async def _refusal(call: Any) -> UserError:
    with pytest.raises(UserError) as caught:
        await call
    return caught.value


async def test_a_missing_bucket_is_a_clear_error_and_the_local_disk_takes_the_file(
    two_tenants: tuple[TenantInfo, TenantInfo],
    s3_endpoint: str,
    bucket: str,
    disk: Path,
    runtime: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    acme, bolt = two_tenants
    await _enable_s3(acme, s3_endpoint, "no-such-bucket")
    await _enable_s3(bolt, s3_endpoint, bucket)
    caplog.set_level(logging.WARNING, logger="patone.plugins.manager")

    stored = await files.store_file(acme, "report.pdf", b"%PDF", "application/pdf")
    assert stored.provider == "storage-local"  # the file is not lost
    [warning] = [r for r in caplog.records if getattr(r, "plugin", None) == "storage-s3"]
    assert warning.getMessage() == (
        "plugin storage-s3 failed in store_file: StorageError: bucket 'no-such-bucket' "
        f"does not exist at {s3_endpoint}"
    )
    assert warning.tenant == acme.slug  # type: ignore[attr-defined]
    # Reading, linking and deleting find it on the disk although S3 still fails.
    assert await files.read_file(acme, "report.pdf") == b"%PDF"
    assert (await files.file_url(acme, "report.pdf")).startswith("/files/report.pdf?")
    with pytest.raises(UserError) as undeletable:
        await files.delete_file(acme, "report.pdf")
    assert undeletable.value.status == 503 and "storage-s3" in undeletable.value.message
    assert _stored_on_disk(disk) == []  # the disk's copy went; the caller is told to retry S3

    # Bolt, on a working bucket, is untouched by Acme's broken settings.
    assert (await files.store_file(bolt, "report.pdf", b"bolt")).provider == "storage-s3"

    # A company that wants its files only in its bucket turns the disk off: now it fails loudly.
    await plugins.configure_plugin(acme, ADMIN, "storage-local", enabled=False)
    refused = await _refusal(files.store_file(acme, "other.pdf", b"x"))
    assert (refused.status, refused.code) == (503, "storage_unavailable")
    assert _stored_on_disk(disk) == []


async def test_an_unreachable_s3_endpoint_is_named_in_the_error(
    two_tenants: tuple[TenantInfo, TenantInfo], disk: Path, runtime: None
) -> None:
    acme, _ = two_tenants
    nobody = f"http://127.0.0.1:{_free_port()}"
    await _enable_s3(acme, nobody, "some-bucket")
    results = await plugins.call_all(
        acme, "store_file", key="a.txt", content=b"x", content_type="text/plain"
    )
    by_plugin = {r.plugin: r for r in results}
    assert (by_plugin["storage-s3"].error or "").startswith(
        f"StorageError: cannot reach S3 at {nobody} to store a file"
    )
    assert by_plugin["storage-local"].value.provider == "storage-local"


async def test_s3_settings_are_checked_field_by_field_and_endpoints_against_ssrf(
    two_tenants: tuple[TenantInfo, TenantInfo], disk: Path, runtime: None
) -> None:
    acme, _ = two_tenants
    with pytest.raises(ValidationFailed) as caught:
        await plugins.configure_plugin(
            acme,
            ADMIN,
            "storage-s3",
            enabled=True,
            config={"bucket": "Not_A_Bucket", "access_key_id": "k", "prefix": "a/../b"},
        )
    assert {e.field for e in caught.value.errors} == {
        "config.bucket",
        "config.secret_access_key",
        "config.prefix",
    }
    plugins.get_runtime().allow_private_urls = False
    with pytest.raises(UserError) as private:
        await _enable_s3(acme, "http://127.0.0.1:9000", "some-bucket")
    assert (private.value.code, private.value.field) == ("forbidden_address", "config.endpoint_url")


async def test_encryption_at_rest_and_one_client_per_configuration(
    two_tenants: tuple[TenantInfo, TenantInfo],
    s3_endpoint: str,
    bucket: str,
    disk: Path,
    runtime: None,
) -> None:
    acme, _ = two_tenants
    await _enable_s3(acme, s3_endpoint, bucket, server_side_encryption="AES256")
    storage_s3._client_for.cache_clear()
    for n in range(5):
        await files.store_file(acme, f"photo-{n}.jpg", b"x", "image/jpeg")
    assert storage_s3._client_for.cache_info().misses == 1  # built once, reused for every call
    head = _boto(s3_endpoint).head_object(Bucket=bucket, Key=f"patone/{acme.slug}/photo-0.jpg")
    assert head["ServerSideEncryption"] == "AES256"


# --- the local disk and its signed links ---------------------------------------------------------


def test_local_files_are_written_atomically_and_tidied_on_delete(tmp_path: Path) -> None:
    local = storage_local.LocalFiles(tmp_path, "secret")
    local.store("acme", "jobs/7/a.jpg", b"first", "image/jpeg")
    local.store("acme", "jobs/7/a.jpg", b"second", "image/jpeg")  # replaces
    assert local.read("acme", "jobs/7/a.jpg") == b"second"
    assert local.read("bolt", "jobs/7/a.jpg") is None
    assert _stored_on_disk(tmp_path) == ["acme/jobs/7/a.jpg"]  # no temporary files left
    assert local.delete("acme", "jobs/7/a.jpg") and not local.delete("acme", "jobs/7/a.jpg")
    assert list(tmp_path.rglob("*")) == [tmp_path / "acme"]  # empty folders removed
    with pytest.raises(InvalidFileKey):
        local.store("acme", "../bolt/a.jpg", b"x", "image/jpeg")


async def test_a_local_file_link_works_for_its_company_until_it_expires(
    two_tenants: tuple[TenantInfo, TenantInfo], disk: Path, tmp_path: Path
) -> None:
    acme, bolt = two_tenants
    local = storage_local.installation()
    local.store(acme.slug, "jobs/7/scene.jpg", b"\xff\xd8jpeg", "image/jpeg")
    local.store(acme.slug, "evil.html", b"<script>alert(1)</script>", "text/html")
    app = create_app(load_settings(data_dir=tmp_path, secret_key="not-the-files-secret"))

    async def get(tenant: TenantInfo, url: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        base = f"http://{tenant.slug}.localhost"
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            return await client.get(url)

    link = local.url(acme.slug, str(acme.id), "jobs/7/scene.jpg", 60)
    served = await get(acme, link)
    assert served.status_code == 200 and served.content == b"\xff\xd8jpeg"
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["x-content-type-options"] == "nosniff"

    page = await get(acme, local.url(acme.slug, str(acme.id), "evil.html", 60))
    assert "sandbox" in page.headers["content-security-policy"]

    # The same link on another company's address, tampered with, or expired: refused.
    other = await get(bolt, link)
    assert (other.status_code, other.json()["error"]["code"]) == (403, "bad_signature")
    tampered = await get(acme, link.replace("scene.jpg", "evil.html"))
    assert tampered.status_code == 403
    unsigned = await get(acme, "/files/jobs/7/scene.jpg")
    assert unsigned.status_code == 403
    expired = await get(
        acme, local.url(acme.slug, str(acme.id), "jobs/7/scene.jpg", 60, now=time.time() - 120)
    )
    assert (expired.status_code, expired.json()["error"]["code"]) == (403, "link_expired")
    gone = await get(acme, local.url(acme.slug, str(acme.id), "jobs/7/nothing.jpg", 60))
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "not_found")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        platform = await client.get(link)
    assert (platform.status_code, platform.json()["error"]["code"]) == (404, "tenant_required")


async def test_a_purged_companys_file_link_is_refused_by_the_company_that_takes_its_slug(
    two_tenants: tuple[TenantInfo, TenantInfo], disk: Path, tmp_path: Path, runtime: None
) -> None:
    lima, other = two_tenants
    await files.store_file(lima, "jobs/1/scene.jpg", b"old lima's photo", "image/jpeg")
    await files.store_file(other, "jobs/1/scene.jpg", b"other's photo", "image/jpeg")
    old_link = await files.file_url(lima, "jobs/1/scene.jpg", 600)
    app = create_app(load_settings(data_dir=tmp_path, secret_key="not-the-files-secret"))

    async def get(tenant: TenantInfo, url: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url=f"http://{tenant.slug}.localhost"
        ) as client:
            return await client.get(url)

    assert (await get(lima, old_link)).content == b"old lima's photo"
    new = await purge_and_take_slug(lima)
    assert _stored_on_disk(disk) == [f"{other.slug}/jobs/1/scene.jpg"]  # purge took Lima's
    await files.store_file(new, "jobs/1/scene.jpg", b"new lima's photo", "image/jpeg")
    refused = await get(new, old_link)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "bad_signature")
    mine = await get(new, await files.file_url(new, "jobs/1/scene.jpg", 600))
    assert mine.content == b"new lima's photo"


async def test_an_s3_endpoint_that_turns_private_after_saving_is_not_called(
    two_tenants: tuple[TenantInfo, TenantInfo],
    s3_endpoint: str,
    bucket: str,
    disk: Path,
    runtime: None,
    dns: FakeDns,
) -> None:
    acme, bolt = two_tenants
    port = s3_endpoint.rsplit(":", 1)[1]
    plugins.get_runtime().allow_private_urls = False
    dns.answer("s3.acme.example", "93.184.216.34", "127.0.0.1")  # public when saved
    await _enable_s3(acme, f"http://s3.acme.example:{port}", bucket)
    results = await plugins.call_all(
        acme, "store_file", key="photos/1.jpg", content=b"jpeg", content_type="image/jpeg"
    )
    error = {r.plugin: r for r in results}["storage-s3"].error or ""
    assert error.startswith("StorageError: S3 not called:") and "(127.0.0.1, loopback)" in error
    assert _objects(s3_endpoint, bucket) == {}
    assert "storage-s3" not in await plugins.enabled_plugins(bolt)


async def test_purging_a_company_removes_its_files_from_the_bucket_and_the_disk(
    two_tenants: tuple[TenantInfo, TenantInfo],
    s3_endpoint: str,
    bucket: str,
    disk: Path,
    runtime: None,
) -> None:
    gone, stays = two_tenants
    for tenant in (gone, stays):
        await _enable_s3(tenant, s3_endpoint, bucket)
        for n in range(3):
            await files.store_file(tenant, f"requests/{n}/photo.jpg", b"x", "image/jpeg")
    storage_local.installation().store(gone.slug, "old/report.pdf", b"pdf", "application/pdf")
    await provisioning.delete_tenant(gone.slug)
    await provisioning.purge_tenant(gone.slug, force=True)
    assert sorted(_objects(s3_endpoint, bucket)) == [
        f"patone/{stays.slug}/requests/{n}/photo.jpg" for n in range(3)
    ]
    assert _stored_on_disk(disk) == []
    assert not (disk / gone.slug).exists()
