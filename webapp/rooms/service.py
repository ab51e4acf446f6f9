"""Emoji rooms: people who choose to share their own expression appear to each other as an emoji tile.

A participant's frames are analysed in memory on their own connection; the room receives only the result
(emoji, top emotion, probabilities) and only while that participant shares. Broadcasts go through
``socketio.emit(..., to=room)``, so they reach clients of every web process through the message queue.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping

import numpy as np
from flask import Flask, current_app, session
from flask_socketio import join_room, leave_room
from sqlalchemy import select

from model_server.labels import EMOTIONS

from .. import inference
from ..db import get_session
from ..errors import AppError, Forbidden, InvalidInput, NotFound
from ..extensions import socketio
from ..live.service import NewestOnly, RateLimited, TokenBucket, checked_jpeg
from ..models import RoomMinute
from .store import MemoryRoomStore, Participant, RedisRoomStore, Room, make_room_store

NAMESPACE = "/room"
TIDY_SECONDS = 5.0  # how stale "away" tiles may get while others keep sharing
HOSTED = "hosted_rooms"  # session key: ids of the rooms this browser created (the host's only credential)

class RoomFull(AppError):
    """The room has ROOM_MAX_PARTICIPANTS already."""

    status = 409
    code = "room_full"


class NotSharing(AppError):
    """A frame from a participant who paused or has not joined."""

    status = 409
    code = "not_sharing"


@dataclass
class _Connection:
    """Per-connection budgets of this process (a Socket.IO connection never moves between processes)."""

    frames: TokenBucket
    slot: NewestOnly = field(default_factory=NewestOnly)


@dataclass
class Rooms:
    """The app's room store and this process's connections (kept in ``app.extensions``)."""

    store: MemoryRoomStore | RedisRoomStore
    connections: dict[str, _Connection] = field(default_factory=dict)
    tidied: dict[str, float] = field(default_factory=dict)  # room id -> when this process last tidied it


def init_rooms(app: Flask) -> None:
    """Fill in the room settings not configured and register the room store (memory, or Redis when configured)."""
    app.extensions["emotion_lens.rooms"] = Rooms(make_room_store(app.config))


def _rooms() -> Rooms:
    return current_app.extensions["emotion_lens.rooms"]


def _config(name: str) -> Any:
    return current_app.config[name]


def _channel(room_id: str) -> str:
    return f"room:{room_id}"


def _broadcast(room_id: str, event: str, data: Any) -> None:
    """Send to every client in the room, on any web process."""
    socketio.emit(event, data, to=_channel(room_id), namespace=NAMESPACE)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- pages ---------------------------------------------------------------------------------------------------

def create_room() -> str:
    """A new room with an unguessable id; this browser's session becomes its host."""
    rooms = _rooms()
    if rooms.store.count() >= _config("ROOM_MAX_ROOMS"):
        for room_id in rooms.store.room_ids():  # close rooms whose host never came (back) before refusing
            _tidy(room_id)
        if rooms.store.count() >= _config("ROOM_MAX_ROOMS"):
            raise AppError("there are too many open rooms; try again later", status=503, code="busy")
    # The host counts as away until their page connects: a room nobody opens closes after the host grace.
    room = Room(id=secrets.token_urlsafe(16), host_away_since=time.time())
    rooms.store.create(room)
    session[HOSTED] = [*session.get(HOSTED, [])[-9:], room.id]
    return room.id


def is_host(room_id: str) -> bool:
    """True when this browser's session created the room."""
    return room_id in session.get(HOSTED, [])


def room_exists(room_id: str) -> bool:
    """True when the room is open."""
    return _rooms().store.get(room_id) is not None


def recorded_minutes(room_id: str) -> list[dict[str, Any]]:
    """The room's stored per-minute aggregates (host only)."""
    if not is_host(room_id):
        raise Forbidden("only the host of this room can see its recording")
    rows = get_session().scalars(select(RoomMinute).where(RoomMinute.room_hash == _hash(room_id))
                                 .order_by(RoomMinute.minute)).all()
    return [{"minute": row.minute.isoformat(), "participants": row.participants, "samples": row.samples,
             "shares": row.shares} for row in rows]


# --- tiles and recording state ---------------------------------------------------------------------------------

def _tile(person: Participant) -> dict[str, Any]:
    """What the room sees of a participant: name, state, and the last result only while they share."""
    state = "away" if person.sid is None else "paused" if not person.sharing else \
        "sharing" if person.result else "no_face"
    tile: dict[str, Any] = {"id": person.id, "name": person.name, "state": state}
    if state == "sharing":
        tile.update(person.result)
    return tile


def _recording_active(room: Room) -> bool:
    """Recording runs only while the host is present and wants it and every present participant agreed."""
    present = [p for p in room.participants.values() if p.sid is not None]
    return room.recording and room.host_sid is not None and bool(present) and all(p.consent for p in present)


def _recording_state(room: Room) -> dict[str, Any]:
    present = [p for p in room.participants.values() if p.sid is not None]
    return {"requested": room.recording, "active": _recording_active(room),
            "agreed": sum(p.consent for p in present), "of": len(present)}


def _snapshot(room: Room) -> dict[str, Any]:
    """Everything a newly (re)connected client draws: tiles, host presence, recording state."""
    return {"room": room.id, "tiles": [_tile(p) for p in room.participants.values()],
            "host_present": room.host_sid is not None, "recording": _recording_state(room),
            "max_fps": _config("ROOM_MAX_FPS")}


def _expire(room: Room, now: float) -> tuple[list[str], bool]:
    """Drop participants away longer than the reconnect grace; (their ids, whether the host is gone for good)."""
    grace = _config("ROOM_RECONNECT_SECONDS")
    gone = [p.id for p in room.participants.values() if p.away_since is not None and now - p.away_since > grace]
    for person_id in gone:
        del room.participants[person_id]
    host_gone = room.host_away_since is not None and now - room.host_away_since > _config("ROOM_HOST_GRACE_SECONDS")
    return gone, host_gone


def _tidy(room_id: str) -> Room | None:
    """The room after expiring the long-away; closes it (and says so) when its host stayed away too long."""
    now = time.time()
    _rooms().tidied[room_id] = now
    with _rooms().store.edit(room_id) as room:
        if room is None:
            return None
        gone, host_gone = _expire(room, now)
    for person_id in gone:
        _broadcast(room_id, "left", {"id": person_id})
    if host_gone:
        close_room(room_id, reason="the host left")
        return None
    return room


# --- host --------------------------------------------------------------------------------------------------------

def host_connect(sid: str, payload: Any) -> dict[str, Any]:
    """The host's page joins its room's channel: it sees tiles and the mood strip."""
    room_id = _room_id(payload)
    if not is_host(room_id):
        raise Forbidden("only the browser that created this room can host it")
    with _rooms().store.edit(room_id) as room:
        if room is None:
            raise NotFound("this room is closed")
        room.host_sid, room.host_away_since = sid, None  # the host's return cancels the countdown to closing
        gone, _host_gone = _expire(room, time.time())
        snapshot = _snapshot(room)
    for person_id in gone:
        _broadcast(room_id, "left", {"id": person_id})
    _rooms().store.bind(sid, room_id, "host")
    join_room(_channel(room_id), sid=sid, namespace=NAMESPACE)
    _broadcast(room_id, "host", {"present": True})
    _broadcast(room_id, "recording", snapshot["recording"])
    return snapshot


def set_recording(sid: str, payload: Any) -> dict[str, Any]:
    """The host turns recording of per-minute aggregates on or off; participants are asked to agree."""
    room_id, on = _host_room(sid), _flag(payload, "on")
    with _rooms().store.edit(room_id) as room:
        if not on:
            _flush(room, final=True)
        room.recording = on
        state = _recording_state(room)
    _broadcast(room_id, "recording", state)
    return state


def mood(sid: str) -> dict[str, Any]:
    """The host's mood strip: per minute, the mean probability of each emotion across participants."""
    room_id = _host_room(sid)
    now = time.time()
    first = int(now // 60) - _config("ROOM_MOOD_MINUTES") + 1
    with _rooms().store.edit(room_id) as room:
        _flush(room)
        strip = [{"minute": datetime.fromtimestamp(minute * 60, timezone.utc).isoformat(),
                  "participants": len(sums), "shares": _shares(sums)}
                 for minute, sums in sorted(room.mood.items()) if sums and minute >= first]
    return {"minutes": strip}


def close_room(room_id: str, reason: str = "the host closed the room") -> None:
    """End a room: store the last recorded minute, tell everyone, forget it."""
    rooms = _rooms()
    with rooms.store.edit(room_id) as room:
        if room is None:
            return
        _flush(room, final=True)
    _broadcast(room_id, "closed", {"reason": reason})
    socketio.close_room(_channel(room_id), namespace=NAMESPACE)
    rooms.store.delete(room_id)
    rooms.tidied.pop(room_id, None)


def host_close(sid: str) -> dict[str, Any]:
    """The host ends the room for everyone."""
    close_room(_host_room(sid))
    return {"closed": True}


def _host_room(sid: str) -> str:
    member = _rooms().store.member(sid)
    if member is None or member[1] != "host":
        raise Forbidden("only the host can do this")
    return member[0]


# --- participants ----------------------------------------------------------------------------------------------

def _room_id(payload: Any) -> str:
    room_id = payload.get("room") if isinstance(payload, dict) else None
    if not isinstance(room_id, str) or not 0 < len(room_id) <= 64:
        raise InvalidInput('send {"room": room id}')
    return room_id


def _clean_name(raw: Any) -> str:
    """A display name without control characters or runs of spaces, 1 to ROOM_NAME_MAX characters."""
    if not isinstance(raw, str):
        raise InvalidInput("choose a display name")
    name = " ".join("".join(c for c in raw if unicodedata.category(c)[0] != "C").split())
    if not name or len(name) > _config("ROOM_NAME_MAX"):
        raise InvalidInput(f"a display name has 1 to {_config('ROOM_NAME_MAX')} characters")
    return name


def join(sid: str, payload: Any) -> dict[str, Any]:
    """A participant enters (or, with their rejoin token, re-enters) a room; sharing starts paused."""
    room_id, name = _room_id(payload), _clean_name(payload.get("name"))
    token = payload.get("rejoin")
    if _tidy(room_id) is None:
        raise NotFound("this room does not exist or has closed")
    answer_token = None
    with _rooms().store.edit(room_id) as room:
        person = next((p for p in room.participants.values()
                       if isinstance(token, str) and p.token_hash == _hash(token)), None)
        if person is None:
            present = [p for p in room.participants.values() if p.sid is not None or p.away_since is not None]
            if len(present) >= _config("ROOM_MAX_PARTICIPANTS"):
                raise RoomFull(f"this room is full ({_config('ROOM_MAX_PARTICIPANTS')} people)")
            answer_token = secrets.token_urlsafe(16)
            person = Participant(id=secrets.token_hex(6), name=name, token_hash=_hash(answer_token))
            room.participants[person.id] = person
        else:
            answer_token = token
            if person.sid and person.sid != sid:
                _rooms().store.unbind(person.sid)  # the old connection of a reloaded page
        person.sid, person.away_since, person.name = sid, None, name
        tile, snapshot = _tile(person), _snapshot(room)
    _rooms().store.bind(sid, room_id, person.id)
    _rooms().connections[sid] = _Connection(frames=TokenBucket(_config("ROOM_MAX_FPS"), _config("ROOM_MAX_FPS")))
    join_room(_channel(room_id), sid=sid, namespace=NAMESPACE)
    _broadcast(room_id, "tile", tile)
    _broadcast(room_id, "recording", snapshot["recording"])
    return {**snapshot, "participant": person.id, "token": answer_token}


def _participant(sid: str) -> tuple[str, str]:
    member = _rooms().store.member(sid)
    if member is None or member[1] == "host":
        raise NotSharing("join the room first")
    return member


@contextlib.contextmanager
def _own_entry(sid: str) -> Iterator[tuple[str, Room, Participant]]:
    """(room id, room, participant) of a participant's connection, for changing alone."""
    room_id, person_id = _participant(sid)
    with _rooms().store.edit(room_id) as room:
        if room is None or person_id not in room.participants:
            raise NotSharing("you are no longer in this room")
        yield room_id, room, room.participants[person_id]


def _flag(payload: Any, key: str) -> bool:
    """A true/false field of an event payload, or InvalidInput."""
    value = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(value, bool):
        raise InvalidInput(f'send {{"{key}": true}} or {{"{key}": false}}')
    return value


def set_sharing(sid: str, payload: Any) -> dict[str, Any]:
    """Pause or resume: while paused the room sees the tile as paused and no result of this person."""
    on = _flag(payload, "on")
    with _own_entry(sid) as (room_id, _room, person):
        person.sharing = on
        person.result = None  # a resumed tile waits for a fresh frame rather than showing an old result
        tile = _tile(person)
    _broadcast(room_id, "tile", tile)
    return tile


def set_consent(sid: str, payload: Any) -> dict[str, Any]:
    """A participant agrees (or stops agreeing) to per-minute aggregates of the room being recorded."""
    agree = _flag(payload, "agree")
    with _own_entry(sid) as (room_id, room, person):
        if not agree:
            _flush(room, final=True)  # what was agreed to is kept; nothing after the refusal is added
        person.consent = agree
        state = _recording_state(room)
    _broadcast(room_id, "recording", state)
    return state


def share_frame(sid: str, data: Any) -> dict[str, Any]:
    """Analyse one of the participant's own frames and give the room only the result; the frame is dropped."""
    room_id, person_id = _participant(sid)
    connection = _rooms().connections.get(sid)
    # Frames are the room's heartbeat: while anyone shares, the long-away are dropped every few seconds.
    if time.time() - _rooms().tidied.get(room_id, 0.0) > TIDY_SECONDS and _tidy(room_id) is None:
        raise NotSharing("this room has closed")
    room = _rooms().store.get(room_id)  # a read-only look: the result is written under the lock below
    person = room.participants.get(person_id) if room else None
    if person is None or not person.sharing or connection is None:
        raise NotSharing("turn sharing on to send frames")
    if not connection.frames.take():
        raise RateLimited(f"more than {_config('ROOM_MAX_FPS')} frames a second; wait for each answer")
    jpeg = checked_jpeg(data)
    if not connection.slot.enter():
        return {"dropped": True}
    try:
        analysis = inference.analyze(jpeg, "live")
    finally:
        connection.slot.leave()
    del jpeg
    face = max(analysis.faces, key=lambda f: f.box.w * f.box.h, default=None)
    result = None if face is None else {"emoji": face.emoji, "top": face.top, "emotions": face.emotions}
    with _rooms().store.edit(room_id) as room:
        person = room.participants.get(person_id) if room else None
        if person is None or not person.sharing:  # paused while the frame was analysed: the result is dropped
            raise NotSharing("sharing was turned off")
        person.result = result
        if result is not None:
            _add(room, person_id, face.probabilities)
        tile = _tile(person)
    _broadcast(room_id, "tile", tile)
    return tile


def _add(room: Room, person_id: str, probabilities: tuple[float, ...]) -> None:
    """Add one result to this minute's mood sums (and to the recorded sums while recording is active)."""
    minute = int(time.time() // 60)
    for old in [m for m in room.mood if m <= minute - _config("ROOM_MOOD_MINUTES")]:
        del room.mood[old]  # the strip shows only the last minutes, even when no host asks for it
    targets = [room.mood] + ([room.recorded] if _recording_active(room) else [])
    for buckets in targets:
        sums = buckets.setdefault(minute, {}).setdefault(person_id, [0.0] * (len(EMOTIONS) + 1))
        for i, p in enumerate(probabilities):
            sums[i] += p
        sums[-1] += 1


def _shares(sums: Mapping[str, list[float]]) -> dict[str, float]:
    """Mean over participants of each one's mean probabilities: every person weighs the same, however fast
    their camera sends."""
    means = np.mean([np.asarray(s[:-1]) / s[-1] for s in sums.values()], axis=0)
    return {label: round(float(value), 4) for label, value in zip(EMOTIONS, means)}


def _flush(room: Room, final: bool = False) -> None:
    """Store every finished recorded minute (and the current one when ``final``) as one aggregate row."""
    current = int(time.time() // 60)
    done = sorted(m for m in room.recorded if final or m < current)
    if not done:
        return
    db = get_session()
    for minute in done:
        sums = room.recorded.pop(minute)
        if not sums:
            continue
        row = RoomMinute(room_hash=_hash(room.id), minute=datetime.fromtimestamp(minute * 60, timezone.utc),
                         participants=len(sums), samples=int(sum(s[-1] for s in sums.values())))
        row.set_shares(_shares(sums))
        db.add(row)
    db.commit()


def leave(sid: str) -> dict[str, Any]:
    """A participant leaves for good: their tile disappears at once."""
    room_id, person_id = _participant(sid)
    _rooms().store.unbind(sid)
    _rooms().connections.pop(sid, None)
    with _rooms().store.edit(room_id) as room:
        state = None
        if room is not None and room.participants.pop(person_id, None) is not None:
            state = _recording_state(room)
    leave_room(_channel(room_id), sid=sid, namespace=NAMESPACE)
    _broadcast(room_id, "left", {"id": person_id})
    if state is not None:
        _broadcast(room_id, "recording", state)
    return {"left": True}


def disconnect(sid: str) -> None:
    """A dropped connection: the participant's tile shows as away (they may reconnect), or the host is away."""
    _rooms().connections.pop(sid, None)
    member = _rooms().store.unbind(sid)
    if member is None:
        return
    room_id, who = member
    now = time.time()
    with _rooms().store.edit(room_id) as room:
        if room is None:
            return
        if who == "host":
            if room.host_sid != sid:
                return  # a newer host connection replaced this one
            room.host_sid, room.host_away_since = None, now
            _flush(room, final=True)
            event, data = "host", {"present": False}
        else:
            person = room.participants.get(who)
            if person is None or person.sid != sid:
                return
            person.sid, person.away_since, person.result, person.sharing = None, now, None, False
            event, data = "tile", _tile(person)
        state = _recording_state(room)
    _broadcast(room_id, event, data)
    _broadcast(room_id, "recording", state)
