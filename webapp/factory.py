"""The app factory: ``create_app`` builds one configured Flask app (pages, JSON API, Socket.IO)."""

from __future__ import annotations

import ctypes
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Mapping

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import load_config
from .db import init_db
from . import websocket_patch
from .validation import init_validation
from .errors import register_error_handler
from .extensions import csrf, limiter, socketio
from .image_cache import make_crop_cache
from .inference import init_inference
from .media import MediaStore
from .ops import init_ops

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
        # Write the whole key under a private name, then link it into place: the link fails if another worker
        # starting at the same moment got there first (then both use that key), and nobody ever reads a
        # half-written or empty file, even after a crash.
        draft = instance / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(secrets.token_hex(32))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(draft, key_file)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    key = key_file.read_text().strip()
    if len(key) < 32:  # an empty key made every page fail with 500 while health said OK (issue 9)
        raise RuntimeError(f"{key_file} holds an empty or short secret key ({len(key)} characters); "
                           "delete the file to have a new key made, or set EMO_SECRET_KEY")
    return key


def _return_freed_memory_to_the_system() -> None:
    """Have glibc serve big buffers (decoded photos) by mmap, so freeing one gives its memory back at once.

    Without this, a burst of large uploads leaves the process hundreds of MB larger for good (measured by
    benchmarks/bench_hostile.py: +227% of idle RSS after 16 worst-case PNGs; +15% with a 128 KB threshold).
    Same effect as MALLOC_MMAP_THRESHOLD_=131072 in the environment, but needs no launcher to set it.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): their allocators behave differently; nothing to tune
        return
    m_mmap_threshold = -3  # from glibc's malloc.h
    libc.mallopt(m_mmap_threshold, 128 * 1024)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: config, database (migrated), media, model, extensions, blueprints."""
    app = Flask(__package__, template_folder=str(REPO_ROOT / "templates"), static_folder=str(REPO_ROOT / "static"),
                instance_relative_config=True)
    app.config.from_mapping(load_config(os.environ, test_config))
    _return_freed_memory_to_the_system()
    app.json.sort_keys = False  # emotions stay in the model's label order
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or _secret_key(instance)
    app.config["DATABASE_URL"] = app.config["DATABASE_URL"] or f"sqlite:///{instance / 'emotion_lens.db'}"
    app.config["MEDIA_DIR"] = app.config["MEDIA_DIR"] or str(instance / "media")
    app.config["ASYNC_MODE"] = app.config["ASYNC_MODE"] or _default_async_mode()
    if app.config["ASYNC_MODE"] == "eventlet":
        # eventlet unmasks every received WebSocket byte in a Python loop on the event loop; the patch does it
        # with numpy (1 MB: ~250 ms -> 0.1 ms), so a flooding client cannot freeze everyone else.
        websocket_patch.install()
    if app.config["PROXY_FIX_HOPS"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_FIX_HOPS"], x_proto=1)

    init_db(app)
    app.extensions["emotion_lens.media"] = MediaStore(app.config["MEDIA_DIR"])
    app.extensions["emotion_lens.crops"] = make_crop_cache(app.config)
    init_inference(app)

    # Bodies and ids are checked before any hook or route reads them (chunked uploads, deep JSON, junk ids).
    init_validation(app)
    csrf.init_app(app)
    limiter.init_app(app)
    # Origins None means the page's own scheme://host only: another site's page cannot open a stream.
    socketio.init_app(app, async_mode=app.config["ASYNC_MODE"],
                      cors_allowed_origins=app.config["SOCKETIO_ALLOWED_ORIGINS"],
                      max_http_buffer_size=app.config["SOCKETIO_MAX_MESSAGE_BYTES"],
                      message_queue=app.config["SOCKETIO_MESSAGE_QUEUE"], channel=app.config["SOCKETIO_CHANNEL"])
    register_error_handler(app)
    init_ops(app)

    from . import about, api, cli
    from .live import init_live
    from .rooms import init_rooms_feature
    from .video import init_video_feature
    from .photo import views as photo_views

    app.register_blueprint(photo_views.bp)
    app.register_blueprint(about.bp)
    app.register_blueprint(api.bp)
    cli.register(app)
    init_live(app)
    init_rooms_feature(app)
    init_video_feature(app)
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
