"""Image URLs: fetched with caps, and never to loopback, private, link-local or metadata addresses."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from web_helpers import image_bytes, make_config
from webapp.fetch import AddressNotAllowed, FetchError, FetchPolicy, check_address, fetch_image_bytes

PNG = image_bytes(96, 96)


class _Handler(BaseHTTPRequestHandler):
    """Serves one PNG, redirects, and records the Host header it was asked for."""

    hosts: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        """Answer by path."""
        type(self).hosts.append(self.headers["Host"])
        if self.path == "/face.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)
        elif self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.path.split("?to=", 1)[1])
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args):
        """Keep test output quiet."""


@pytest.fixture(scope="module")
def image_server():
    """A local HTTP server; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def app_config(tmp_path):
    """Loopback allowed, so the local image server can stand in for the internet."""
    return make_config(tmp_path, URL_FETCH_ALLOW_LOOPBACK=True, URL_FETCH_TIMEOUT=3.0)


def _predict_url(client, url):
    return client.post("/api/v1/predict", json={"image_url": url})


def test_an_allowed_url_is_fetched_and_analysed(client, image_server):
    response = _predict_url(client, f"{image_server}/face.png")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["source"] == "url" and (body["width"], body["height"]) == (96, 96) and len(body["faces"]) == 1


def test_loopback_is_refused_by_default(tmp_path, image_server):
    from webapp import create_app

    client = create_app(make_config(tmp_path)).test_client()
    for url in (f"{image_server}/face.png", "http://localhost/face.png", "http://[::1]/x.png",
                "http://[::ffff:127.0.0.1]/x.png", "http://0.0.0.0/x.png"):
        response = _predict_url(client, url)
        assert response.status_code == 422, url
        assert response.get_json()["error"] == "url_not_allowed", url


@pytest.mark.parametrize("url", ["http://10.1.2.3/x.png", "http://192.168.0.1/x.png", "http://172.16.5.4/x.png",
                                 "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
                                 "http://224.0.0.1/x.png", "http://100.64.0.1/x.png", "http://240.0.0.1/x.png"])
def test_private_link_local_metadata_multicast_reserved_are_refused(client, url):
    response = _predict_url(client, url)
    assert response.status_code == 422
    assert response.get_json()["error"] == "url_not_allowed" and "not allowed" in response.get_json()["message"]


def test_a_redirect_to_a_private_address_is_refused(client, image_server):
    response = _predict_url(client, f"{image_server}/redirect?to=http://10.0.0.1/face.png")
    assert response.status_code == 422 and response.get_json()["error"] == "url_not_allowed"
    metadata = _predict_url(client, f"{image_server}/redirect?to=http://169.254.169.254/")
    assert metadata.get_json()["error"] == "url_not_allowed"


def test_redirects_are_followed_and_capped(client, image_server):
    ok = _predict_url(client, f"{image_server}/redirect?to={image_server}/face.png")
    assert ok.status_code == 200
    hop = f"{image_server}/redirect?to="
    too_many = _predict_url(client, hop * 5 + f"{image_server}/face.png")
    assert too_many.status_code == 422 and "redirected more than" in too_many.get_json()["message"]


def test_every_resolved_address_is_checked_and_the_checked_one_is_used(client, image_server, monkeypatch):
    port = int(image_server.rsplit(":", 1)[1])
    real = socket.getaddrinfo

    def fake_dns(host, *args, **kwargs):
        if host == "mixed.example":  # one public and one private address: must be refused
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]
        if host == "pinned.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    assert _predict_url(client, f"http://mixed.example:{port}/face.png").get_json()["error"] == "url_not_allowed"
    # The connection goes to the address that was checked, with the original name as Host.
    assert _predict_url(client, f"http://pinned.example:{port}/face.png").status_code == 200
    assert _Handler.hosts[-1] == f"pinned.example:{port}"


def test_the_size_cap_applies_to_urls(tmp_path, image_server):
    from webapp import create_app

    app = create_app(make_config(tmp_path, URL_FETCH_ALLOW_LOOPBACK=True, URL_FETCH_MAX_BYTES=1000))
    response = _predict_url(app.test_client(), f"{image_server}/face.png")
    assert response.status_code == 413 and response.get_json()["error"] == "payload_too_large"


def test_http_errors_and_unresolvable_hosts_are_clear(client, image_server, monkeypatch):
    assert "HTTP 404" in _predict_url(client, f"{image_server}/missing.png").get_json()["message"]

    def nxdomain(host, *args, **kwargs):
        """What the resolver says for a name that does not exist (no real lookup in tests)."""
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", nxdomain)
    unresolvable = _predict_url(client, "http://no-such-host.invalid/x.png")
    assert unresolvable.status_code == 422 and "could not be resolved" in unresolvable.get_json()["message"]


def test_check_address_unit():
    check_address(ipaddress.ip_address("8.8.8.8"))
    check_address(ipaddress.ip_address("127.0.0.1"), allow_loopback=True)
    for bad in ("127.0.0.1", "::ffff:10.0.0.1", "fe80::1", "ff02::1", "::"):
        with pytest.raises(AddressNotAllowed):
            check_address(ipaddress.ip_address(bad))
    with pytest.raises(AddressNotAllowed):  # loopback allowance does not open private ranges
        check_address(ipaddress.ip_address("10.0.0.1"), allow_loopback=True)


# The fetch itself, below the web tier: a raw server that the test scripts byte by byte, and a fake resolver.

LOOPBACK = FetchPolicy(timeout_s=1.0, allow_loopback=True)


@pytest.fixture
def scripted_server():
    """Start a local server that answers each connection with the given (bytes, pause) steps; its port."""
    servers, requests = [], []

    def start(steps):
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(10)

        def serve():
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                with connection:
                    requests.append(connection.recv(65536))
                    try:
                        for data, pause in steps:
                            connection.sendall(data)
                            time.sleep(pause)
                    except OSError:  # the client gave up, as it should
                        pass

        threading.Thread(target=serve, daemon=True).start()
        servers.append(listener)
        return listener.getsockname()[1]

    start.requests = requests
    yield start
    for listener in servers:
        listener.close()


def test_a_slowly_dripping_body_fails_at_the_deadline(scripted_server):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
    port = scripted_server([(head, 0)] + [(b"x", 0.05)] * 200)  # 10 s if read to the end
    started = time.monotonic()
    with pytest.raises(FetchError, match="took longer than 1 s"):
        fetch_image_bytes(f"http://127.0.0.1:{port}/drip.png", LOOPBACK)
    assert time.monotonic() - started < 1.5


def test_a_slow_status_line_fails_at_the_deadline(scripted_server):
    port = scripted_server([(bytes([byte]), 0.05) for byte in b"HTTP/1.1 200 OK\r\n" * 10])
    started = time.monotonic()
    with pytest.raises(FetchError, match="took longer"):
        fetch_image_bytes(f"http://127.0.0.1:{port}/slow.png", LOOPBACK)
    assert time.monotonic() - started < 1.5


def _ok_png() -> list:
    return [(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(PNG) + PNG, 0)]


def test_non_ascii_in_a_url_or_a_redirect_is_percent_encoded_not_a_crash(scripted_server):
    target = scripted_server(_ok_png())
    assert fetch_image_bytes(f"http://127.0.0.1:{target}/fäce ☺.png?q=é", LOOPBACK) == PNG
    assert scripted_server.requests[-1].startswith(b"GET /f%C3%A4ce%20%E2%98%BA.png?q=%C3%A9 HTTP/1.1")
    location = f"http://127.0.0.1:{target}/gesicht-ü.png".encode()  # raw UTF-8, as some servers send it
    redirect = scripted_server([(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n", 0)])
    assert fetch_image_bytes(f"http://127.0.0.1:{redirect}/r", LOOPBACK) == PNG
    assert scripted_server.requests[-1].startswith(b"GET /gesicht-%C3%BC.png HTTP/1.1")


@pytest.mark.parametrize("url", ["http://[::1/x", "http://[::1]:99999/x", "http://exa\ud800mple.com/x.png",
                                 "http://example.com/\ud800.png", "ftp://example.com/x.png", "http:///x.png",
                                 "http://" + "ü" * 64 + ".example/x.png"])
def test_malformed_urls_give_the_fetchs_own_error(url, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _no_dns)
    with pytest.raises(FetchError) as caught:
        fetch_image_bytes(url, LOOPBACK)
    assert caught.value.status == 422 and caught.value.code == "invalid_url"


def test_a_malformed_redirect_gives_the_fetchs_own_error(scripted_server):
    port = scripted_server([(b"HTTP/1.1 302 Found\r\nLocation: http://[::1\r\nContent-Length: 0\r\n\r\n", 0)])
    with pytest.raises(FetchError) as caught:
        fetch_image_bytes(f"http://127.0.0.1:{port}/r", LOOPBACK)
    assert caught.value.code == "invalid_url"


def _no_dns(host, port, *args, **kwargs):
    """Tests never resolve real names: address literals are answered here, a name fails the test."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise AssertionError(f"resolved {host!r}") from None
    if address.version == 6:
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (host, port, 0, 0))]
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, port))]


# Issue 9: each of these was fetched. They embed loopback or the metadata address in an IPv6 form.
EMBEDDED_IPV4_FORMS = ["::7f00:1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::", "::ffff:0:7f00:1",
                       "2002:a9fe:a9fe::1", "64:ff9b:1::a00:1", "2001:0:4136:e378:8000:63bf:80ff:fffe"]


@pytest.mark.parametrize("address", EMBEDDED_IPV4_FORMS)
def test_ipv6_forms_that_embed_a_blocked_ipv4_address_are_refused(address):
    with pytest.raises(AddressNotAllowed):
        check_address(ipaddress.ip_address(address))
    with pytest.raises(AddressNotAllowed):  # the test-only loopback allowance is for 127.0.0.1 and ::1 themselves
        check_address(ipaddress.ip_address(address), allow_loopback=True)


@pytest.mark.parametrize("address", ["2002:808:808::1", "64:ff9b::808:808", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_ipv6_forms_of_public_addresses_stay_allowed(address):
    check_address(ipaddress.ip_address(address))


def test_a_name_resolving_to_an_embedded_form_is_refused_before_connecting(monkeypatch):
    connected = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("64:ff9b::7f00:1", port, 0, 0))])
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connected.append(a))
    with pytest.raises(AddressNotAllowed):
        fetch_image_bytes("http://nat64.example/x.png", FetchPolicy())
    assert connected == []


@pytest.mark.parametrize("url", ["http://[::1/x", "http://example.com/\ud800.png", "http://[64:ff9b::7f00:1]/x.png"])
def test_the_api_answers_bad_urls_with_422_not_500(client, url, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _no_dns)
    response = _predict_url(client, url)
    assert response.status_code == 422 and response.get_json()["error"] in ("invalid_url", "url_not_allowed")
