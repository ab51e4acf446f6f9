"""Configuration order: class defaults, then EMO_* (and DATABASE_URL) variables, then the test dict."""

from __future__ import annotations

import pytest

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


def test_optional_numbers_are_read_as_numbers_and_optional_strings_stay_strings():
    config = load_config({"EMO_WTF_CSRF_TIME_LIMIT": "3600", "EMO_SECRET_KEY": "12345", "EMO_MEDIA_DIR": ""})
    assert config["WTF_CSRF_TIME_LIMIT"] == 3600
    assert config["SECRET_KEY"] == "12345"  # a numeric secret is still a string
    assert config["MEDIA_DIR"] is None


def test_a_malformed_number_names_the_variable():
    with pytest.raises(ValueError, match="EMO_PHOTO_DEADLINE must be a number, got 'soon'"):
        load_config({"EMO_PHOTO_DEADLINE": "soon"})
