"""Room pages: the explanation and create form, the host view, the participant view, recorded minutes."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, url_for

from model_server.labels import EMOJI, EMOTIONS

from ..extensions import limiter
from . import service

bp = Blueprint("rooms", __name__, url_prefix="/rooms")
create_limit = limiter.shared_limit(lambda: current_app.config["ROOM_CREATE_RATE_LIMIT"], scope="rooms")


def _page(template: str, room_id: str | None = None, **extra):
    return render_template(template, room_id=room_id, emotions=EMOTIONS, emoji=EMOJI,
                           max_participants=current_app.config["ROOM_MAX_PARTICIPANTS"],
                           max_fps=current_app.config["ROOM_MAX_FPS"], **extra)


@bp.get("/")
def index():
    """What rooms are for (and not for), and the button that creates one."""
    return _page("rooms.html")


@bp.post("/")
@create_limit
def create():
    """Create a room (form post, CSRF-checked) and go to its host view."""
    return redirect(url_for("rooms.host", room_id=service.create_room()), code=303)


@bp.get("/<room_id>")
def room(room_id: str):
    """The participant view: join with a name, share your expression as an emoji."""
    if not service.room_exists(room_id):
        abort(404, description="this room does not exist or has closed")
    return _page("room.html", room_id, role="participant")


@bp.get("/<room_id>/host")
def host(room_id: str):
    """The host view: the link to share, the tiles, the mood strip and the recording switch."""
    if not service.room_exists(room_id):
        abort(404, description="this room does not exist or has closed")
    if not service.is_host(room_id):
        return redirect(url_for("rooms.room", room_id=room_id))
    return _page("room.html", room_id, role="host",
                 link=url_for("rooms.room", room_id=room_id, _external=True))


@bp.get("/<room_id>/minutes")
def minutes(room_id: str):
    """The room's recorded per-minute aggregates as JSON (host only)."""
    return jsonify(minutes=service.recorded_minutes(room_id))
