"""Configuration order: class defaults, then EMO_* (and DATABASE_URL) variables, then the test dict."""

from __future__ import annotations

from webapp.config import Config, load_config


def test_defaults_environment_and_test_dict_in_that_order():
    environ = {"EMO_MAX_PIXELS": "1000", "EMO_LAZY_MODEL": "true", "EMO_URL_FETCH_TIMEOUT": "2.5",
               "DATABASE_URL": "postgresql+psycopg://db/app", "EMO_PREDICT_RATE_LIMIT": "5 per minute"}
    config = load_config(environ, {"MAX_PIXELS": 7})
    assert config["PREDICTOR"] == Config.PREDICTOR == "model_server.serving.engine:create_engine"
    assert config["LAZY_MODEL"] is True and config["URL_FETCH_TIMEOUT"] == 2.5
    assert config["DATABASE_URL"] == "postgresql+psycopg://db/app"
    assert config["PREDICT_RATE_LIMIT"] == "5 per minute"
    assert config["MAX_PIXELS"] == 7  # the test dict wins


def test_prefixed_database_url_wins_over_the_plain_one():
    config = load_config({"DATABASE_URL": "sqlite:///a.db", "EMO_DATABASE_URL": "sqlite:///b.db"})
    assert config["DATABASE_URL"] == "sqlite:///b.db"
