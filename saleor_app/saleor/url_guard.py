"""Which hosts the app may call as "a Saleor": never a private, loopback, link-local, metadata or otherwise
non-public address, unless ALLOW_PRIVATE_SALEOR_URLS=true (a Saleor on localhost or in docker, for development).

Anyone can POST to /api/register with a Saleor-Api-Url of their choosing, and the app then calls that URL with the
token from the request: without this guard, `http://169.254.169.254/…`, `http://127.0.0.1:…`, `http://[::ffff:…]`,
`http://0x7f000001/` or a name resolving to one of them would make the app a proxy into its own network. So:

- at register, before any outbound call, the URL must be plain http(s) (no user info) and EVERY address its host
  resolves to (getaddrinfo: numeric forms such as `2130706433` or `127.1` resolve like the system would connect)
  must be public; a refused host never receives the token;
- at every connection the Saleor client opens, the host is resolved and checked again, and the connection goes to
  the address that was checked: a name that resolves elsewhere later (DNS rebinding) is refused just the same.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpcore

Resolver = Callable[[str, int], Awaitable[list[str]]]

ALLOW_HINT = "set ALLOW_PRIVATE_SALEOR_URLS=true only for a Saleor on localhost or in docker (development)"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
RESOLVE_TIMEOUT_SECONDS = 10.0


class UnsafeSaleorUrl(Exception):
    """The URL is not one the app may call; `message` says why in words an installer understands."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PrivateAddressRefused(httpcore.ConnectError):
    """Raised from a connection attempt to a non-public address (httpx reports it as a ConnectError)."""


async def system_resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (::ffff:a.b.c.d, 6to4, Teredo, NAT64, ::a.b.c.d), which a host reaches."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or (int(address) >> 32 == 0 and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def non_public_reason(address: str) -> str | None:
    """Why `address` (an IP literal) is not a public Internet address, or None when it is."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = non_public_reason(str(embedded))
            return f"{inner} (as {ip})" if inner else None
    for check, reason in (
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address (cloud metadata lives there)"),
        (ip.is_private, "a private address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    ):
        if check:
            return reason
    return None


def plain_http_url(url: str) -> tuple[str, int]:
    """(host, port) of an absolute http(s) URL without user info; UnsafeSaleorUrl for anything else."""
    if not url.isascii() or any(char.isspace() or not char.isprintable() or char == "\\" for char in url):
        raise UnsafeSaleorUrl("Saleor-Api-Url must be a plain http(s) URL.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeSaleorUrl("Saleor-Api-Url has an invalid port.") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeSaleorUrl("Saleor-Api-Url must be an http(s) URL.")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise UnsafeSaleorUrl("Saleor-Api-Url must not carry user info (user@host).")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeSaleorUrl("Saleor-Api-Url has no host.")
    return host, port or (443 if parts.scheme == "https" else 80)


class SaleorUrlGuard:
    def __init__(self, *, allow_private: bool, resolve: Resolver = system_resolve) -> None:
        self.allow_private = allow_private
        self._resolve = resolve

    async def check(self, url: str) -> None:
        """Raise UnsafeSaleorUrl unless the app may call `url` (form always; addresses unless allowed)."""
        host, port = plain_http_url(url)
        if not self.allow_private:
            await self.public_addresses(host, port, error=UnsafeSaleorUrl)

    async def public_addresses(self, host: str, port: int, *, error: type[Exception] = PrivateAddressRefused) -> list[str]:
        """The addresses `host` resolves to, all of them checked; raises `error` if any is not public."""
        name = host.lower().rstrip(".")
        if name in _LOCAL_NAMES or name.endswith(".localhost"):
            raise error(f"The Saleor host {host} is this machine (localhost); {ALLOW_HINT}.")
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                addresses = await self._resolve(host, port)
        except (OSError, TimeoutError):
            raise error(f"The Saleor host {host} cannot be resolved.") from None
        if not addresses:
            raise error(f"The Saleor host {host} cannot be resolved.")
        for address in addresses:
            reason = non_public_reason(address)
            if reason:
                raise error(f"The Saleor host {host} resolves to {address}, {reason}; {ALLOW_HINT}.")
        return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the guard in front: resolve, check every address, connect to a checked one
    (TLS still verifies the certificate for the URL's host name: httpcore passes it as the server name)."""

    def __init__(self, guard: SaleorUrlGuard, backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._guard = guard
        self._backend = backend or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.public_addresses(host, port)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                       socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        raise PrivateAddressRefused("Saleor is never reached over a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)
