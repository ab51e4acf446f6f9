"""Request checks before any handler: chunked bodies are read, deep JSON is 400, ids have one shape."""

from __future__ import annotations

import io
import json
import secrets
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from flask import Flask, request
from werkzeug.test import EnvironBuilder

from webapp.validation import MAX_JSON_DEPTH, init_validation, json_depth, valid_id

REPO = Path(__file__).resolve().parents[1]


def _app() -> Flask:
    """A bare app with the checks installed and routes that parse the way ours do."""
    app = Flask(__name__)
    init_validation(app)

    @app.post("/echo")
    def echo():
        """The body's length and, for JSON, its type."""
        body = request.get_data()
        return {"length": len(body), "json": type(request.get_json()).__name__ if request.is_json else None}

    @app.get("/analyses/<analysis_id:analysis_id>")
    def analysis(analysis_id):
        """Stands in for a route that queries by id."""
        assert valid_id(analysis_id)
        return {"id": analysis_id}

    return app


def test_real_ids_are_valid_and_junk_is_not():
    assert all(valid_id(secrets.token_urlsafe(12)) for _ in range(200))
    for junk in ["ab\x00cdefghijklmno", "\ud800" * 16, "a" * 15, "a" * 17, "a" * 16 + "\n", "abc/def.ghijklmn",
                 "aaaaaaaaaaaaaaa=", None, 1234567890123456, b"a" * 16]:
        assert not valid_id(junk), repr(junk)


def test_routes_with_the_converter_never_see_a_malformed_id():
    client = _app().test_client()
    good = secrets.token_urlsafe(12)
    assert client.get(f"/analyses/{good}").get_json() == {"id": good}
    for path in ["/analyses/ab%00cdefghijklmn", "/analyses/%ED%A0%80", "/analyses/abc", "/analyses/" + "é" * 16]:
        assert client.get(path).status_code == 404, path


@pytest.mark.parametrize("document,depth", [("{}", 1), ("[[1, {\"a\": [2]}]]", 4), ("\"[[[[\"", 0),
                                            ("{\"a\": \"\\\"[[[\", \"b\": [1]}", 2), ("7", 0)])
def test_json_depth_counts_brackets_outside_strings(document, depth):
    assert json_depth(document.encode()) == depth


def test_json_nested_too_deeply_is_400_before_parsing():
    client = _app().test_client()
    for levels in (MAX_JSON_DEPTH + 1, 30_000):  # 100,000 made the parser hit the recursion limit: 500
        response = client.post("/echo", data="[" * levels + "]" * levels, content_type="application/json")
        assert response.status_code == 400 and b"nested more than" in response.data
    huge = client.post("/echo", data="[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert huge.status_code == 413
    ok = client.post("/echo", json={"image_url": "http://x/[[[[" * 40, "list": [[[1]]]})
    assert ok.status_code == 200 and ok.get_json()["json"] == "dict"


def _call(app: Flask, environ: dict) -> tuple[int, bytes]:
    """Run one WSGI request; its status code and body."""
    status = []
    body = b"".join(app(environ, lambda line, headers, exc_info=None: status.append(int(line.split()[0]))))
    return status[0], body


def _chunked_environ(body: bytes, **extra) -> dict:
    """A POST whose Content-Length is absent, as a server passes on a de-chunked Transfer-Encoding: chunked body."""
    environ = EnvironBuilder(path="/echo", method="POST", content_type="image/png").get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ.update({"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(body), **extra})
    return environ


def test_chunked_bodies_de_chunked_by_eventlet_are_read():
    status, body = _call(_app(), _chunked_environ(b"x" * 5000, **{"eventlet.input": object()}))
    assert status == 200 and json.loads(body)["length"] == 5000  # was 0: "missing_image"


def test_chunked_wins_over_a_content_length_sent_beside_it():
    environ = _chunked_environ(b"x" * 5000, **{"eventlet.input": object(), "CONTENT_LENGTH": "3"})
    status, body = _call(_app(), environ)
    assert status == 200 and json.loads(body)["length"] == 5000


def test_chunked_bodies_no_server_de_chunked_get_411():
    status, _ = _call(_app(), _chunked_environ(b"5\r\nhello\r\n0\r\n\r\n"))
    assert status == 411


def test_the_size_cap_still_applies_to_chunked_bodies():
    app = _app()
    app.config["MAX_CONTENT_LENGTH"] = 1000
    status, _ = _call(app, _chunked_environ(b"x" * 5000, **{"eventlet.input": object()}))
    assert status == 413


def test_a_chunked_upload_through_a_real_eventlet_server_is_read():
    server = textwrap.dedent("""
        import eventlet
        eventlet.monkey_patch()
        import sys
        from eventlet import wsgi
        sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
        from test_validation import _app
        listener = eventlet.listen(("127.0.0.1", 0))
        print(listener.getsockname()[1], flush=True)
        wsgi.server(listener, _app(), log_output=False)
    """)
    process = subprocess.Popen([sys.executable, "-c", server, str(REPO)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(process.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (b"a" * 3000, b"b" * 2000))
            connection.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                               b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\n\r\n")
            answer = b""
            while part := connection.recv(65536):
                answer += part
        assert answer.startswith(b"HTTP/1.1 200") and b'"length":5000' in answer.replace(b" ", b"")
    finally:
        process.kill()
        process.wait()
