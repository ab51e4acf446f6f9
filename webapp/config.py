"""Configuration: class defaults, then ``EMO_*`` environment variables, then a test override dict."""

from __future__ import annotations

import typing
from typing import Any, Mapping


class Config:
    """Every knob of the web app in one place; each can be set by ``EMO_<NAME>`` in the environment."""

    SECRET_KEY: str | None = None  # None: a random key is created once and kept in instance/secret_key
    # None: SQLite file in the instance folder. DATABASE_URL (no prefix) is honoured too, as hosts set it.
    DATABASE_URL: str | None = None
    DATABASE_SCHEMA: str | None = None  # PostgreSQL schema to use (tests use a throwaway one)
    MEDIA_DIR: str | None = None  # None: instance/media; consented crops and kept photos, named by sha256

    PREDICTOR: str = "model_server.serving.engine:create_engine"  # "module:factory", imported at start-up only
    # In-process model settings (model_server/serving/config.py ServingConfig fields, e.g. device, checkpoint,
    # live_detect_max_side); each can be set as EMO_SERVING_<FIELD> in the environment.
    SERVING: dict = {}
    # redis://HOST:PORT/DB: use the model worker tier (python -m model_server.serve) instead of an in-process model.
    # A "?queue=NAME" suffix picks the workers started with --queue NAME (default "emo").
    MODEL_URL: str | None = None
    # Seconds a request waits for its analysis before the visitor gets 503: photos may queue behind others;
    # a live frame older than this is stale (the next one is already on its way).
    PHOTO_DEADLINE: float = 10.0
    LIVE_DEADLINE: float = 1.0
    LAZY_MODEL: bool = False  # True: load the model on first use instead of in create_app
    ASYNC_MODE: str | None = None  # None: eventlet when the process is monkey-patched, else threading
    INFERENCE_MAX_PENDING: int = 8  # analyses waiting or running at once; more get 503 instead of queueing
    INFERENCE_QUEUE_TIMEOUT: float = 10.0  # seconds a request may wait for a free inference slot

    MAX_CONTENT_LENGTH: int = 16 * 1024 * 1024  # bytes per request; a phone photo is 3-12 MB
    URL_FETCH_TIMEOUT: float = 5.0  # seconds for the whole fetch of an image URL
    URL_FETCH_MAX_BYTES: int = 10 * 1024 * 1024
    URL_FETCH_MAX_REDIRECTS: int = 3
    URL_FETCH_ALLOW_LOOPBACK: bool = False  # tests only: lets a test serve images from 127.0.0.1

    # Consent to keep a face crop can arrive a little after the upload, so crops wait in memory this long.
    IMAGE_CACHE_SECONDS: int = 600
    IMAGE_CACHE_MAX_BYTES: int = 64 * 1024 * 1024
    # redis://HOST:PORT/DB: keep those crops in Redis, so consent sent to any web process finds them (several
    # processes behind a balancer); None keeps them in this process's memory.
    CROP_CACHE_URL: str | None = None

    RATELIMIT_STORAGE_URI: str = "memory://"  # e.g. redis://localhost:6379 when several workers share limits
    RATELIMIT_ENABLED: bool = True
    PREDICT_RATE_LIMIT: str = "30 per minute"
    FEEDBACK_RATE_LIMIT: str = "60 per minute"
    # e.g. https://emotions.example.org: absolute links in API answers use it instead of the request's Host.
    PUBLIC_BASE_URL: str | None = None
    PROXY_FIX_HOPS: int = 0  # proxies in front of the app whose X-Forwarded-For is trusted (rate limits)

    # Live webcam (/live): a 480 px JPEG at quality 0.7 is ~30 KB, so 512 KB leaves room for a 1080p camera.
    LIVE_MAX_FRAME_BYTES: int = 512 * 1024
    LIVE_MAX_FPS: int = 30  # per connection (token bucket, one second of burst); the browser paces by ack anyway
    # Frames refused for going over LIVE_MAX_FPS before the connection is closed: an honest page paced by acks
    # is never refused more than a handful of times, a flood of 300 frames/s reaches this in a fraction of a second.
    LIVE_MAX_REFUSED_FRAMES: int = 60
    LIVE_CORRECTIONS_PER_MINUTE: int = 20  # each one re-analyses the frame and writes rows
    # Socket.IO engine cap, also eventlet's WebSocket frame cap: bigger messages close the connection before
    # they are buffered. It sits just above LIVE_MAX_FRAME_BYTES (frames in between get a polite "too_large");
    # at 1 MB a flood of oversized frames still cost a full read each (issue 9). /live uses WebSocket only,
    # so no base64 polling overhead needs room.
    SOCKETIO_MAX_MESSAGE_BYTES: int = 576 * 1024
    SOCKETIO_ALLOWED_ORIGINS: str | None = None  # None: same origin only; else an origin (or a list in tests)
    # redis://HOST:PORT/DB shared by several web processes: an event emitted in one reaches clients of the others.
    # Needs sticky sessions at the balancer (a Socket.IO connection must stay on its process).
    SOCKETIO_MESSAGE_QUEUE: str | None = None
    SOCKETIO_CHANNEL: str = "flask-socketio"  # Redis pub/sub ignores the DB number; sites sharing a Redis differ here
    LOG_JSON: bool = False  # one JSON object per log line (for log collectors) instead of plain text

    # Emoji rooms (/rooms/).
    ROOM_MAX_PARTICIPANTS: int = 12  # a tile grid people can still read at a glance
    ROOM_MAX_FPS: int = 4  # results per second per participant: an emoji needs no webcam rate
    ROOM_MAX_ROOMS: int = 200  # rooms per store; each holds at most a few minutes of sums
    ROOM_NAME_MAX: int = 40
    ROOM_RECONNECT_SECONDS: int = 30  # a dropped participant keeps their tile (shown as away) this long
    ROOM_HOST_GRACE_SECONDS: int = 600  # a room whose host stays away this long closes
    ROOM_MOOD_MINUTES: int = 5  # the host's mood strip covers this many minutes
    ROOM_CREATE_RATE_LIMIT: str = "20 per hour"
    # redis://HOST:PORT/DB shared by several web processes (with SOCKETIO_MESSAGE_QUEUE): every process sees
    # the same rooms; None keeps rooms in this process's memory.
    ROOM_STORE_URL: str | None = None
    ROOM_STORE_PREFIX: str = "emo:rooms:"  # Redis key prefix: sites sharing one Redis differ here

    # Video files (/video, POST /api/v1/videos).
    VIDEO_MAX_BYTES: int = 100 * 1024 * 1024  # a minute of 1080p phone video is ~100 MB
    VIDEO_MAX_SECONDS: float = 300.0  # at 2 samples a second that is 600 analyses, about a minute of CPU
    VIDEO_DEFAULT_FPS: float = 2.0  # samples a second: two looks follow a changing expression
    VIDEO_WORKERS: int = 1  # clips are analysed one at a time, so photos and live frames keep most of the model
    VIDEO_MAX_JOBS: int = 8  # queued plus running; more uploads get 503 instead of waiting for hours
    VIDEO_RESULT_SECONDS: int = 3600  # a finished timeline stays this long, so a reloaded page still finds it
    VIDEO_MAX_RESULTS: int = 200  # finished timelines kept at most in memory (the oldest go first)
    VIDEO_RATE_LIMIT: str = "10 per hour"
    # redis://HOST:PORT/DB shared by several web processes: any of them answers status and cancel requests
    # for any job (the clip is still analysed by the process that took it); None keeps jobs in memory.
    VIDEO_STORE_URL: str | None = None
    VIDEO_STORE_PREFIX: str = "emo:videos:"

    SESSION_COOKIE_SAMESITE: str = "Lax"
    WTF_CSRF_TIME_LIMIT: int | None = None  # the token lives as long as the session; pages stay open for hours


def _parse(name: str, raw: str, annotation: Any) -> Any:
    """Convert an environment string to the setting's annotated type; empty means None where None is allowed."""
    kinds = typing.get_args(annotation) or (annotation,)
    if not raw.strip() and type(None) in kinds:
        return None
    if bool in kinds:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    for kind in (int, float):
        if kind in kinds:
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"EMO_{name} must be {'an integer' if kind is int else 'a number'}, "
                                 f"got {raw!r}") from None
    return raw


def load_config(environ: Mapping[str, str], test_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Resolve the configuration: class defaults, then EMO_* variables, then the test dict."""
    config = {name: getattr(Config, name) for name in dir(Config) if name.isupper()}
    if environ.get("DATABASE_URL"):
        config["DATABASE_URL"] = environ["DATABASE_URL"]
    annotations = typing.get_type_hints(Config)
    for name in list(config):
        if f"EMO_{name}" in environ:
            config[name] = _parse(name, environ[f"EMO_{name}"], annotations[name])
    serving = {key[len("EMO_SERVING_"):].lower(): value for key, value in environ.items()
               if key.startswith("EMO_SERVING_")}
    config["SERVING"] = {**serving, **config["SERVING"]}
    config.update(test_config or {})
    return config

