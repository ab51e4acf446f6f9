"""Hostile input through the real app: every answer is 2xx or 4xx with a JSON error body, never a 500.

The URL fetch never leaves the machine here: the resolver is replaced for every test in this module.
"""

from __future__ import annotations

import io
import ipaddress
import re
import socket

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from hostile_corpus import corpus
from test_storage import database  # noqa: F401 - the SQLite / PostgreSQL fixture
from web_helpers import image_bytes, make_config, upload
from webapp import create_app
from webapp.inference import close_predictor

CASES = corpus(seed=1, mutation_count=40)


@pytest.fixture(autouse=True)
def no_outside_names(monkeypatch):
    """Answer address literals; refuse every name, as if it did not exist (no real DNS in tests)."""
    def resolve(host, port, *args, **kwargs):
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        family, extra = (socket.AF_INET6, (0, 0)) if address.version == 6 else (socket.AF_INET, ())
        return [(family, socket.SOCK_STREAM, 6, "", (host, port, *extra))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


def _assert_clean_answer(response, label: str) -> None:
    """2xx, or 4xx with {"error": code, "message": text}."""
    assert response.status_code < 500, f"{label}: {response.status_code} {response.get_data()[:200]!r}"
    if response.status_code >= 400:
        body = response.get_json(silent=True)
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body.get("message"), label


@pytest.fixture(scope="module")
def corpus_client(tmp_path_factory):
    """One app for the whole corpus: the cases share nothing, and a fresh app per case tripled the run time."""
    app = create_app(make_config(tmp_path_factory.mktemp("hostile")))
    yield app.test_client()
    close_predictor(app)
    app.extensions["emotion_lens.db"].engine.dispose()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_every_hostile_upload_gets_a_clean_answer(corpus_client, case):
    _assert_clean_answer(upload(corpus_client, case.data, filename="x.jpg"), case.name)


@pytest.mark.parametrize("url", ["http://[::1/x", "http://ex\u00e4mple.invalid/\u00fc.png", "http://[64:ff9b::7f00:1]/",
                                 "http://[2002:7f00:1::]/", "http://example.com/\ud800", "javascript:alert(1)"])
def test_hostile_image_urls_get_a_clean_answer(client, url):
    response = client.post("/api/v1/predict", json={"image_url": url})
    _assert_clean_answer(response, url)
    assert response.status_code == 422


def test_deeply_nested_json_is_refused_before_parsing(client):
    for levels, status in ((30_000, 400), (100_000, 413)):  # 100,000 levels gave 500 (RecursionError)
        response = client.post("/api/v1/predict", data="[" * levels + "]" * levels, content_type="application/json")
        _assert_clean_answer(response, f"JSON {levels} deep")
        assert response.status_code == status


def test_a_lone_surrogate_or_nul_analysis_id_never_reaches_the_database(client):
    feedback = client.post("/api/v1/feedback", data='{"analysis_id": "\\ud800", "face_index": 0, "emotion": "happy"}',
                           content_type="application/json")
    _assert_clean_answer(feedback, "surrogate id")
    for path in ["/api/v1/analyses/ab%00cd", "/api/v1/analyses/%ED%A0%80", "/a/ab%00cd"]:
        assert client.get(path).status_code == 404, path
    assert client.delete("/api/v1/analyses/ab%00cdefghijklmn").status_code == 404
    assert feedback.status_code in (404, 422)


def test_a_chunked_upload_is_read_not_missing(app):
    boundary = "hostileboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + image_bytes() + f"\r\n--{boundary}--\r\n".encode()
    environ = {"HTTP_TRANSFER_ENCODING": "chunked", "eventlet.input": object()}
    response = app.test_client().post("/api/v1/predict", input_stream=io.BytesIO(body), environ_overrides=environ,
                                      content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 200, response.get_json()


@schemathesis.check
def json_error_body(ctx, response, case):
    """Every 4xx of the JSON API carries {"error": code, "message": text}."""
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict) and "error" in body and "message" in body, body


def test_the_json_api_survives_property_based_fuzzing(app):
    # The app's own OpenAPI document, served through WSGI: no network, a fresh database for this test.
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5  # predict, feedback, analyses, health, ... are all described

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def survives(case):
            """One generated request: no 5xx, and a JSON error body on every 4xx."""
            case.call_and_validate(checks=[not_a_server_error, json_error_body])

        survives()


JUNK_IDS = ["ab%00cd", "ab%00cdefghijklmn", "%ED%A0%80", "%F0%9F%98%80" * 4, "..%2f..%2fetc", "a" * 300]


def test_junk_ids_on_every_route_that_takes_one_never_reach_the_database(database, tmp_path):
    url, schema = database  # SQLite and, where it runs, PostgreSQL, which refused a NUL byte with a 500
    app = create_app(make_config(tmp_path, DATABASE_URL=url, DATABASE_SCHEMA=schema))
    client = app.test_client()
    try:
        rules = [rule for rule in app.url_map.iter_rules() if "analysis_id" in rule.arguments]
        assert rules
        for rule in rules:
            for junk in JUNK_IDS:
                path = re.sub(r"<(?:\w+:)?analysis_id>", junk, rule.rule)
                path = re.sub(r"<(?:\w+:)?(\w+)>", "0", path)  # face_index and the like
                for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                    response = client.open(path, method=method, json={})
                    if path.startswith("/api/"):
                        _assert_clean_answer(response, f"{method} {path}")
                    else:  # pages answer with an HTML error page
                        assert response.status_code < 500, f"{method} {path}: {response.status_code}"
        api_client = app.test_client()  # no page visited, so no session cookie and no CSRF token needed
        for junk in ["ab\x00cd", "\ud800", "a" * 300]:
            feedback = api_client.post("/api/v1/feedback", json={"analysis_id": junk, "face_index": 0, "emotion": "happy"})
            _assert_clean_answer(feedback, repr(junk))
    finally:
        close_predictor(app)
        app.extensions["emotion_lens.db"].engine.dispose()
