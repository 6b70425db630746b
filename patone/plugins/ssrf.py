"""Server-side request forgery guard for URLs that tenants supply (webhooks, plugin endpoints).

A URL whose host resolves to a loopback, private, link-local, multicast or reserved address is
refused unless the operator allows private targets (ALLOW_PRIVATE_URLS; tests allow them for the
local fakes).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from patone.core.errors import UserError


def check_url(url: str, *, field: str = "url", allow_private: bool = False) -> str:
    """Return the URL if it may be called, else a UserError naming the field."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError("invalid", "must be an http(s) URL with a host", field)
    if allow_private:
        return url
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        raise UserError("unresolvable", f"{parts.hostname} does not resolve", field) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_multicast
            or address.is_reserved
            or address.is_unspecified
        ):
            raise UserError(
                "forbidden_address",
                f"{parts.hostname} points at a private or local address ({address})",
                field,
            )
    return url
