"""Helpers for the model-tier tests: the machine's Redis (skipped with a reason when absent) and paced fakes."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from fakes import FakePredictor

# A Redis database of its own, so these tests never meet another program's keys; each test adds its own prefix.
REDIS_URL = os.environ.get("EMO_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")
PACED_SPEC = "topology_helpers:create_paced_predictor"  # tests/ is on the worker's PYTHONPATH


def redis_client():
    """A client for REDIS_URL, or a skip that says how to get one."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1.0)
    try:
        client.ping()
    except redis.RedisError as error:
        client.close()
        pytest.skip(f"needs Redis at {REDIS_URL} (apt-get install redis-server, or set EMO_TEST_REDIS_URL): {error}")
    return client


def queue_name() -> str:
    """A key prefix no other test run uses."""
    return f"test-{uuid.uuid4().hex[:10]}"


def drop_queue(client, prefix: str) -> None:
    """Delete every key a test's queue left behind."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


class PacedPredictor(FakePredictor):
    """The fake predictor that takes ``delay_ms`` per image, as a real model would on a busy CPU."""

    runs_locally = True

    def __init__(self, delay_ms: float = 0.0) -> None:
        super().__init__()
        self.delay_s = float(delay_ms) / 1000

    def analyze(self, request):
        """Wait, then answer like FakePredictor."""
        time.sleep(self.delay_s)
        return super().analyze(request)


def create_paced_predictor(delay_ms: float = 0.0, **_settings) -> PacedPredictor:
    """Factory named by PACED_SPEC; ``--set delay_ms=50`` on the worker's command line slows it."""
    return PacedPredictor(delay_ms)


def wait_until(condition, timeout_s: float, every_s: float = 0.02) -> bool:
    """Poll ``condition`` until it is true or ``timeout_s`` passed; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return bool(condition())
