"""Rate limits, CSRF, headers, and the promise that the web app never imports torch."""

from __future__ import annotations

import io
import re
import os
import subprocess
import sys
from pathlib import Path

from web_helpers import image_bytes, make_config, upload
from webapp import create_app

REPO = Path(__file__).resolve().parent.parent
# The child needs the project and the tests folder (fakes, web_helpers) on its path, like pytest has.
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}


def _csrf_token(client) -> str:
    """Visit the home page (which starts the session) and read the token from its meta tag."""
    html = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def test_predict_and_feedback_are_rate_limited_per_client(tmp_path):
    app = create_app(make_config(tmp_path, RATELIMIT_ENABLED=True, PREDICT_RATE_LIMIT="2 per minute",
                                 FEEDBACK_RATE_LIMIT="1 per minute"))
    client = app.test_client()
    analysis = upload(client).get_json()
    assert upload(client).status_code == 200
    limited = upload(client)
    assert limited.status_code == 429
    assert limited.get_json()["error"] == "rate_limited" and "too many requests" in limited.get_json()["message"]
    feedback = {"analysis_id": analysis["id"], "face_index": 0, "emotion": "happy"}
    owner = {"X-Delete-Token": analysis["delete_token"]}  # only the owner may answer
    assert client.post("/api/v1/feedback", json=feedback, headers=owner).status_code == 201
    assert client.post("/api/v1/feedback", json=feedback, headers=owner).status_code == 429
    # Another client has its own budget.
    other = client.post("/api/v1/feedback", json=feedback, headers=owner, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert other.status_code == 201


def test_html_form_without_csrf_token_is_refused(client):
    response = client.post("/analyze", data={"image": (io.BytesIO(image_bytes()), "x.png")},
                           content_type="multipart/form-data", headers={"Accept": "text/html"})
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)


def test_html_form_with_csrf_token_works(client):
    token = _csrf_token(client)
    response = client.post("/analyze", data={"csrf_token": token, "image": (io.BytesIO(image_bytes()), "x.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 302 and "/a/" in response.headers["Location"]


def test_api_calls_with_the_session_cookie_need_the_csrf_token(client):
    token = _csrf_token(client)  # the client now holds the site's session cookie, like a browser
    refused = upload(client)
    assert refused.status_code == 400 and refused.get_json()["error"] == "csrf_failed"
    accepted = client.post("/api/v1/predict", data={"image": (io.BytesIO(image_bytes()), "x.png")},
                           content_type="multipart/form-data", headers={"X-CSRFToken": token})
    assert accepted.status_code == 200
    # The session made it, so the same browser may delete it (with the token header again).
    url = f"/api/v1/analyses/{accepted.get_json()['id']}"
    assert client.delete(url).status_code == 400
    assert client.delete(url, headers={"X-CSRFToken": token}).status_code == 204


def test_token_clients_get_no_cookie_and_need_no_csrf(client):
    response = upload(client)
    assert response.status_code == 200 and "Set-Cookie" not in response.headers


def test_pages_send_security_headers_and_no_cdn(client):
    response = client.get("/")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    html = response.get_data(as_text=True)
    assert "http://" not in html.replace("http://localhost", "") and "https://" not in html.replace(
        "https://example.com/photo.jpg", "")


def test_webapp_never_imports_torch():
    code = ("import sys, tempfile, pathlib; import webapp; from web_helpers import make_config; "
            "app = webapp.create_app(make_config(pathlib.Path(tempfile.mkdtemp()))); "
            "client = app.test_client(); from web_helpers import upload; "
            "assert upload(client).status_code == 200; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=CHILD_ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_webapp_reaches_the_model_only_through_the_contract():
    import ast

    # The contract, its errors and label facts, the torch-free clients built on the contract (video timelines),
    # and helpers without model work (real OS threads, log format).
    allowed = {"model_server.api", "model_server.errors", "model_server.labels", "model_server.video",
               "model_server.logs", "model_server.serving.concurrency"}
    imported = set()
    for path in (REPO / "webapp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "model_server":
                imported.update((f"model_server.{alias.name}", path.relative_to(REPO).as_posix())
                                for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("model_server"):
                imported.add((node.module, path.relative_to(REPO).as_posix()))
            elif isinstance(node, ast.Import):
                imported.update((alias.name, path.relative_to(REPO).as_posix())
                                for alias in node.names if alias.name.startswith("model_server"))
    assert {(module, path) for module, path in imported if module not in allowed} == set()
