"""The web tier's side of the deployment: probes, the crop cache in Redis, the remote model, JSON logs."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from sqlalchemy import text

from deploy.topology import GUNICORN_CONF, REPO
from model_server.remote import QueueKeys, connect, split_queue
from model_server.serve import Worker
from topology_helpers import REDIS_URL, PacedPredictor, drop_queue, queue_name, redis_client, wait_until
from web_helpers import image_bytes, upload
from webapp.db import get_session
from webapp.image_cache import CropCache, RedisCropCache, make_crop_cache


def test_livez_answers_without_checking_anything(client):
    answer = client.get("/livez")
    assert answer.status_code == 200 and answer.get_json() == {"status": "ok"}


def test_readyz_checks_the_model_and_the_database(app, client):
    assert client.get("/readyz").get_json() == {"status": "ok", "model": True, "database": True}
    with app.app_context():
        get_session().execute(text("DROP TABLE analyses"))
        get_session().commit()
    answer = client.get("/readyz")
    assert answer.status_code == 503 and answer.get_json()["database"] is False


@pytest.fixture
def redis_prefix():
    """A key prefix of this test in the test Redis database, deleted afterwards."""
    client = redis_client()
    prefix = queue_name()
    yield prefix
    drop_queue(client, prefix)
    client.close()


@pytest.fixture(params=["memory", "redis"])
def make_cache(request):
    """Both crop caches, built the way the factory builds them, so one set of tests holds for both."""
    def make(max_bytes: int = 1 << 20, ttl_s: float = 60):
        if request.param == "memory":
            return CropCache(max_bytes, ttl_s)
        return RedisCropCache(REDIS_URL, max_bytes, ttl_s, prefix=f"{request.getfixturevalue('redis_prefix')}:crops:")

    return make


def crops(count: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(count)
    return [rng.integers(0, 256, size=(48, 48), dtype=np.uint8) for _ in range(count)]


def test_a_crop_cache_returns_what_was_put(make_cache):
    cache, kept = make_cache(), crops()
    cache.put("a1", kept)
    assert all(np.array_equal(cache.get("a1", index), crop) for index, crop in enumerate(kept))
    assert cache.get("a1", 2) is None and cache.get("a1", -1) is None and cache.get("other", 0) is None
    cache.discard("a1")
    assert cache.get("a1", 0) is None


def test_a_crop_cache_forgets_after_its_ttl(make_cache):
    cache = make_cache(ttl_s=1)
    cache.put("a1", crops())
    assert cache.get("a1", 0) is not None
    assert wait_until(lambda: cache.get("a1", 0) is None, 3.0, every_s=0.1)


def test_a_crop_cache_refuses_an_entry_beyond_its_budget(make_cache):
    cache = make_cache(max_bytes=48 * 48)
    cache.put("big", crops(2))
    assert cache.get("big", 0) is None


def test_the_redis_cache_is_chosen_by_config():
    assert isinstance(make_crop_cache({"CROP_CACHE_URL": None, "IMAGE_CACHE_MAX_BYTES": 1, "IMAGE_CACHE_SECONDS": 1}),
                      CropCache)
    assert isinstance(make_crop_cache({"CROP_CACHE_URL": REDIS_URL, "IMAGE_CACHE_MAX_BYTES": 1,
                                       "IMAGE_CACHE_SECONDS": 1}), RedisCropCache)


def test_the_queue_name_rides_in_the_model_url():
    assert split_queue("redis://h:6379/3?queue=gpu") == ("redis://h:6379/3", "gpu")
    assert split_queue("redis://h:6379/3") == ("redis://h:6379/3", "emo")


@pytest.fixture
def remote_config(app_config, redis_prefix):
    """The app on the remote model tier (a queue of its own), with crops in Redis."""
    app_config.update(MODEL_URL=f"{REDIS_URL}?queue={redis_prefix}", CROP_CACHE_URL=REDIS_URL,
                      WTF_CSRF_ENABLED=False)
    return app_config


@pytest.mark.redis
def test_a_web_process_without_model_workers_is_not_ready_and_answers_503_at_once(remote_config, client):
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").get_json()["model"] is False
    started = time.perf_counter()
    answer = upload(client)
    assert answer.status_code == 503 and answer.get_json()["error"] == "model_unavailable"
    assert time.perf_counter() - started < 1.0


@pytest.mark.redis
def test_a_photo_goes_through_a_model_worker(remote_config, redis_prefix, client):
    worker = Worker(connect(REDIS_URL), PacedPredictor(), "web-test", QueueKeys(redis_prefix))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: client.get("/readyz").status_code == 200, 3.0)
        answer = upload(client, image_bytes(fmt="JPEG"), filename="face.jpg")
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        assert body["model"]["name"] == "fake" and len(body["faces"]) == 1
        assert worker.predictor.calls == 1
    finally:
        worker.stop()
        thread.join(timeout=10)


@pytest.fixture
def restore_logging():
    """Put the root logger back as it was (JSON logs replace its handlers)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_logs_write_one_object_per_line(app_config, restore_logging):
    from webapp import create_app

    app = create_app({**app_config, "LOG_JSON": True})
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)
    try:
        raise ValueError("boom")
    except ValueError:
        app.logger.exception("something failed for %s", "abc")
    entry = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert entry["level"] == "ERROR" and entry["message"] == "something failed for abc"
    assert "ValueError: boom" in entry["exc"] and entry["logger"] == app.logger.name
    app.extensions["emotion_lens.db"].engine.dispose()


def test_gunicorn_refuses_more_than_one_worker_per_process(tmp_path):
    finished = subprocess.run([sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "-w", "2", "-b",
                               "127.0.0.1:0", "--chdir", str(REPO), "webapp:create_app()"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert finished.returncode != 0 and "use -w 1 (got 2)" in finished.stderr


def test_the_worker_command_explains_itself():
    finished = subprocess.run([sys.executable, "-m", "model_server.serve", "--help"], capture_output=True, text=True,
                              timeout=60)
    assert finished.returncode == 0
    assert all(flag in finished.stdout for flag in ("--redis", "--batch", "--wait-ms", "--threads", "--device"))
