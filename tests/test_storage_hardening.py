"""Storage that tells the truth: health reads real tables, hosted URLs start, timestamps keep UTC."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from webapp.db import get_session, make_engine, normalise_url, ping
from webapp.models import Analysis


def test_health_reports_a_deleted_sqlite_file(app, client):
    client.get("/api/v1/health")  # a pooled connection now holds the file open, as in a running server
    with app.app_context():
        assert ping() is True
    Path(app.config["DATABASE_URL"].removeprefix("sqlite:///")).unlink()
    with app.app_context():
        assert ping() is False  # it still read fine through the open inode; writes failed with 500
    body = client.get("/api/v1/health").get_json()
    assert body["database"] is False


def test_health_reports_a_corrupted_sqlite_file(app, client):
    client.get("/api/v1/health")
    app.extensions["emotion_lens.db"].engine.dispose()  # a new connection, as after a restart of the pool
    with open(app.config["DATABASE_URL"].removeprefix("sqlite:///"), "r+b") as database:
        database.write(b"not a database" * 100)
    with app.app_context():
        assert ping() is False


@pytest.mark.parametrize("url,expected", [
    ("postgres://u:p@db.example:5432/app", "postgresql+psycopg://u:p@db.example:5432/app"),
    ("postgresql://u:p@db.example/app?sslmode=require", "postgresql+psycopg://u:p@db.example/app?sslmode=require"),
    ("postgresql+psycopg://u@h/app", "postgresql+psycopg://u@h/app"),
    ("sqlite:///x.db", "sqlite:///x.db"),
])
def test_hosted_postgres_urls_name_the_installed_driver(url, expected):
    assert normalise_url(url) == expected


def test_a_postgres_scheme_url_builds_an_engine_without_connecting():
    engine = make_engine("postgres://u:p@db.example/app")  # SQLAlchemy refused "postgres" outright before
    assert engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"


def test_sqlite_timestamps_come_back_aware_and_in_utc(app):
    paris = timezone(timedelta(hours=2))
    with app.app_context():
        session = get_session()
        session.add(Analysis(id="t" * 16, created=datetime(2026, 5, 1, 12, 0, tzinfo=paris), width=1, height=1,
                             model_name="m", model_version="v", source="upload", delete_token_hash="0" * 64))
        session.commit()
        session.expunge_all()
        created = session.get(Analysis, "t" * 16).created
    assert created.tzinfo is not None and created.utcoffset() == timedelta(0)
    assert created == datetime(2026, 5, 1, 10, 0, tzinfo=timezone.utc)
