"""One engine per app, a session scoped to the app context, and migrations run at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from flask import Flask, current_app
from flask.globals import app_ctx
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, scoped_session, sessionmaker

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


@dataclass
class Database:
    """The app's engine and its app-context-scoped session factory (kept in app.extensions)."""

    engine: Engine
    session: scoped_session[Session]


def normalise_url(url: str) -> str:
    """Name the installed PostgreSQL driver in hosted-style URLs (postgres://, postgresql://)."""
    # Hosts hand out postgres:// (which SQLAlchemy does not know) and postgresql:// (which means psycopg2,
    # not installed); psycopg 3 is the driver we ship with.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, schema: str | None = None) -> Engine:
    """Create an engine; SQLite gets foreign keys and cross-thread use, PostgreSQL an optional schema."""
    url = normalise_url(url)
    connect_args: dict = {}
    if url.startswith("sqlite"):
        # Requests may be served from several threads (threading mode); each checks out its own connection.
        connect_args["check_same_thread"] = False
    elif schema:
        connect_args["options"] = f"-csearch_path={schema}"
    engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    if url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _enable_foreign_keys(dbapi_connection, _record) -> None:
            """SQLite ignores ON DELETE CASCADE unless foreign keys are switched on per connection."""
            dbapi_connection.execute("PRAGMA foreign_keys=ON")
    return engine


def upgrade(engine: Engine) -> None:
    """Bring the database schema to the newest Alembic revision."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several web processes start together in production; one migrates while the others wait for it
            # (the lock ends with this transaction), instead of racing to create the same tables.
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('emotion_lens.migrations'))"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def init_db(app: Flask) -> None:
    """Create the app's engine and session, migrate, and remove the session when each app context ends."""
    engine = make_engine(app.config["DATABASE_URL"], app.config.get("DATABASE_SCHEMA"))
    upgrade(engine)
    # One session per app context (i.e. per request or CLI command), like Flask-SQLAlchemy.
    session = scoped_session(sessionmaker(engine, expire_on_commit=False),
                             scopefunc=lambda: id(app_ctx._get_current_object()))
    app.extensions["emotion_lens.db"] = Database(engine, session)
    app.teardown_appcontext(lambda _exc: session.remove())


def get_session() -> Session:
    """The session of the current app context."""
    return current_app.extensions["emotion_lens.db"].session()


def ping() -> bool:
    """True when the database reads a real table and, for SQLite, could still write to its file."""
    engine = current_app.extensions["emotion_lens.db"].engine
    try:
        with engine.connect() as connection:
            # A deleted or corrupted file still answers "SELECT 1"; reading a table's pages does not.
            connection.execute(text("SELECT 1 FROM analyses LIMIT 1")).all()
            if engine.dialect.name == "sqlite":
                # A pooled connection keeps reading a deleted file's open inode; SQLite only refuses a write
                # ("readonly database"), so try one and roll it back.
                connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
                connection.rollback()
        return True
    except Exception:  # noqa: BLE001 - any driver error means "not usable"; health reports it
        current_app.logger.warning("database ping failed", exc_info=True)
        return False
