"""Helpers for the web tests: the test configuration, generated images, and uploads."""

from __future__ import annotations

import contextlib
import io
import threading

import numpy as np
from PIL import Image

from fakes import FAKE_SPEC


def make_config(tmp_path, **overrides) -> dict:
    """Test configuration: everything in tmp_path, fake model, threading mode."""
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'test.db'}",
        "MEDIA_DIR": str(tmp_path / "media"),
        "PREDICTOR": FAKE_SPEC,
        "ASYNC_MODE": "threading",
        "WTF_CSRF_ENABLED": True,
        "RATELIMIT_ENABLED": False,
    }
    config.update(overrides)
    return config


def image_bytes(width: int = 128, height: int = 96, fmt: str = "PNG", value: int | None = None, seed: int = 0) -> bytes:
    """A small generated image in the given format."""
    rng = np.random.default_rng(seed)
    if value is None:
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    else:
        pixels = np.full((height, width, 3), value, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def upload(client, data: bytes | None = None, filename: str = "face.png", query: str = "", **fields):
    """POST an image to /api/v1/predict as multipart."""
    form = {"image": (io.BytesIO(image_bytes() if data is None else data), filename), **fields}
    return client.post(f"/api/v1/predict{query}", data=form, content_type="multipart/form-data")


CHROMIUM = "/usr/bin/chromium"
# Debian's Chromium, headless, with nothing phoning home (this machine has no network).
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-gpu"]
CHROMIUM_MISSING = (f"{CHROMIUM} is missing (apt-get install chromium); "
                    "Playwright's own browsers are never downloaded")
REAL_PREDICTOR = "model_server.serving.engine:create_engine"


@contextlib.contextmanager
def served_app(tmp_path, **overrides):
    """The app on a real HTTP server in a background thread (threading mode); yields (app, base URL)."""
    from werkzeug.serving import make_server

    from webapp import create_app
    from webapp.inference import close_predictor

    app = create_app(make_config(tmp_path, **overrides))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        close_predictor(app)
