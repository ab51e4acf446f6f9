"""The model worker and the remote predictor, in this process, against the machine's real Redis with fake models."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from model_server import errors
from model_server.api import AnalysisRequest, Predictor
from model_server.remote import QueueKeys, RemotePredictor, connect
from model_server.serve import Worker
from model_server.wire import decode_result, encode_request
from topology_helpers import REDIS_URL, PacedPredictor, drop_queue, queue_name, redis_client, wait_until
from web_helpers import image_bytes

pytestmark = pytest.mark.redis


@pytest.fixture
def keys():
    """A fresh queue prefix in the test Redis database, deleted afterwards."""
    client = redis_client()
    prefix = queue_name()
    yield QueueKeys(prefix)
    drop_queue(client, prefix)
    client.close()


class RunningWorker:
    """A Worker on a background thread; stop() stops it the way SIGTERM does."""

    def __init__(self, keys: QueueKeys, predictor=None, name: str = "w1", **options) -> None:
        self.predictor = predictor or PacedPredictor()
        self.worker = Worker(connect(REDIS_URL), self.predictor, name, keys, **options)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop reading, answer what is held, withdraw the heartbeat."""
        self.worker.stop()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


@pytest.fixture
def start_worker(keys):
    """Start workers on the test queue; all are stopped at the end."""
    started: list[RunningWorker] = []

    def start(predictor=None, name: str = "w1", **options) -> RunningWorker:
        started.append(RunningWorker(keys, predictor, name, **options))
        return started[-1]

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()


@pytest.fixture
def remote(keys):
    """The remote predictor on the test queue."""
    predictor = RemotePredictor(connect(REDIS_URL, socket_timeout=15), keys)
    yield predictor
    predictor.close()


def request(deadline_s: float = 5.0, **fields) -> AnalysisRequest:
    fields.setdefault("image", image_bytes(fmt="JPEG", seed=fields.pop("seed", 0)))
    return AnalysisRequest(deadline=time.time() + deadline_s, **fields)


def wait_ready(remote: RemotePredictor, timeout_s: float = 3.0) -> None:
    assert wait_until(remote.ready, timeout_s), "no worker heartbeat appeared"


def test_a_worker_answers_as_the_model_would_in_process(start_worker, remote):
    running = start_worker()
    wait_ready(remote)
    assert isinstance(remote, Predictor) and remote.runs_locally is False
    sent = request(want_crops=True, want_jpeg=True, mode="live")
    got = remote.analyze(sent)
    expected = PacedPredictor().analyze(sent)
    assert got.faces[0].probabilities == expected.faces[0].probabilities
    assert got.faces[0].box == expected.faces[0].box and np.array_equal(got.faces[0].crop, expected.faces[0].crop)
    assert got.jpeg == expected.jpeg and got.model == running.predictor.info
    assert remote.info.name == "fake" and remote.info.version == "fake-1"


def test_concurrent_callers_each_get_their_own_answer(start_worker, remote):
    start_worker(PacedPredictor(delay_ms=20), threads=4, batch=8)
    wait_ready(remote)
    images = [image_bytes(fmt="PNG", value=value) for value in range(0, 240, 15)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda data: remote.analyze(request(image=data)), images))
    expected = [PacedPredictor().analyze(AnalysisRequest(data)).faces[0].probabilities for data in images]
    assert [answer.faces[0].probabilities for answer in answers] == expected


def test_an_error_answers_its_job_and_the_worker_lives_on(start_worker, remote):
    start_worker()
    wait_ready(remote)
    with pytest.raises(errors.UnsupportedImageError):
        remote.analyze(request(image=b"not an image at all"))
    with pytest.raises(errors.CorruptImageError):
        remote.analyze(request(image=image_bytes(fmt="PNG")[:200]))
    assert len(remote.analyze(request()).faces) == 1


def test_an_unexpected_failure_is_answered_generically(start_worker, remote):
    class Exploding(PacedPredictor):
        def analyze(self, request):
            raise RuntimeError("internal detail /secret/path")

    start_worker(Exploding())
    wait_ready(remote)
    with pytest.raises(errors.AnalysisError) as raised:
        remote.analyze(request())
    assert type(raised.value) is errors.AnalysisError and "secret" not in raised.value.message


def test_without_a_worker_callers_are_refused_at_once(remote):
    started = time.perf_counter()
    assert remote.ready() is False
    with pytest.raises(errors.ModelUnavailableError):
        remote.analyze(request())
    assert time.perf_counter() - started < 1.0


def test_service_stops_with_the_last_worker_and_comes_back_with_a_new_one(start_worker, remote):
    first = start_worker(name="first")
    wait_ready(remote)
    remote.analyze(request())
    first.stop()  # SIGTERM's path: the heartbeat is withdrawn at once
    assert wait_until(lambda: not remote.ready(), 1.0)
    started = time.perf_counter()
    with pytest.raises(errors.ModelUnavailableError):
        remote.analyze(request())
    assert time.perf_counter() - started < 1.0
    start_worker(name="second")
    wait_ready(remote)
    assert len(remote.analyze(request()).faces) == 1


def test_a_slow_tier_answers_busy_by_the_deadline(start_worker, remote):
    start_worker(PacedPredictor(delay_ms=600), threads=1, batch=1)
    wait_ready(remote)
    started = time.perf_counter()
    with pytest.raises(errors.ModelBusyError):
        remote.analyze(request(deadline_s=0.3))
    assert 0.25 < time.perf_counter() - started < 0.6


def test_a_job_past_its_deadline_is_not_analysed(keys, start_worker, remote):
    running = start_worker(PacedPredictor(delay_ms=300), threads=1, batch=1)
    wait_ready(remote)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(remote.analyze, request(deadline_s=2.0))
        time.sleep(0.05)
        # Queued behind a 300 ms job with 100 ms to live: the worker reads it after its deadline.
        second = pool.submit(remote.analyze, request(deadline_s=0.1, seed=1))
        assert len(first.result().faces) == 1
        with pytest.raises(errors.ModelBusyError):
            second.result()
    assert wait_until(lambda: running.worker.answered == 2, 2.0)
    assert running.predictor.calls == 1


def _abandon_job(keys: QueueKeys, deadline_s: float, consumer: str = "crashed") -> str:
    """A job read by a worker that then died: it stays pending under that worker's name."""
    client = connect(REDIS_URL)
    client.xgroup_create(keys.stream, keys.group, id="0", mkstream=True)
    reply = keys.reply("abandoned")
    client.xadd(keys.stream, {"reply": reply, "deadline": repr(time.time() + deadline_s),
                              "body": encode_request(request())})
    assert client.xreadgroup(keys.group, consumer, {keys.stream: ">"}, count=1)
    client.close()
    return reply


def test_a_live_worker_takes_over_jobs_a_crashed_one_left_pending(keys, start_worker):
    reply = _abandon_job(keys, deadline_s=5.0)
    running = start_worker(claim_idle_ms=200)
    client = connect(REDIS_URL)
    answer = client.blpop([reply], timeout=3)
    assert answer is not None and len(decode_result(answer[1]).faces) == 1
    assert running.predictor.calls == 1
    assert wait_until(lambda: client.xpending(keys.stream, keys.group)["pending"] == 0, 1.0)
    client.close()


def test_a_pending_job_past_its_deadline_is_acknowledged_but_not_analysed(keys, start_worker):
    reply = _abandon_job(keys, deadline_s=0.2)
    time.sleep(0.3)
    running = start_worker(claim_idle_ms=200)
    client = connect(REDIS_URL)
    answer = client.blpop([reply], timeout=3)
    with pytest.raises(errors.ModelBusyError):
        decode_result(answer[1])
    assert running.predictor.calls == 0
    assert wait_until(lambda: client.xpending(keys.stream, keys.group)["pending"] == 0, 1.0)
    client.close()


def test_the_stream_keeps_no_answered_jobs_and_is_capped(keys, start_worker, remote):
    running = start_worker()
    wait_ready(remote)
    for seed in range(5):
        remote.analyze(request(seed=seed))
    client = connect(REDIS_URL)
    assert client.xlen(keys.stream) == 0
    running.stop()
    # A worker that looks alive but reads nothing: the cap (approximate: whole 100-entry nodes) bounds the backlog.
    client.set(keys.heartbeat("stalled"), '{"model": {"name": "fake", "version": "1", "labels": []}}', ex=30)
    client.sadd(keys.workers, "stalled")
    capped = RemotePredictor(connect(REDIS_URL), keys, max_queue=100)
    def unanswered(_):
        with pytest.raises(errors.ModelBusyError):
            capped.analyze(request(deadline_s=0.002, image=b"x"))

    # Redis checks blocking timeouts about every 100 ms, so the 300 waits overlap.
    with ThreadPoolExecutor(60) as pool:
        list(pool.map(unanswered, range(300)))
    assert 100 <= client.xlen(keys.stream) <= 200
    capped.close()
    client.close()


def test_without_redis_callers_are_refused_at_once():
    unreachable = RemotePredictor(connect("redis://127.0.0.1:1/0"), QueueKeys(queue_name()))
    started = time.perf_counter()
    assert unreachable.ready() is False and unreachable.info.name == "remote"
    with pytest.raises(errors.ModelUnavailableError):
        unreachable.analyze(request())
    assert time.perf_counter() - started < 1.0
    unreachable.close()


def test_a_worker_does_not_take_over_its_own_slow_job(start_worker, remote):
    running = start_worker(PacedPredictor(delay_ms=700), claim_idle_ms=200)
    wait_ready(remote)
    assert len(remote.analyze(request()).faces) == 1
    time.sleep(0.3)
    assert running.predictor.calls == 1


def test_a_stopping_worker_answers_the_jobs_in_its_hands(keys, start_worker, remote):
    running = start_worker(PacedPredictor(delay_ms=500))
    wait_ready(remote)
    client = connect(REDIS_URL)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(remote.analyze, request())
        # The worker has read the job (it is pending in the group) and is analysing it.
        assert wait_until(lambda: client.xpending(keys.stream, keys.group)["pending"] == 1, 1.0)
        running.stop()  # SIGTERM's path
        assert len(pending.result(timeout=5).faces) == 1
    client.close()
