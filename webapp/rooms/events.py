"""Socket.IO handlers of the ``/room`` namespace: parse, call the room service, answer through the ack."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_socketio import Namespace

from . import service


class RoomNamespace(Namespace):
    """Emoji rooms; every event below is sent by ``static/room.js`` (host or participant page).

    Handlers take one optional payload and ignore extra arguments, so a malformed event gets the service's
    validation error rather than a TypeError.
    """

    def on_disconnect(self, _reason: Any = None) -> None:
        """Sent when a page closes or its connection drops: the tile shows as away, or the host as absent."""
        service.disconnect(request.sid)

    def on_host(self, payload: Any = None, *_extra: Any) -> dict[str, Any]:
        """Sent by the host page on every (re)connect with ``{room}``."""
        return service.host_connect(request.sid, payload)

    def on_join(self, payload: Any = None, *_extra: Any) -> dict[str, Any]:
        """Sent by a participant page on every (re)connect with ``{room, name, rejoin?}``."""
        return service.join(request.sid, payload)

    def on_frame(self, data: Any = None, *_extra: Any) -> dict[str, Any]:
        """Sent by a sharing participant with one JPEG of their own camera, after the previous answer."""
        return service.share_frame(request.sid, data)

    def on_share(self, payload: Any = None, *_extra: Any) -> dict[str, Any]:
        """Sent by a participant's pause/resume button with ``{on}``."""
        return service.set_sharing(request.sid, payload)

    def on_consent(self, payload: Any = None, *_extra: Any) -> dict[str, Any]:
        """Sent by a participant's answer to the recording question with ``{agree}``."""
        return service.set_consent(request.sid, payload)

    def on_leave(self, *_args: Any) -> dict[str, Any]:
        """Sent by a participant's leave button."""
        return service.leave(request.sid)

    def on_recording(self, payload: Any = None, *_extra: Any) -> dict[str, Any]:
        """Sent by the host's record switch with ``{on}``."""
        return service.set_recording(request.sid, payload)

    def on_mood(self, *_args: Any) -> dict[str, Any]:
        """Sent by the host page every few seconds for the mood strip."""
        return service.mood(request.sid)

    def on_close(self, *_args: Any) -> dict[str, Any]:
        """Sent by the host's close button: the room ends for everyone."""
        return service.host_close(request.sid)

