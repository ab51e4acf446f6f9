"""The app factory: ``create_app`` builds one configured Flask app (pages, JSON API, Socket.IO)."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any, Mapping

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import load_config
from .db import init_db
from .errors import register_error_handler
from .extensions import csrf, limiter, socketio
from .image_cache import CropCache
from .inference import init_inference
from .media import MediaStore

REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_async_mode() -> str:
    """Eventlet when this process was monkey-patched by it (gunicorn -k eventlet, python -m webapp)."""
    if "eventlet" in sys.modules:
        import eventlet.patcher

        if eventlet.patcher.is_monkey_patched("socket"):
            return "eventlet"
    return "threading"


def _secret_key(instance: Path) -> str:
    """A random key created once per instance folder, so sessions survive restarts without setup."""
    key_file = instance / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: config, database (migrated), media, model, extensions, blueprints."""
    app = Flask(__package__, template_folder=str(REPO_ROOT / "templates"), static_folder=str(REPO_ROOT / "static"),
                instance_relative_config=True)
    app.config.from_mapping(load_config(os.environ, test_config))
    app.json.sort_keys = False  # emotions stay in the model's label order
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or _secret_key(instance)
    app.config["DATABASE_URL"] = app.config["DATABASE_URL"] or f"sqlite:///{instance / 'emotion_lens.db'}"
    app.config["MEDIA_DIR"] = app.config["MEDIA_DIR"] or str(instance / "media")
    app.config["ASYNC_MODE"] = app.config["ASYNC_MODE"] or _default_async_mode()
    if app.config["PROXY_FIX_HOPS"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_FIX_HOPS"], x_proto=1)

    init_db(app)
    app.extensions["emotion_lens.media"] = MediaStore(app.config["MEDIA_DIR"])
    app.extensions["emotion_lens.crops"] = CropCache(app.config["IMAGE_CACHE_MAX_BYTES"],
                                                     app.config["IMAGE_CACHE_SECONDS"])
    init_inference(app)

    csrf.init_app(app)
    limiter.init_app(app)
    # Origins None means the page's own scheme://host only: another site's page cannot open a stream.
    socketio.init_app(app, async_mode=app.config["ASYNC_MODE"],
                      cors_allowed_origins=app.config["SOCKETIO_ALLOWED_ORIGINS"],
                      max_http_buffer_size=app.config["SOCKETIO_MAX_MESSAGE_BYTES"])
    register_error_handler(app)

    from . import api, cli, pages
    from .live import init_live

    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    cli.register(app)
    init_live(app)
    app.after_request(_security_headers)
    return app


def _security_headers(response):
    """Same-origin everything: no CDN, no third-party scripts, no framing."""
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'self'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response
