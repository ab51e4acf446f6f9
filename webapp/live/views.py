"""The live page and the Socket.IO browser client it loads (served from node_modules, never a CDN)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, render_template, send_from_directory

from model_server.labels import EMOJI, EMOTIONS

# `npm install` puts it here (package.json); a deployment without it serves the page but no live stream.
SOCKETIO_CLIENT_DIR = Path(__file__).resolve().parents[2] / "node_modules" / "socket.io-client" / "dist"

bp = Blueprint("live", __name__)


@bp.get("/live")
def page():
    """The live webcam page."""
    return render_template("live.html", emotions=EMOTIONS, emoji=EMOJI,
                           max_fps=current_app.config["LIVE_MAX_FPS"])


@bp.get("/vendor/socket.io.min.js")
def socketio_client():
    """The Socket.IO browser client from node_modules, same origin."""
    if not (SOCKETIO_CLIENT_DIR / "socket.io.min.js").is_file():
        abort(404, description="the Socket.IO client is not installed; run `npm install`")
    return send_from_directory(SOCKETIO_CLIENT_DIR, "socket.io.min.js", mimetype="text/javascript", max_age=86400)
