"""Room state behind a small store interface; the default keeps it in this process's memory.

Everything the service changes goes through ``store.edit(room_id)`` (read, change, write back), so a
shared store (Redis: one key per room holding this record as JSON, edited under WATCH/MULTI) can replace
the in-memory one without touching the service. Per-connection things (budgets, the analysis slot) are not
here: a Socket.IO connection lives in one process.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator


@dataclass
class Participant:
    """One person in a room: their name, whether they share, their consent to recording, their last result."""

    id: str
    name: str
    token_hash: str  # sha256 of the rejoin token the participant's browser keeps; the token is never stored
    sid: str | None = None  # None while away (disconnected, may reconnect)
    sharing: bool = False
    consent: bool = False  # agreed to per-minute aggregates being recorded
    result: dict | None = None  # {emoji, top, emotions} of the last shared frame, None when no face or paused
    away_since: float | None = None


@dataclass
class Room:
    """A room: its host's presence, participants, recording wish, and per-minute mood sums."""

    id: str
    created: float = field(default_factory=time.time)
    host_sid: str | None = None
    host_away_since: float | None = None
    recording: bool = False  # the host asked to record; it is active only when everyone present agreed
    participants: dict[str, Participant] = field(default_factory=dict)
    # minute number (epoch // 60) -> participant id -> [sum of each probability..., count of results]
    mood: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    # The same sums, but only of results given while recording was active: what may be stored.
    recorded: dict[int, dict[str, list[float]]] = field(default_factory=dict)


class MemoryRoomStore:
    """Rooms in a dict under one lock; each connection's room and role in another."""

    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}
        self._members: dict[str, tuple[str, str]] = {}  # sid -> (room id, participant id or "host")
        self._lock = threading.RLock()

    def create(self, room: Room) -> None:
        """Add a new room."""
        with self._lock:
            self._rooms[room.id] = room

    @contextlib.contextmanager
    def edit(self, room_id: str) -> Iterator[Room | None]:
        """The room (None if there is none) for reading and changing, alone."""
        with self._lock:
            yield self._rooms.get(room_id)

    def delete(self, room_id: str) -> None:
        """Forget a room and its connections."""
        with self._lock:
            self._rooms.pop(room_id, None)
            for sid in [sid for sid, (rid, _) in self._members.items() if rid == room_id]:
                del self._members[sid]

    def count(self) -> int:
        """How many rooms exist."""
        with self._lock:
            return len(self._rooms)

    def bind(self, sid: str, room_id: str, member: str) -> None:
        """Remember which room and role a connection has."""
        with self._lock:
            self._members[sid] = (room_id, member)

    def unbind(self, sid: str) -> tuple[str, str] | None:
        """Forget a connection; its (room id, role) if it had one."""
        with self._lock:
            return self._members.pop(sid, None)

    def member(self, sid: str) -> tuple[str, str] | None:
        """(room id, participant id or "host") of a connection."""
        with self._lock:
            return self._members.get(sid)
