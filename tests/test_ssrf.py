"""Image URLs: fetched with caps, and never to loopback, private, link-local or metadata addresses."""

from __future__ import annotations

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from web_helpers import image_bytes, make_config
from webapp.fetch import AddressNotAllowed, check_address

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


def test_http_errors_and_unresolvable_hosts_are_clear(client, image_server):
    assert "HTTP 404" in _predict_url(client, f"{image_server}/missing.png").get_json()["message"]
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
