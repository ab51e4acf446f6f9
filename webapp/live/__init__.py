"""Live webcam analysis over Socket.IO: the ``/live`` page, its namespace and the per-connection service."""

from __future__ import annotations

from flask import Flask

from ..extensions import socketio
from .events import LiveNamespace, live_error
from .service import LiveClients
from .views import bp

NAMESPACE = "/live"


def init_live(app: Flask) -> None:
    """Register the live page, the ``/live`` namespace and its error handler on an app."""
    app.extensions["emotion_lens.live"] = LiveClients(app.config)
    app.register_blueprint(bp)
    # Registered per app (not by decorators at import), so every app a test creates gets its own handlers.
    socketio.on_namespace(LiveNamespace(NAMESPACE))
    socketio.on_error(NAMESPACE)(live_error)
