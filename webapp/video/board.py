"""Where video jobs' status lives: this process's memory, or Redis so any web process can answer for any job.

A record is the status answer itself (``{id, status, progress, seconds_analysed, fps, mode, result, error}``)
plus when it finished. The clip and its worker stay in the process that took the upload; a cancel sent to another
process reaches that worker through a flag it checks before each frame.
"""

from __future__ import annotations

import json
import time
from typing import Any

# Real OS-thread primitives: worker threads and the event loop's thread both use the board.
from model_server.serving.concurrency import threading

RUNNING_TTL_S = 24 * 3600  # a running job's record outlives any clip; a process that died leaves no key forever


class MemoryJobBoard:
    """Records in a dict: one web process. Finished ones go after ``keep_s`` or beyond ``max_results``."""

    def __init__(self, keep_s: float, max_results: int) -> None:
        self.keep_s, self.max_results = keep_s, max_results
        self._records: dict[str, dict[str, Any]] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()  # held for dict updates only

    def put(self, record: dict[str, Any]) -> None:
        """Write a job's record (unless it was cancelled meanwhile)."""
        with self._lock:
            if record["id"] not in self._cancelled:
                self._records[record["id"]] = dict(record)
                self._expire()

    def get(self, job_id: str) -> dict[str, Any] | None:
        """A job's record, or None."""
        with self._lock:
            self._expire()
            record = self._records.get(job_id)
            return dict(record) if record else None

    def cancel(self, job_id: str) -> bool:
        """Forget a job and flag it for its worker; False when there was no such job."""
        with self._lock:
            self._cancelled.add(job_id)
            return self._records.pop(job_id, None) is not None

    def cancelled(self, job_id: str) -> bool:
        """True once the job was cancelled (from any request)."""
        with self._lock:
            return job_id in self._cancelled

    def _expire(self) -> None:
        finished = sorted((r for r in self._records.values() if r.get("finished")), key=lambda r: r["finished"])
        cutoff, excess = time.time() - self.keep_s, max(0, len(finished) - self.max_results)
        for number, record in enumerate(finished):
            if number < excess or record["finished"] < cutoff:
                del self._records[record["id"]]


class RedisJobBoard:
    """Records as JSON in Redis, so a status request or a cancel may reach any web process.

    Finished records expire after ``keep_s``. Each OS thread gets its own client: a worker thread must not
    share the event loop's green sockets under eventlet.
    """

    def __init__(self, url: str, keep_s: float, prefix: str = "emo:videos:") -> None:
        self.url, self.keep_s, self.prefix = url, keep_s, prefix
        self._local = threading.local()

    def _redis(self):
        client = getattr(self._local, "client", None)
        if client is None:
            import redis  # the optional ``serve`` extra; only deployments that configure Redis need it

            client = self._local.client = redis.Redis.from_url(self.url, socket_connect_timeout=1.0,
                                                               socket_timeout=2.0)
        return client

    def put(self, record: dict[str, Any]) -> None:
        """Write a job's record (unless it was cancelled meanwhile)."""
        key = f"{self.prefix}job:{record['id']}"
        if self.cancelled(record["id"]):
            return
        ttl = max(1, int(self.keep_s)) if record.get("finished") else RUNNING_TTL_S
        self._redis().set(key, json.dumps(record, separators=(",", ":")), ex=ttl)
        if self.cancelled(record["id"]):  # a cancel that came between the look and the write wins
            self._redis().delete(key)

    def get(self, job_id: str) -> dict[str, Any] | None:
        """A job's record, or None."""
        raw = self._redis().get(f"{self.prefix}job:{job_id}")
        return json.loads(raw) if raw is not None else None

    def cancel(self, job_id: str) -> bool:
        """Forget a job and flag it for its worker, wherever it runs; False when there was no such job."""
        pipe = self._redis().pipeline()
        pipe.set(f"{self.prefix}cancel:{job_id}", 1, ex=RUNNING_TTL_S)
        pipe.delete(f"{self.prefix}job:{job_id}")
        return bool(pipe.execute()[1])

    def cancelled(self, job_id: str) -> bool:
        """True once the job was cancelled (from any process)."""
        return bool(self._redis().exists(f"{self.prefix}cancel:{job_id}"))


def make_job_board(config: dict) -> MemoryJobBoard | RedisJobBoard:
    """Job records in Redis when VIDEO_STORE_URL names one (several web processes), else in memory."""
    if config.get("VIDEO_STORE_URL"):
        return RedisJobBoard(config["VIDEO_STORE_URL"], config["VIDEO_RESULT_SECONDS"], config["VIDEO_STORE_PREFIX"])
    return MemoryJobBoard(config["VIDEO_RESULT_SECONDS"], config["VIDEO_MAX_RESULTS"])
