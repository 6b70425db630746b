"""The server-side request forgery guard: which addresses a tenant's target may reach."""

from __future__ import annotations

import pytest

from patone.core.runtime.errors import UserError
from patone.plugins import ssrf
from tests.fakes import FakeDns

# Addresses the server must never connect to for a tenant, each with the range it is in.
REFUSED = {
    "loopback": "127.0.0.1",
    "loopback, another": "127.1.2.3",
    "private 10/8": "10.0.0.5",
    "private 172.16/12": "172.16.0.1",
    "private 192.168/16": "192.168.1.1",
    "link-local (cloud metadata)": "169.254.169.254",
    "carrier-grade NAT": "100.64.0.1",
    "carrier-grade NAT (cloud metadata)": "100.100.100.200",
    "unspecified": "0.0.0.0",
    "this network 0/8": "0.1.2.3",
    "multicast": "224.0.0.1",
    "reserved 240/4": "240.0.0.1",
    "broadcast": "255.255.255.255",
    "documentation": "192.0.2.10",
    "benchmarking": "198.18.0.1",
    "IPv6 loopback": "::1",
    "IPv6 unspecified": "::",
    "IPv6 link-local": "fe80::1",
    "IPv6 unique local": "fd00::1",
    "IPv6 site-local": "fec0::1",
    "IPv6 multicast": "ff02::1",
    "IPv6 documentation": "2001:db8::1",
    "IPv4-mapped loopback": "::ffff:127.0.0.1",
    "IPv4-mapped carrier-grade NAT": "::ffff:100.100.100.200",
    "IPv4-compatible loopback": "::7f00:1",
    "NAT64 loopback": "64:ff9b::7f00:1",
    "NAT64 link-local": "64:ff9b::a9fe:a9fe",
    "NAT64 carrier-grade NAT": "64:ff9b::6464:64c8",
    "local-use NAT64": "64:ff9b:1::808:808",
    "6to4 loopback": "2002:7f00:1::1",
    "6to4 private": "2002:a00:5::1",
    "Teredo (client 127.0.0.1)": "2001:0:4136:e378:8000:63bf:80ff:fffe",
}
# Globally routable, wrapped or not.
ALLOWED = {
    "public IPv4": "93.184.216.34",
    "public IPv6": "2606:4700:4700::1111",
    "IPv4-mapped public": "::ffff:93.184.216.34",
    "NAT64 public": "64:ff9b::5db8:d822",
}


def _url(address: str) -> str:
    return f"https://[{address}]/hook" if ":" in address else f"https://{address}/hook"


@pytest.mark.parametrize("address", REFUSED.values(), ids=REFUSED.keys())
def test_addresses_outside_the_public_internet_are_refused(address: str) -> None:
    with pytest.raises(UserError) as refused:
        ssrf.check_url(_url(address), field="config.url", allow_private=False)
    assert (refused.value.code, refused.value.field) == ("forbidden_address", "config.url")
    assert address in refused.value.message
    with pytest.raises(UserError):
        ssrf.check_host(address, 25, field="config.host", allow_private=False)


@pytest.mark.parametrize("address", ALLOWED.values(), ids=ALLOWED.keys())
def test_globally_routable_addresses_pass(address: str) -> None:
    assert ssrf.check_url(_url(address), allow_private=False) == _url(address)
    assert ssrf.check_host(address, 25, field="host", allow_private=False) == address


def test_the_reason_names_the_range_and_what_an_ipv6_address_wraps() -> None:
    message = "{host} points at a private or local address ({address}, {why})"
    with pytest.raises(UserError) as refused:
        ssrf.check_url("http://100.100.100.200/latest/meta-data", allow_private=False)
    assert refused.value.message == message.format(
        host="100.100.100.200", address="100.100.100.200", why="carrier-grade NAT"
    )
    with pytest.raises(UserError) as refused:
        ssrf.check_url("http://[64:ff9b::7f00:1]/", allow_private=False)
    assert "loopback: 127.0.0.1 inside 64:ff9b::7f00:1" in refused.value.message


def test_the_operator_may_allow_private_addresses() -> None:
    for address in REFUSED.values():
        assert ssrf.check_url(_url(address), allow_private=True) == _url(address)


def test_a_name_with_any_private_address_among_its_answers_is_refused(dns: FakeDns) -> None:
    dns.answer("mixed.example", "93.184.216.34,10.0.0.5")
    dns.answer("mixed6.example", "2606:4700:4700::1111,64:ff9b::7f00:1")
    dns.answer("public.example", "93.184.216.34,2606:4700:4700::1111")
    for name in ("mixed.example", "mixed6.example"):
        with pytest.raises(UserError) as refused:
            ssrf.check_url(f"https://{name}/hook", allow_private=False)
        assert refused.value.code == "forbidden_address"
        with pytest.raises(UserError):
            ssrf.check_host(name, 587, field="host", allow_private=False)
    assert ssrf.check_host("public.example", 587, field="host", allow_private=False)


def test_a_connection_goes_to_the_address_that_was_checked(dns: FakeDns) -> None:
    dns.answer("club.example", "93.184.216.34", "10.0.0.5")  # DNS rebinding
    target = ssrf.pin_url("https://club.example:8443/hooks?x=1", allow_private=False)
    assert target.url == "https://93.184.216.34:8443/hooks?x=1"
    assert target.headers == {"host": "club.example:8443"}
    assert target.extensions == {"sni_hostname": "club.example"}  # TLS checks the real name
    assert dns.lookups["club.example"] == 1  # checked and pinned from one answer
    # The next look-up answers with a private address: refused, never connected to.
    with pytest.raises(UserError) as refused:
        ssrf.pin_url("https://club.example/hooks", allow_private=False)
    assert refused.value.code == "forbidden_address"
    assert ssrf.pinned("club.example", 25, field="host", allow_private=True) == "10.0.0.5"


def test_an_ipv6_target_is_pinned_in_brackets(dns: FakeDns) -> None:
    dns.answer("six.example", "2606:4700:4700::1111")
    target = ssrf.pin_url("http://six.example/x", allow_private=False)
    assert target.url == "http://[2606:4700:4700::1111]/x"


def test_a_host_setting_must_be_a_bare_name_or_address() -> None:
    for host in ("http://mail.example.com", "mail.example.com:25", "user@mail.example.com", ""):
        with pytest.raises(UserError) as refused:
            ssrf.check_host(host, 25, field="config.host", allow_private=True)
        assert (refused.value.code, refused.value.field) == ("invalid", "config.host")


def test_names_that_do_not_resolve_are_refused() -> None:
    with pytest.raises(UserError) as refused:
        ssrf.check_host("no-such-host.invalid", 25, field="config.host", allow_private=False)
    assert (refused.value.code, refused.value.field) == ("unresolvable", "config.host")
