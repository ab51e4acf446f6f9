"""Fetch an image from a visitor's URL without letting them reach our own network (SSRF).

Every hop resolves the host, refuses the request if ANY resolved address is not public, then
connects to the checked address itself (so DNS cannot answer differently a second time), and
follows redirects by hand, checking each new host the same way.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from .errors import AppError

# Cloud metadata endpoints that are not all covered by the private/link-local ranges.
_METADATA_ADDRESSES = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")}
_REDIRECTS = {301, 302, 303, 307, 308}
# IPv6 forms that carry an IPv4 address in their last 32 bits; a translator or tunnel would deliver the
# request to that IPv4 address, so it is checked like any other (issue 9: [64:ff9b::7f00:1] reached loopback).
_IPV4_IN_LOW_BITS = [ipaddress.ip_network(n) for n in (
    "::/96",  # IPv4-compatible (deprecated): ::127.0.0.1
    "::ffff:0:0:0/96",  # SIIT: ::ffff:0:127.0.0.1
    "64:ff9b::/96",  # NAT64 well-known prefix
)]
# NAT64 local-use prefix: the IPv4 address may sit at several places (RFC 6052) and nothing public lives there.
_NEVER_PUBLIC = [ipaddress.ip_network("64:ff9b:1::/48")]
# Characters left as they are in a path or query; everything else (spaces, non-ASCII) is percent-encoded as
# UTF-8, as browsers do, so http.client never sees a character it would refuse with an exception.
_URI_SAFE = "/?%:@!$&'()*+,;=-._~[]"


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


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address would deliver to (mapped, compatible, SIIT, NAT64, 6to4, Teredo)."""
    embedded = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    if any(address in network for network in _IPV4_IN_LOW_BITS):
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [ipv4 for ipv4 in embedded if ipv4 is not None]


def check_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool = False) -> None:
    """Raise AddressNotAllowed unless the address, and any IPv4 address inside it, is public unicast."""
    if allow_loopback and address.is_loopback:
        return
    if isinstance(address, ipaddress.IPv6Address):
        for ipv4 in _embedded_ipv4(address):
            check_address(ipv4)  # ::ffff:127.0.0.1 is 127.0.0.1; the test-only loopback allowance stops at ::1
        if address.ipv4_mapped:
            return  # Python calls all of ::ffff:0:0/96 private; only the IPv4 address inside matters
        if any(address in network for network in _NEVER_PUBLIC):
            raise AddressNotAllowed(f"URLs that point at {address} (a non-public address) are not allowed")
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


class _DeadlineReader(io.RawIOBase):
    """A socket's incoming bytes that stop at the fetch's deadline, however slowly they drip."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        """Always: this is the response side."""
        return True

    def readinto(self, buffer) -> int:
        """Receive into buffer, waiting at most until the deadline (a per-read timeout would restart per byte)."""
        self._sock.settimeout(_remaining(self._deadline))
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        """The response owns the socket once it is reading (http.client hands it over), so it closes it."""
        if not self.closed:
            self._sock.close()
        super().close()


class _DeadlineSocket:
    """The connected socket as http.client sees it: its responses are read through a _DeadlineReader."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline
        self._reader: _DeadlineReader | None = None

    def makefile(self, mode: str) -> io.BufferedReader:
        """http.client reads the status line, headers and body from this file."""
        self._reader = _DeadlineReader(self._sock, self._deadline)
        return io.BufferedReader(self._reader)

    def close(self) -> None:
        """Close, unless a response is still reading; stdlib sockets count their files the same way."""
        if self._reader is None or self._reader.closed:
            self._sock.close()

    def __getattr__(self, name: str):
        """Everything else (sendall, settimeout) goes to the real socket."""
        return getattr(self._sock, name)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to an already checked IP, with the original host in the Host header, within one deadline."""

    def __init__(self, host: str, port: int, ip: str, deadline: float) -> None:
        super().__init__(host, port)
        self._ip, self._deadline = ip, deadline

    def _open_socket(self) -> socket.socket:
        """Connect to the pinned IP; connecting may use what is left of the deadline."""
        return socket.create_connection((self._ip, self.port), _remaining(self._deadline))

    def connect(self) -> None:
        """Connect to the pinned IP instead of resolving the host again."""
        self.sock = _DeadlineSocket(self._open_socket(), self._deadline)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """HTTPS to an already checked IP; the certificate is still verified against the host name."""

    default_port = 443

    def connect(self) -> None:
        """Connect to the pinned IP, then do TLS with SNI and verification for the host name."""
        raw = self._open_socket()
        # CPython's handshake keeps one deadline for all its reads, set from this timeout.
        raw.settimeout(_remaining(self._deadline))
        tls = ssl.create_default_context().wrap_socket(raw, server_hostname=self.host)
        self.sock = _DeadlineSocket(tls, self._deadline)


def _remaining(deadline: float) -> float:
    """Seconds left before the deadline; a fetch past it fails as too slow."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the fetch deadline passed")
    return remaining


def _read_capped(response: http.client.HTTPResponse, policy: FetchPolicy) -> bytes:
    """Read the body, refusing it as soon as it passes the byte cap (the socket enforces the deadline)."""
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > policy.max_bytes:
        raise FetchError(f"the image at that URL is larger than {policy.max_bytes:,} bytes",
                         status=413, code="payload_too_large")
    chunks, total = [], 0
    while chunk := response.read1(64 * 1024):
        total += len(chunk)
        if total > policy.max_bytes:
            raise FetchError(f"the image at that URL is larger than {policy.max_bytes:,} bytes",
                             status=413, code="payload_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(url: str) -> tuple[str, str, int, str]:
    """Scheme, ASCII host, port and request target of a URL, or FetchError("invalid_url") for any malformed one."""
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError("only http:// and https:// image URLs are accepted", code="invalid_url")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        # IDNA for international names; a name IDNA cannot encode is malformed (UnicodeError).
        host = parts.hostname if parts.hostname.isascii() else parts.hostname.encode("idna").decode("ascii")
        target = quote(parts.path or "/", safe=_URI_SAFE) + (f"?{quote(parts.query, safe=_URI_SAFE)}"
                                                             if parts.query else "")
    except ValueError:  # urlsplit on "http://[::1/x", a bad port, IDNA and lone surrogates (UnicodeError)
        raise FetchError("the image URL is malformed", code="invalid_url") from None
    return parts.scheme, host, port, target


def fetch_image_bytes(url: str, policy: FetchPolicy) -> bytes:
    """GET a public http(s) URL with a size cap, one deadline for everything and re-checked manual redirects."""
    deadline = time.monotonic() + policy.timeout_s
    for _hop in range(policy.max_redirects + 1):
        scheme, host, port, target = _parse(url)
        ip = resolve_checked(host, port, policy)
        connection_type = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
        connection, response = connection_type(host, port, ip, deadline), None
        try:
            connection.request("GET", target, headers={"User-Agent": "emotion-lens/1 (image fetch)",
                                                       "Accept": "image/jpeg, image/png, image/webp"})
            response = connection.getresponse()
            if response.status in _REDIRECTS and response.getheader("Location"):
                # Headers arrive as Latin-1; quoting their raw bytes keeps a UTF-8 Location's meaning.
                location = quote(response.getheader("Location").encode("latin-1"), safe=_URI_SAFE + "#")
                url = urljoin(url, location)
                continue
            if response.status != 200:
                raise FetchError(f"the image URL answered HTTP {response.status}")
            return _read_capped(response, policy)
        except TimeoutError:  # an OSError too, so first
            raise FetchError(f"the image URL took longer than {policy.timeout_s:g} s to answer") from None
        except ValueError:  # a Location urljoin cannot parse, e.g. "http://[::1"
            raise FetchError("the image URL redirected to a malformed URL", code="invalid_url") from None
        except (OSError, http.client.HTTPException) as error:
            raise FetchError(f"the image URL could not be fetched ({type(error).__name__})") from None
        finally:
            if response is not None:
                response.close()
            connection.close()
    raise FetchError(f"the image URL redirected more than {policy.max_redirects} times")
