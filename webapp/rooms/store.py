"""Room state behind a small store interface: in this process's memory, or in Redis for several processes.

Everything the service changes goes through ``store.edit(room_id)`` (read, change, write back alone), so
both stores behave the same to the service. Which room and role a Socket.IO connection has stays in the
process that holds the connection (a connection never moves), as do per-connection budgets.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator


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


class _LocalMembers:
    """Which room and role each of this process's connections has (sid -> (room id, participant id or "host"))."""

    def __init__(self) -> None:
        self._members: dict[str, tuple[str, str]] = {}
        self._lock = threading.RLock()

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

    def _forget_members(self, room_id: str) -> None:
        with self._lock:
            for sid in [sid for sid, (rid, _) in self._members.items() if rid == room_id]:
                del self._members[sid]


class MemoryRoomStore(_LocalMembers):
    """Rooms in a dict under one lock: one web process."""

    def __init__(self) -> None:
        super().__init__()
        self._rooms: dict[str, Room] = {}

    def create(self, room: Room) -> None:
        """Add a new room."""
        with self._lock:
            self._rooms[room.id] = room

    @contextlib.contextmanager
    def edit(self, room_id: str) -> Iterator[Room | None]:
        """The room (None if there is none) for reading and changing, alone."""
        with self._lock:
            yield self._rooms.get(room_id)

    def get(self, room_id: str) -> Room | None:
        """A copy of the room as it is now, for reading only (None if there is none)."""
        with self._lock:
            room = self._rooms.get(room_id)
            return None if room is None else room_from_json(room_to_json(room))

    def delete(self, room_id: str) -> None:
        """Forget a room and this process's connections to it."""
        with self._lock:
            self._rooms.pop(room_id, None)
        self._forget_members(room_id)

    def count(self) -> int:
        """How many rooms exist."""
        with self._lock:
            return len(self._rooms)

    def room_ids(self) -> list[str]:
        """The ids of every room."""
        with self._lock:
            return list(self._rooms)


def room_to_json(room: Room) -> str:
    """A room as JSON (minute numbers become string keys)."""
    return json.dumps(asdict(room), separators=(",", ":"))


def room_from_json(raw: str | bytes) -> Room:
    """The room ``room_to_json`` wrote."""
    data: dict[str, Any] = json.loads(raw)
    data["participants"] = {pid: Participant(**person) for pid, person in data["participants"].items()}
    for name in ("mood", "recorded"):
        data[name] = {int(minute): sums for minute, sums in data[name].items()}
    return Room(**data)


class RedisRoomStore(_LocalMembers):
    """Rooms in Redis, so every web process behind a balancer sees the same rooms.

    One JSON record per room, changed under a per-room Redis lock (a read-change-write of a few hundred
    bytes); records expire ``ttl_s`` after their last change, so abandoned rooms clean themselves up.
    """

    def __init__(self, url: str, prefix: str = "emo:rooms:", ttl_s: int = 24 * 3600) -> None:
        import redis  # the optional ``serve`` extra; only deployments that configure Redis need it

        super().__init__()
        self.prefix, self.ttl_s = prefix, ttl_s
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)

    def _key(self, room_id: str) -> str:
        return f"{self.prefix}room:{room_id}"

    def create(self, room: Room) -> None:
        """Add a new room."""
        self._redis.set(self._key(room.id), room_to_json(room), ex=self.ttl_s, nx=True)

    @contextlib.contextmanager
    def edit(self, room_id: str) -> Iterator[Room | None]:
        """The room (None if there is none) for reading and changing; no other process changes it meanwhile."""
        # The lock expires by itself (timeout) if a process dies holding it; an edit takes milliseconds.
        with self._redis.lock(f"{self.prefix}lock:{room_id}", timeout=5, blocking_timeout=5):
            raw = self._redis.get(self._key(room_id))
            room = room_from_json(raw) if raw is not None else None
            yield room
            if room is not None:  # an edit that raised writes nothing back
                self._redis.set(self._key(room_id), room_to_json(room), ex=self.ttl_s, xx=True)

    def get(self, room_id: str) -> Room | None:
        """The room as it is now, for reading only (None if there is none); no lock, no write."""
        raw = self._redis.get(self._key(room_id))
        return room_from_json(raw) if raw is not None else None

    def delete(self, room_id: str) -> None:
        """Forget a room (for every process) and this process's connections to it."""
        self._redis.delete(self._key(room_id))
        self._forget_members(room_id)

    def count(self) -> int:
        """How many rooms exist."""
        return len(self.room_ids())

    def room_ids(self) -> list[str]:
        """The ids of every room."""
        start = len(self._key(""))
        return [key[start:].decode() for key in self._redis.scan_iter(match=self._key("*"), count=500)]

    def close(self) -> None:
        """Close the connections to Redis."""
        self._redis.close()


def make_room_store(config: dict) -> MemoryRoomStore | RedisRoomStore:
    """Rooms in Redis when ROOM_STORE_URL names one (several web processes), else in this process's memory."""
    if config.get("ROOM_STORE_URL"):
        return RedisRoomStore(config["ROOM_STORE_URL"], prefix=config["ROOM_STORE_PREFIX"])
    return MemoryRoomStore()
