"""Where webhook deliveries may go: anywhere but the host's link-local network.

Link-local addresses are where clouds answer with their metadata service (169.254.169.254,
fe80::/10). A webhook pointed there would post signed events to it and store its answers in the
outbox log for whoever reads it. Loopback stays allowed: a receiver on the same host is a normal
set-up. A name is checked as written when the webhook is registered, and as resolved at each
delivery, since a name can be pointed at such an address later.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.request
from typing import Any

# Names a cloud's metadata service answers under; its link-local address is refused as such.
METADATA_HOSTS = frozenset({"metadata.google.internal"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ForbiddenTarget(ValueError):
    """A delivery that would reach a link-local or metadata address."""


def _address(host: str) -> IPAddress | None:
    """The address `host` writes out, in any form a resolver reads (`2852039166` and
    `0xa9.0xfe.0xa9.0xfe` are 169.254.169.254; `::ffff:169.254.169.254` too), or None for a
    name."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # fe80::1%eth0: the zone aside
    except ValueError:
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return mapped or address


def reaches_metadata(host: str) -> bool:
    """Whether `host`, as written, is a link-local address or a metadata service's name."""
    host = host.rstrip(".").lower()
    address = _address(host)
    return host in METADATA_HOSTS or (address is not None and address.is_link_local)


def check_resolved(host: str, port: int | None) -> None:
    """Raise ForbiddenTarget when `host` is, or now resolves to, a link-local address."""
    if reaches_metadata(host):
        raise ForbiddenTarget(f"{host} is a link-local or cloud metadata address")
    try:
        resolved = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return  # unresolvable: the delivery fails on its own, with the resolver's error
    for *_, sockaddr in resolved:
        if reaches_metadata(str(sockaddr[0])):
            raise ForbiddenTarget(f"{host} resolves to the link-local address {sockaddr[0]}")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A receiver's redirect is a failed delivery, not a new target: following it could lead
    # past the check above (and would turn the POST into a GET without its body).
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


OPENER = urllib.request.build_opener(_NoRedirects)
