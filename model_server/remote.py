"""The model tier as a remote service: jobs go to model workers (``python -m model_server.serve``) through Redis.

A web process XADDs each request to one Redis Stream that every worker reads through a consumer group, then
waits on its own reply key (BLPOP) until the request's deadline. Waiting is a socket read, so under eventlet it
is a green wait and costs no OS thread. Workers publish a heartbeat key with a short TTL; with none alive the
caller is refused at once instead of waiting out a deadline nobody can meet.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import redis

from .api import AnalysisRequest, ImageAnalysis, ModelInfo
from .errors import ModelBusyError, ModelUnavailableError
from .wire import decode_result, encode_request

# A request without its own deadline (a CLI, a test) waits this long, like the web app's photo deadline.
DEFAULT_TIMEOUT_S = 10.0
# Jobs the stream keeps at most (XADD MAXLEN ~): a stalled tier cannot fill Redis; the oldest jobs, whose
# callers have given up by then, are trimmed first.
DEFAULT_MAX_QUEUE = 1000
# How long a "some worker is alive" answer is trusted: a live client sends ~30 frames/s, and one Redis round
# trip per frame just to look for workers would double the queue's load.
HEARTBEAT_CACHE_S = 0.5
UNKNOWN_MODEL = ModelInfo(name="remote", version="unknown")


@dataclass(frozen=True)
class QueueKeys:
    """Where the model tier keeps its jobs, consumer group, heartbeats and replies in one Redis database."""

    prefix: str = "emo"

    @property
    def stream(self) -> str:
        """The job stream every web process writes and every worker reads."""
        return f"{self.prefix}:jobs"

    @property
    def group(self) -> str:
        """The consumer group the workers share (each job goes to one of them)."""
        return f"{self.prefix}:workers"

    @property
    def workers(self) -> str:
        """A set of worker names; each one's heartbeat key says whether it is still alive."""
        return f"{self.prefix}:worker-names"

    def heartbeat(self, name: str) -> str:
        """A worker's heartbeat key: its description, expiring unless refreshed."""
        return f"{self.prefix}:worker:{name}"

    def reply(self, request_id: str) -> str:
        """The list one caller BLPOPs for its answer."""
        return f"{self.prefix}:reply:{request_id}"


def connect(url: str, **options: Any) -> redis.Redis:
    """A Redis client for ``redis://HOST:PORT/DB`` that connects on first use (nothing happens at construction)."""
    options.setdefault("socket_connect_timeout", 1.0)
    return redis.Redis.from_url(url, **options)


def live_workers(client: redis.Redis, keys: QueueKeys) -> dict[str, dict[str, Any]]:
    """Name → published description of every worker whose heartbeat has not expired."""
    names = sorted(name.decode() for name in client.smembers(keys.workers))
    if not names:
        return {}
    values = client.mget([keys.heartbeat(name) for name in names])
    return {name: json.loads(value) for name, value in zip(names, values) if value is not None}


def model_info(description: dict[str, Any]) -> ModelInfo:
    """The ModelInfo a worker publishes in its heartbeat."""
    model = description["model"]
    return ModelInfo(name=model["name"], version=model["version"], labels=tuple(model["labels"]),
                     metrics=model.get("metrics", {}))


class RemotePredictor:
    """Implements model_server.api.Predictor by handing each request to a model worker through Redis."""

    runs_locally = False

    def __init__(self, client: redis.Redis, keys: QueueKeys, default_timeout: float = DEFAULT_TIMEOUT_S,
                 max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self._redis, self.keys = client, keys
        self.default_timeout, self.max_queue = default_timeout, max_queue
        self._info = UNKNOWN_MODEL
        self._seen_at = -HEARTBEAT_CACHE_S  # monotonic time of the last heartbeat look-up
        self._alive = False
        self._lock = threading.Lock()

    @property
    def info(self) -> ModelInfo:
        """The model the workers serve, as their heartbeat says (the last one seen, or a placeholder before any)."""
        self.ready()
        return self._info

    def ready(self) -> bool:
        """True when some worker's heartbeat is fresh."""
        try:
            return self._check_workers()
        except redis.RedisError:
            return False

    def analyze(self, request: AnalysisRequest) -> ImageAnalysis:
        """Queue the request for a worker and wait for its answer until the request's deadline."""
        try:
            if not self._check_workers():
                raise ModelUnavailableError("no model worker is running; try again later")
            deadline = request.deadline if request.deadline is not None else time.time() + self.default_timeout
            remaining = deadline - time.time()
            if remaining <= 0:
                raise ModelBusyError("the request waited past its deadline; try again")
            reply = self.keys.reply(uuid.uuid4().hex)
            self._redis.xadd(self.keys.stream, {"reply": reply, "deadline": repr(deadline),
                                                "body": encode_request(request)},
                             maxlen=self.max_queue, approximate=True)
            # BLPOP's timeout 0 means "forever", so never pass less than a millisecond.
            answer = self._redis.blpop([reply], timeout=max(remaining, 0.001))
        except redis.RedisError as error:
            self._forget_workers()
            raise ModelUnavailableError("the model queue cannot be reached; try again later") from error
        if answer is None:
            raise ModelBusyError("the model did not answer in time; try again in a moment")
        return decode_result(answer[1])

    def close(self) -> None:
        """Close the connections to Redis."""
        self._redis.close()

    def _check_workers(self) -> bool:
        """Whether a worker is alive, looked up at most every HEARTBEAT_CACHE_S; remembers the model it serves."""
        now = time.monotonic()
        if now - self._seen_at < HEARTBEAT_CACHE_S:
            return self._alive
        with self._lock:
            if now - self._seen_at >= HEARTBEAT_CACHE_S:
                workers = live_workers(self._redis, self.keys)
                if workers:
                    self._info = model_info(workers[min(workers)])
                self._alive, self._seen_at = bool(workers), time.monotonic()
        return self._alive

    def _forget_workers(self) -> None:
        """After a Redis error, look again on the next call instead of trusting the cache."""
        self._seen_at = -HEARTBEAT_CACHE_S


def split_queue(url: str, queue: str = "emo") -> tuple[str, str]:
    """``redis://HOST:PORT/DB?queue=NAME`` → (the Redis URL, the queue's key prefix); one URL names a model tier."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    queue = query.pop("queue", [queue])[-1]
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True))), queue


def create_remote_predictor(url: str, queue: str = "emo", default_timeout: float = DEFAULT_TIMEOUT_S,
                            max_queue: int = DEFAULT_MAX_QUEUE, **_settings: Any) -> RemotePredictor:
    """The remote Predictor for ``redis://HOST:PORT/DB[?queue=NAME]`` (the workers' ``--redis`` and ``--queue``).

    A wait on the reply is bounded by the request's deadline, so the socket timeout only guards a Redis that
    stopped answering; it must exceed the longest deadline a caller sets (the web app's is 10 s for photos).
    """
    url, queue = split_queue(url, queue)
    client = connect(url, socket_timeout=max(float(default_timeout), 30.0) + 1.0, health_check_interval=30)
    return RemotePredictor(client, QueueKeys(queue), default_timeout=float(default_timeout),
                           max_queue=int(max_queue))
