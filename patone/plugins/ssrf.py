"""Server-side request forgery guard for the network targets tenants supply (webhook URLs, plugin
settings that name a URL or a host).

Every address a target's name resolves to must be globally routable: loopback, private,
carrier-grade NAT (100.64.0.0/10, where some clouds keep their metadata service), link-local,
multicast, reserved and unspecified addresses are refused, and so is a name with *any* such
address among its answers. An IPv4 address carried inside an IPv6 one (IPv4-mapped,
IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo) is unwrapped and checked too:
`ipaddress` calls `64:ff9b::7f00:1` global although it reaches 127.0.0.1. The operator may allow
private targets (ALLOW_PRIVATE_URLS; tests allow them for the local fakes).

A check is only good for the address it checked: DNS can answer differently a moment later
(rebinding). So a connection is made to the address that was checked (`pin_url`, `pinned`), never
to the name resolved again.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from patone.core.runtime.errors import UserError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix (RFC 6052)
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible addresses


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or (address in _COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address (the server's is Teredo's own)
    return None


def _plain_refusal(address: IPAddress) -> str | None:
    """Why this address, as it stands, is not one to connect to."""
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address in _SHARED:
        return "carrier-grade NAT"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not globally routable"
    return None


def refusal(address: IPAddress) -> str | None:
    """Why the server may not connect to `address` (e.g. "loopback", "carrier-grade NAT in
    64:ff9b::6464:64c8"), or None when it is globally routable, wrapped and unwrapped."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_unspecified or address.is_loopback:
            return _plain_refusal(address)
        inner = embedded_ipv4(address)
        if inner is not None:
            why = _plain_refusal(inner)
            if why is not None:
                return f"{why}: {inner} inside {address}"
            if address.ipv4_mapped is not None or address in _NAT64:
                return None  # only a way of writing the IPv4 address just checked
    return _plain_refusal(address)


def _resolve(host: str, port: int, field: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise UserError("unresolvable", f"{host} does not resolve", field) from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def addresses(host: str, port: int, *, field: str, allow_private: bool) -> list[str]:
    """Every address `host` resolves to, each one checked unless the operator allows private
    targets (blocking: DNS). Raises UserError `unresolvable` or `forbidden_address` on `field`."""
    found = _resolve(host, port, field)
    if not allow_private:
        for text in found:
            why = refusal(ipaddress.ip_address(text.split("%", 1)[0]))
            if why is not None:
                raise UserError(
                    "forbidden_address",
                    f"{host} points at a private or local address ({text}, {why})",
                    field,
                )
    return found


def pinned(host: str, port: int, *, field: str, allow_private: bool) -> str:
    """The address to connect to for `host`: resolved once, every answer checked, the first
    one kept, so the connection goes where the check looked (blocking: DNS)."""
    return addresses(host, port, field=field, allow_private=allow_private)[0]


def check_host(host: str, port: int, *, field: str, allow_private: bool) -> str:
    """Return `host` (a name or an IP address, no scheme or port) if it may be connected to."""
    bare = host.strip("[]")
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        if not host or any(c in host for c in "/:@?#[] \t\r\n\\"):
            raise UserError("invalid", "must be a host name or an IP address", field) from None
    if not allow_private:
        addresses(bare, port, field=field, allow_private=False)
    return host


def check_url(url: str, *, field: str = "url", allow_private: bool = False) -> str:
    """Return the URL if it may be called, else a UserError naming the field."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UserError("invalid", "must be an http(s) URL with a host", field) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError("invalid", "must be an http(s) URL with a host", field)
    if not allow_private:
        addresses(parts.hostname, port, field=field, allow_private=False)
    return url


@dataclass(frozen=True)
class Target:
    """Where a request goes: the URL with its host replaced by the address that was checked
    (so DNS cannot change between the check and the connection), the Host header and the TLS
    server name of the original (httpx: `headers=`, `extensions=`)."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, Any]


def pin_url(url: str, *, field: str = "url", allow_private: bool) -> Target:
    """Check `url` and pin it to one checked address (blocking: DNS).

    Raises the guard's UserError (`forbidden_address`, `unresolvable`, `invalid`)."""
    check_url(url, field=field, allow_private=True)  # its form; the addresses are checked here
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    address = pinned(parsed.host, port, field=field, allow_private=allow_private)
    literal = address.split("%", 1)[0]
    pinned_url = parsed.copy_with(host=literal)
    extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
    return Target(str(pinned_url), {"host": parsed.netloc.decode("ascii")}, extensions)


def allow_private_targets() -> bool:
    """Whether the operator lets tenants name private targets (ALLOW_PRIVATE_URLS), for plugins
    checking their targets at connect time; no plugin runtime set up means no."""
    from patone.plugins import config  # the runtime holds the setting; config imports this module

    try:
        return config.get_runtime().allow_private_urls
    except RuntimeError:
        return False
