"""Every class of bad input gets the right status and a clear message, never a traceback."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from web_helpers import image_bytes, make_config, upload
from webapp import create_app


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == code and "Traceback" not in body["message"]
    return body["message"]


@pytest.fixture
def app_config(tmp_path):
    """Small caps so the tests can exceed them with tiny files."""
    return make_config(tmp_path, MAX_CONTENT_LENGTH=200_000, SERVING={"photo_max_pixels": 1_000_000})


def test_oversize_upload_is_413_json(client):
    message = _error(upload(client, b"\0" * 300_000), 413, "payload_too_large")
    assert "large" in message.lower()


def test_not_an_image_is_415(client):
    assert "not an image" in _error(upload(client, b"hello, I am text"), 415, "unsupported_image")


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_image_formats_are_415(client, fmt):
    message = _error(upload(client, image_bytes(fmt=fmt), filename=f"x.{fmt.lower()}"), 415, "unsupported_image")
    assert fmt in message and "JPEG, PNG or WebP" in message


def test_truncated_image_is_422(client):
    data = image_bytes(200, 200, fmt="JPEG")
    assert "truncated or corrupt" in _error(upload(client, data[: len(data) // 2]), 422, "corrupt_image")


def test_empty_file_is_422(client):
    assert "empty" in _error(upload(client, b""), 422, "corrupt_image")


def test_decompression_bomb_is_refused_before_decoding(client):
    # 4 megapixels of one colour compress to a few KB: small upload, too many pixels.
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((2000, 2000), dtype=np.uint8)).save(buffer, format="PNG")
    assert len(buffer.getvalue()) < 200_000
    assert "pixels" in _error(upload(client, buffer.getvalue()), 413, "image_too_large")


def test_missing_image_is_422(client):
    response = client.post("/api/v1/predict", data={}, content_type="multipart/form-data")
    assert "image" in _error(response, 422, "missing_image")


def test_non_http_url_is_refused(client):
    response = client.post("/api/v1/predict", json={"image_url": "file:///etc/passwd"})
    assert "http" in _error(response, 422, "invalid_url")


def test_bad_feedback_body_is_422(client):
    assert "JSON" in _error(client.post("/api/v1/feedback", data="nope"), 422, "invalid_request")
    response = client.post("/api/v1/feedback", json={"analysis_id": "x", "face_index": "0", "emotion": "happy"})
    assert "face_index" in _error(response, 422, "invalid_request")


def test_unexpected_errors_are_logged_and_answered_generically(tmp_path, caplog):
    app = create_app(make_config(tmp_path))
    # Simulate a bug deep in the model: the answer must not leak its message or traceback.
    app.extensions["emotion_lens.inference"].predictor.analyze = lambda rgb, realtime=False: 1 / 0
    response = upload(app.test_client())
    message = _error(response, 500, "internal_error")
    assert "division" not in message and "went wrong" in message
    assert "ZeroDivisionError" in caplog.text
