"""Fixtures: an app on a fresh SQLite database and media folder per test, with the fake predictor."""

from __future__ import annotations

import pytest

from web_helpers import make_config
from webapp import create_app
from webapp.inference import close_predictor


@pytest.fixture
def app_config(tmp_path) -> dict:
    """Override dict for the app fixture; tests may change it before asking for ``app``."""
    return make_config(tmp_path)


@pytest.fixture
def app(app_config):
    """A fresh app per test."""
    app = create_app(app_config)
    yield app
    close_predictor(app)
    app.extensions["emotion_lens.db"].engine.dispose()


@pytest.fixture
def client(app):
    """A test client (no cookies until a page is visited)."""
    return app.test_client()
