"""Fetch an image from a visitor's URL without letting them reach our own network (SSRF).

Every hop resolves the host, refuses the request if ANY resolved address is not public, then
connects to the checked address itself (so DNS cannot answer differently a second time), and
follows redirects by hand, checking each new host the same way.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from .errors import AppError

# Cloud metadata endpoints that are not all covered by the private/link-local ranges.
_METADATA_ADDRESSES = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")}
_REDIRECTS = {301, 302, 303, 307, 308}


class FetchError(AppError):
    """The URL could not be fetched (bad scheme, unreachable, not 200, too slow)."""

    status = 422
    code = "url_fetch_failed"


class AddressNotAllowed(FetchError):
    """The URL points at a loopback, private, link-local, multicast, reserved or metadata address."""

    code = "url_not_allowed"


@dataclass(frozen=True)
class FetchPolicy:
    """Limits for one fetch."""

    timeout_s: float = 5.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 3
    allow_loopback: bool = False  # tests serve their images from 127.0.0.1


def check_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool = False) -> None:
    """Raise AddressNotAllowed unless the address is a public unicast one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if allow_loopback and address.is_loopback:
        return
    if address in _METADATA_ADDRESSES or not address.is_global or address.is_multicast:
        raise AddressNotAllowed(f"URLs that point at {address} (a non-public address) are not allowed")


def resolve_checked(host: str, port: int, policy: FetchPolicy) -> str:
    """Resolve a host and return one address to connect to, after checking every address it has."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise FetchError(f"the host {host!r} could not be resolved") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise FetchError(f"the host {host!r} has no address")
    for address in addresses:
        check_address(address, policy.allow_loopback)
    return str(addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to an already checked IP, with the original host in the Host header."""

    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self) -> None:
        """Connect to the pinned IP instead of resolving the host again."""
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an already checked IP; the certificate is still verified against the host name."""

    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self) -> None:
        """Connect to the pinned IP, then do TLS with SNI and verification for the host name."""
        raw = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def _read_capped(response: http.client.HTTPResponse, policy: FetchPolicy, deadline: float) -> bytes:
    """Read the body, refusing it as soon as it passes the byte cap or the deadline."""
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > policy.max_bytes:
        raise FetchError(f"the image at that URL is larger than {policy.max_bytes:,} bytes",
                         status=413, code="payload_too_large")
    chunks, total = [], 0
    while chunk := response.read(64 * 1024):
        total += len(chunk)
        if total > policy.max_bytes:
            raise FetchError(f"the image at that URL is larger than {policy.max_bytes:,} bytes",
                             status=413, code="payload_too_large")
        if time.monotonic() > deadline:
            raise FetchError("the image URL took too long to answer")
        chunks.append(chunk)
    return b"".join(chunks)


def fetch_image_bytes(url: str, policy: FetchPolicy) -> bytes:
    """GET a public http(s) URL with a size cap, a deadline and re-checked manual redirects."""
    deadline = time.monotonic() + policy.timeout_s
    for _hop in range(policy.max_redirects + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError("only http:// and https:// image URLs are accepted", code="invalid_url")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise FetchError("the URL has an invalid port", code="invalid_url") from None
        ip = resolve_checked(parts.hostname, port, policy)
        connection_type = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        connection = connection_type(parts.hostname, port, ip, timeout=max(0.1, deadline - time.monotonic()))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("GET", path, headers={"User-Agent": "emotion-lens/1 (image fetch)",
                                                     "Accept": "image/jpeg, image/png, image/webp"})
            response = connection.getresponse()
            if response.status in _REDIRECTS and response.getheader("Location"):
                url = urljoin(url, response.getheader("Location"))
                continue
            if response.status != 200:
                raise FetchError(f"the image URL answered HTTP {response.status}")
            return _read_capped(response, policy, deadline)
        except (OSError, http.client.HTTPException) as error:
            raise FetchError(f"the image URL could not be fetched ({type(error).__name__})") from None
        finally:
            connection.close()
    raise FetchError(f"the image URL redirected more than {policy.max_redirects} times")
