"""A local push service that does what browsers' push services do, for the Web Push tests.

It listens on https (a certificate made here for `localhost`, trusted through
REQUESTS_CA_BUNDLE), hands out subscriptions as `pushManager.subscribe` would (an endpoint, and
the device's own P-256 key and auth secret, which never leave the "device"), and for each push:
checks the VAPID `Authorization: vapid t=<JWT>, k=<key>` header (ES256 signature with the key
the device subscribed with, `aud` = this origin, `exp` in the future and at most 24 h away,
a `sub`), requires `TTL` and `Content-Encoding: aes128gcm`, and decrypts the body with the
device's private key (RFC 8291). Refusals answer as real services do (401/403/400), so a wrong
key or a plaintext body fails the test through the plugin's error, not an assertion here.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import secrets
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import http_ece
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from patone.plugins import config as plugins
from patone.plugins.manager import PluginManager
from patone.plugins.secrets import SecretBox


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Device:
    """One browser's subscription: made with a company's application server key."""

    token: str
    server_key: str
    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))
    answer: int = 201  # what the service answers a push to it (410: the user unsubscribed)

    @property
    def p256dh(self) -> str:
        return b64url(
            self.private_key.public_key().public_bytes(
                Encoding.X962, PublicFormat.UncompressedPoint
            )
        )


@dataclass
class Received:
    device: str
    payload: dict[str, Any]
    headers: dict[str, str]
    claims: dict[str, Any]


class PushService:
    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.devices: dict[str, Device] = {}
        self.received: list[Received] = []
        self.refusals: list[str] = []
        server.expect_request(re.compile(r"^/push/[\w-]+$"), method="POST").respond_with_handler(
            self._push
        )

    def subscribe(self, server_key: str, answer: int = 201) -> dict[str, Any]:
        """What a page gets from `pushManager.subscribe({applicationServerKey})`, as JSON."""
        device = Device(token=secrets.token_urlsafe(16), server_key=server_key, answer=answer)
        self.devices[device.token] = device
        return {
            "endpoint": self.server.url_for(f"/push/{device.token}"),
            "keys": {"p256dh": device.p256dh, "auth": b64url(device.auth)},
        }

    def device(self, endpoint: str) -> Device:
        return self.devices[endpoint.rsplit("/", 1)[1]]

    def _refuse(self, status: int, reason: str) -> Response:
        self.refusals.append(reason)
        body = json.dumps({"code": status, "errno": 109, "error": reason, "message": reason})
        return Response(body, status=status, content_type="application/json")

    def _push(self, request: Request) -> Response:
        device = self.devices.get(request.path.rsplit("/", 1)[1])
        if device is None:
            return self._refuse(404, "no such subscription")
        if 300 <= device.answer < 400:  # a hostile endpoint pointing somewhere inside
            return Response(status=device.answer, headers={"Location": "http://169.254.169.254/"})
        if device.answer != 201:
            return self._refuse(device.answer, f"answering {device.answer}")
        found = re.fullmatch(
            r"vapid t=([\w-]+\.[\w-]+\.[\w-]+),\s*k=([\w-]+)",
            request.headers.get("Authorization", ""),
        )
        if found is None:
            return self._refuse(401, "missing or malformed VAPID authorization")
        token, key = found.groups()
        if unb64url(key) != unb64url(device.server_key):
            return self._refuse(403, "key does not match the subscription's")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        origin = request.host_url.rstrip("/")
        try:
            claims = jwt.decode(
                token,
                public,
                algorithms=["ES256"],
                audience=origin,
                options={"require": ["aud", "exp", "sub"]},
            )
        except jwt.InvalidTokenError as error:
            return self._refuse(403, f"bad VAPID token: {error}")
        if claims["exp"] > time.time() + 24 * 3600:
            return self._refuse(403, "VAPID token lives longer than 24 hours")
        if "TTL" not in request.headers:
            return self._refuse(400, "missing TTL header")
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return self._refuse(400, "payload must be aes128gcm")
        plaintext = http_ece.decrypt(
            request.get_data(),
            private_key=device.private_key,
            auth_secret=device.auth,
            version="aes128gcm",
        )
        self.received.append(
            Received(
                device=device.token,
                payload=json.loads(plaintext),
                headers=dict(request.headers),
                claims=claims,
            )
        )
        location = self.server.url_for(f"/m/{secrets.token_urlsafe(8)}")
        return Response(status=201, headers={"Location": location})


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "push.crt", directory / "push.key"
    cert_path.write_bytes(certificate.public_bytes(Encoding.PEM))
    key_path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="session")
def push_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    cert_path, key_path = _certificate(tmp_path_factory.mktemp("push-tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return cert_path, context


@pytest.fixture
def push_service(
    push_tls: tuple[Path, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch
) -> Iterator[PushService]:
    cert_path, context = push_tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_path))
    server = HTTPServer(host="localhost", port=0, ssl_context=context)
    server.start()
    try:
        yield PushService(server)
    finally:
        server.clear()
        server.stop()


@pytest.fixture
def push_runtime() -> Iterator[plugins.PluginRuntime]:
    """The installed plugins (push-webpush among them); private URLs allowed for the fake."""
    manager = PluginManager(load_entry_points=True, timeout=5)
    runtime = plugins.PluginRuntime(
        manager=manager, box=SecretBox("push-test-key"), allow_private_urls=True
    )
    plugins.set_runtime(runtime)
    yield runtime
    plugins.set_runtime(None)
    manager.close()
