"""Socket.IO handlers of the ``/live`` namespace: parse, call the live service, answer through the ack."""

from __future__ import annotations

import logging
from typing import Any

from flask import request
from flask_socketio import Namespace, disconnect, emit

from ..errors import describe
from . import service

log = logging.getLogger(__name__)


class LiveNamespace(Namespace):
    """The live webcam stream; every event below is sent by ``static/live.js`` (or a script doing the same)."""

    def on_connect(self, _auth: Any = None) -> None:
        """Sent by the browser when the visitor starts the camera."""
        service.connect(request.sid)

    def on_disconnect(self, _reason: Any = None) -> None:
        """Sent when the visitor stops the camera or leaves the page (or the connection drops)."""
        service.disconnect(request.sid)

    def on_frame(self, *args: Any) -> dict[str, Any]:
        """Sent by the browser with one JPEG frame (binary) after the previous frame's answer arrived."""
        return service.analyse_frame(request.sid, _one(args, "a frame event carries one binary JPEG"))

    def on_correction(self, *args: Any) -> dict[str, Any]:
        """Sent by the "that's wrong" form with the frame number, the chosen emotions and the consent."""
        return service.store_correction(request.sid, _one(args, "a correction event carries one JSON object"))


def _one(args: tuple, message: str) -> Any:
    """The single argument of an event; a wrong count is the client's mistake, not a server error."""
    if len(args) != 1:
        raise service.BadFrame(message, code="invalid_event")
    return args[0]


def live_error(error: Exception) -> dict[str, str]:
    """Any error in a /live handler: an ``error`` event plus the same body as the ack; the stream goes on."""
    known = describe(error)
    if isinstance(error, service.Flooding):
        log.warning("closing /live connection %s: %s", request.sid, error)
        disconnect()
        return {"error": error.code, "message": error.message}
    if known is not None:
        _status, code, message = known
        body = {"error": code, "message": message}
        if isinstance(error, service.RateLimited):
            return body  # the ack says it; an extra error event per refused frame would double the traffic
    else:
        # Tracebacks go to the log only; the client gets a generic message.
        log.error("unhandled error in %s %s", request.namespace, request.event.get("message"), exc_info=error)
        body = {"error": "internal_error", "message": "something went wrong on our side; the stream goes on"}
    emit("error", body)
    return body
