"""Live webcam frames: per-connection limits, newest-frame-only analysis, face tracks, live corrections.

Frames live only in memory for the length of one analysis; nothing here writes a frame to disk.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
from flask import current_app, url_for

from model_server.api import Box, ImageAnalysis, face_json
from model_server.video import FaceTracker

from .. import analyses, inference
from ..api import correction_dict
from ..errors import AppError, Conflict, InvalidInput

_JPEG_MAGIC = b"\xff\xd8\xff"  # every JPEG starts with SOI followed by a marker
# Full-frame detection runs at least every this many frames, so a face entering the picture appears within
# about 0.2 s at webcam rate; in between, known faces are only followed around their last boxes.
FULL_DETECTION_EVERY = 6
# Mean absolute difference (grey levels) between two frames' 16x12 thumbnails above which the picture has
# changed too much to trust the old boxes (a cut, a camera move, a light switched on).
SCENE_CHANGE_LEVELS = 12.0
# Answers kept per connection for "that's wrong": about two seconds of frames at webcam rate, which covers
# the time between the frame on screen and the click that freezes it.
_RECENT_ANSWERS = 64


class RateLimited(AppError):
    """The connection sends faster than its budget."""

    status = 429
    code = "rate_limited"


class Flooding(AppError):
    """The connection stayed far over its frame budget: it is disconnected rather than answered frame by frame."""

    status = 429
    code = "flooding"


class BadFrame(AppError):
    """The payload is not a JPEG frame we accept (too large, wrong type, wrong format)."""

    status = 422
    code = "invalid_frame"


class NotConnected(AppError):
    """An event for a connection that has already closed."""

    status = 409
    code = "not_connected"


class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``; each event spends one."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._stamp = burst, clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Spend one token if there is one."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


class NewestOnly:
    """One frame per client is analysed at a time; of the frames waiting behind it only the newest survives."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._busy = False
        self._latest = 0  # ticket of the newest arrival; an older waiter seeing a newer ticket gives up

    def enter(self) -> bool:
        """Wait for the client's analysis slot; False when a newer frame arrived meanwhile (drop this one)."""
        with self._changed:
            self._latest += 1
            ticket = self._latest
            self._changed.notify_all()  # an older waiter wakes up, sees it is stale, and answers "dropped"
            while self._busy and ticket == self._latest:
                self._changed.wait()
            if ticket != self._latest:
                return False
            self._busy = True
            return True

    def leave(self) -> None:
        """Free the slot for the newest waiting frame."""
        with self._changed:
            self._busy = False
            self._changed.notify_all()


class DetectionSchedule:
    """Decides per frame between a full-frame search and following the known faces (stateless model tier)."""

    def __init__(self) -> None:
        self._since_full = FULL_DETECTION_EVERY
        self._full_next = True
        self._signature: bytes | None = None

    def hints(self, known: list[Box]) -> tuple[Box, ...]:
        """The boxes to follow in the next frame, or () when it needs a full search."""
        if self._full_next or not known or self._since_full >= FULL_DETECTION_EVERY:
            self._since_full = 0
            return ()
        self._since_full += 1
        return tuple(known)

    def update(self, hints: tuple[Box, ...], faces_found: int, signature: bytes | None) -> None:
        """After a frame: a lost face or a changed picture makes the next frame a full search."""
        changed = False
        if signature and self._signature and len(signature) == len(self._signature):
            previous = np.frombuffer(self._signature, np.uint8).astype(np.int16)
            changed = float(np.abs(np.frombuffer(signature, np.uint8) - previous).mean()) > SCENE_CHANGE_LEVELS
        self._signature = signature
        self._full_next = bool(hints) and faces_found < len(hints) or changed


@dataclass
class LiveClient:
    """What the server keeps per live connection: budgets, the analysis slot, face tracks, frame count."""

    frames: TokenBucket
    corrections: TokenBucket
    slot: NewestOnly = field(default_factory=NewestOnly)
    # At webcam rate one face's boxes in consecutive frames overlap far more than 0.3, and a face may go
    # undetected for 5 frames (a blink, a turned head) before its track ends; video samples are sparser.
    tracker: FaceTracker = field(default_factory=lambda: FaceTracker(min_iou=0.3, max_missed=5))
    schedule: DetectionSchedule = field(default_factory=DetectionSchedule)
    refused: int = 0  # frames refused for exceeding the budget, over the connection's life
    seq: itertools.count = field(default_factory=itertools.count)
    recent: OrderedDict[int, ImageAnalysis] = field(default_factory=OrderedDict)
    recent_lock: threading.Lock = field(default_factory=threading.Lock)

    def remember(self, seq: int, result: ImageAnalysis) -> None:
        """Keep a frame's answer (with its crops) so a correction can store exactly what the visitor saw."""
        with self.recent_lock:
            self.recent[seq] = result
            while len(self.recent) > _RECENT_ANSWERS:
                self.recent.popitem(last=False)

    def recalled(self, seq: int) -> ImageAnalysis | None:
        """The answer given for frame ``seq``, if it is still kept."""
        with self.recent_lock:
            return self.recent.get(seq)



class LiveClients:
    """The live connections of one app by Socket.IO sid (kept in ``app.extensions``)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._fps = config["LIVE_MAX_FPS"]
        self._corrections_per_minute = config["LIVE_CORRECTIONS_PER_MINUTE"]
        self._clients: dict[str, LiveClient] = {}
        self._lock = threading.Lock()

    def add(self, sid: str) -> None:
        """Start the budgets of a new connection."""
        client = LiveClient(frames=TokenBucket(self._fps, self._fps),
                            corrections=TokenBucket(self._corrections_per_minute / 60, 3))
        with self._lock:
            self._clients[sid] = client

    def remove(self, sid: str) -> None:
        """Forget a closed connection."""
        with self._lock:
            self._clients.pop(sid, None)

    def get(self, sid: str) -> LiveClient:
        """The state of a connection, or NotConnected."""
        with self._lock:
            client = self._clients.get(sid)
        if client is None:
            raise NotConnected("this live connection is closed; reconnect to go on")
        return client

    def __len__(self) -> int:
        """How many live connections are open."""
        return len(self._clients)


def clients() -> LiveClients:
    """The current app's live connections."""
    return current_app.extensions["emotion_lens.live"]


def connect(sid: str) -> None:
    """Register a new live connection."""
    clients().add(sid)


def disconnect(sid: str) -> None:
    """Drop a closed live connection's state."""
    clients().remove(sid)


def checked_jpeg(data: Any) -> bytes:
    """The frame as bytes if it is a JPEG within the size limit, else BadFrame with a specific code."""
    if not isinstance(data, (bytes, bytearray)):
        raise BadFrame("send each frame as binary JPEG bytes (an ArrayBuffer), not text or JSON")
    limit = current_app.config["LIVE_MAX_FRAME_BYTES"]
    if len(data) > limit:
        raise BadFrame(f"the frame is {len(data):,} bytes; the limit is {limit:,}", code="too_large")
    if not data.startswith(_JPEG_MAGIC):
        raise BadFrame("frames must be JPEG (canvas.toBlob(..., 'image/jpeg'))", code="not_jpeg")
    return bytes(data)


def analyse_frame(sid: str, data: Any) -> dict[str, Any]:
    """Check and analyse one webcam JPEG; answers the API's face shape plus track ids, seq and timings."""
    client = clients().get(sid)
    seq = next(client.seq)
    if not client.frames.take():
        # Each refusal costs the server little, but a client that keeps flooding after many refusals is not a
        # camera page waiting for acks: cut it off instead of answering every frame.
        client.refused += 1
        if client.refused > current_app.config["LIVE_MAX_REFUSED_FRAMES"]:
            raise Flooding("this connection sent far more frames than allowed and is closed; reconnect and "
                           "send each frame after the previous answer")
        raise RateLimited(f"more than {current_app.config['LIVE_MAX_FPS']} frames a second; "
                          "send the next frame when the previous answer arrives")
    jpeg = checked_jpeg(data)
    if not client.slot.enter():
        return {"seq": seq, "dropped": True}
    try:
        started = time.perf_counter()
        # Inside the slot, so tracks and the detection schedule see this client's frames in order.
        hints = client.schedule.hints(client.tracker.current_boxes())
        result = inference.analyze(jpeg, "live", want_crops=True, hints=hints)
        client.schedule.update(hints, len(result.faces), result.signature)
        tracks = client.tracker.assign([face.box for face in result.faces])
    finally:
        client.slot.leave()
    client.remember(seq, result)
    timings = {**result.timings_ms, "server": round((time.perf_counter() - started) * 1000, 2)}
    numbers = analyses.reading_order([face.box for face in result.faces])  # as the photo pages number faces
    return {"seq": seq, "width": result.width, "height": result.height,
            "model": {"name": result.model.name, "version": result.model.version},
            "faces": [face_json(i, face.box, face.emotions, number=number, track=track)
                      for i, (face, number, track) in enumerate(zip(result.faces, numbers, tracks))],
            "search": "follow" if hints else "full", "timings_ms": timings}


def _checked_choices(payload: Any) -> tuple[int, list[tuple[int, str]], bool]:
    """(frame seq, [(face index, emotion)], consent) from a correction payload, or InvalidInput."""
    if not isinstance(payload, dict):
        raise InvalidInput('send {"seq": frame number, "faces": [{"index", "emotion"}], "consent_crop"}')
    seq, faces, consent = payload.get("seq"), payload.get("faces"), payload.get("consent_crop", False)
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise InvalidInput("seq must be the number of the frame whose answer you correct")
    if not isinstance(faces, list) or not faces or not isinstance(consent, bool):
        raise InvalidInput("faces must be a non-empty list and consent_crop true or false")
    choices = []
    for face in faces:
        index, emotion = (face.get("index"), face.get("emotion")) if isinstance(face, dict) else (None, None)
        if isinstance(index, bool) or not isinstance(index, int) or not isinstance(emotion, str):
            raise InvalidInput("each face needs an integer index and an emotion name")
        choices.append((index, emotion))
    return seq, choices, consent


def store_correction(sid: str, payload: Any) -> dict[str, Any]:
    """Store the answer the visitor saw for a frame, and their corrections (the face crop only with consent)."""
    client = clients().get(sid)
    if not client.corrections.take():
        raise RateLimited("too many corrections in a minute; wait a moment")
    seq, choices, consent = _checked_choices(payload)
    result = client.recalled(seq)
    if result is None:
        raise Conflict("that frame's answer is no longer kept; freeze the picture again and choose",
                       code="frame_expired")
    if any(not 0 <= index < len(result.faces) for index, _ in choices):
        raise Conflict("the faces in this frame changed; choose again", code="frame_changed")
    outcome = analyses.store_analysis(result, "camera")
    analysis_id, token = outcome.analysis.id, outcome.delete_token
    try:
        corrections = [analyses.add_correction(analysis_id, index, emotion, consent, token)
                       for index, emotion in choices]
    except AppError:
        analyses.delete_analysis(analysis_id, token)  # all or nothing: no half-corrected analysis stays
        raise
    return {"analysis_id": analysis_id, "delete_token": token,
            "url": url_for("photo.analysis", analysis_id=analysis_id),
            "corrections": [correction_dict(correction) for correction in corrections]}
