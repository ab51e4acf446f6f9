"""Storage: migrations build exactly the models' tables, on SQLite always and PostgreSQL when reachable."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from web_helpers import make_config, upload
from webapp import create_app
from webapp.db import make_engine, upgrade
from webapp.models import Base

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_reason() -> str | None:
    """None when the test server answers, else why the PostgreSQL tests are skipped."""
    try:
        with create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3}).connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means "not available here"
        return f"PostgreSQL at {POSTGRES_URL} is not reachable ({type(error).__name__})"
    return None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request, tmp_path):
    """(url, schema) of an empty database; a PostgreSQL schema made for this test and dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'storage.db'}", None
        return
    reason = _postgres_reason()
    if reason:
        pytest.skip(reason)
    schema = f"emo_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield POSTGRES_URL, schema
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_migrations_create_the_models_tables(database):
    url, schema = database
    engine = make_engine(url, schema)
    upgrade(engine)
    upgrade(engine)  # running again at the next start is a no-op
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_analyses_faces_corrections_round_trip(database, tmp_path):
    url, schema = database
    app = create_app(make_config(tmp_path, DATABASE_URL=url, DATABASE_SCHEMA=schema))
    client = app.test_client()
    analysis = upload(client).get_json()
    correction = client.post("/api/v1/feedback", headers={"X-Delete-Token": analysis["delete_token"]},
                             json={"analysis_id": analysis["id"], "face_index": 0, "emotion": "neutral",
                                   "consent_crop": True})
    assert correction.status_code == 201 and correction.get_json()["crop_stored"]
    stored = client.get(f"/api/v1/analyses/{analysis['id']}").get_json()
    assert stored["faces"][0]["emotions"] == pytest.approx(analysis["faces"][0]["emotions"])
    assert client.get("/api/v1/health").status_code == 200
    deleted = client.delete(f"/api/v1/analyses/{analysis['id']}", headers={"X-Delete-Token": analysis["delete_token"]})
    assert deleted.status_code == 204
    engine = app.extensions["emotion_lens.db"].engine
    with engine.connect() as connection:
        counts = [connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                  for table in ("analyses", "faces", "corrections")]
        assert set(inspect(connection).get_table_names()) >= {"analyses", "faces", "corrections"}
    assert counts == [0, 0, 0]
    engine.dispose()
