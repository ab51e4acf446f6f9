"""Emoji rooms: pages, the ``/room`` Socket.IO namespace and the room service."""

from __future__ import annotations

from flask import Flask

from ..extensions import socketio
from ..live.events import live_error
from .events import RoomNamespace
from .service import NAMESPACE, init_rooms
from .views import bp


def init_rooms_feature(app: Flask) -> None:
    """Register the room settings and store, the pages, and the ``/room`` namespace on an app."""
    init_rooms(app)
    app.register_blueprint(bp)
    # Registered per app (not by decorators at import), so every app a test creates gets its own handlers.
    socketio.on_namespace(RoomNamespace(NAMESPACE))
    # The live stream's handler: one Socket.IO error body ({"error", "message"} event and ack) for every namespace.
    socketio.on_error(NAMESPACE)(live_error)
