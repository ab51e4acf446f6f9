"""The deployment on this machine: 2 model workers and 2 gunicorn eventlet web processes on Redis and PostgreSQL.

Workers run the torch-free paced fake (tests/topology_helpers.py), so the tests measure the plumbing, not the
model. The fault tests run last in this file, each leaving the topology whole again.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import requests
import socketio

from deploy.topology import FAKE_PREDICTOR, NGINX, Topology, services_missing
from web_helpers import image_bytes

pytestmark = [pytest.mark.topology, pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

# Workers take over a dead worker's jobs after 0.5 s, within a live frame's 1 s deadline.
WORKER_ARGS = ("--set", "delay_ms=15", "--claim-idle-ms", "500", "--threads", "4", "--batch", "8")
WEB_ENV = {"EMO_PREDICT_RATE_LIMIT": "10000 per minute", "EMO_FEEDBACK_RATE_LIMIT": "10000 per minute"}
FRAME = image_bytes(320, 240, fmt="JPEG", seed=3)


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    """The topology for this module (skipped with the reason when Redis or PostgreSQL is missing)."""
    reason = services_missing()
    if reason:
        pytest.skip(reason)
    with Topology(tmp_path_factory.mktemp("topology"), predictor=FAKE_PREDICTOR, worker_args=WORKER_ARGS,
                  web_env=WEB_ENV) as running:
        yield running


def predict(url: str, timeout: float = 10) -> requests.Response:
    """A photo through one web process (a new connection each time, so a balancer picks a process each time)."""
    return requests.post(f"{url}/api/v1/predict", files={"image": ("face.jpg", FRAME)}, timeout=timeout)


def correct(url: str, analysis: dict, emotion: str = "happy") -> requests.Response:
    """The owner's correction of face 0, with consent to keep its crop."""
    return requests.post(f"{url}/api/v1/feedback", headers={"X-Delete-Token": analysis["delete_token"]}, timeout=10,
                         json={"analysis_id": analysis["id"], "face_index": 0, "emotion": emotion,
                               "consent_crop": True})


def live_client(url: str) -> socketio.Client:
    """A Socket.IO client on /live over WebSocket that reconnects quickly."""
    client = socketio.Client(reconnection_delay=0.1, reconnection_delay_max=0.5)
    client.connect(url, namespaces=["/live"], transports=["websocket"], wait_timeout=10)
    return client


class Stream(threading.Thread):
    """One webcam: sends the next frame when the previous answer arrived; records (sent at, answer or error)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = live_client(url)
        self.stop_event = threading.Event()
        self.log: list[tuple[float, float, str]] = []  # (sent, answered, "ok" or an error code)

    def run(self) -> None:
        """Stream until stopped; a call that fails while reconnecting counts as an error."""
        while not self.stop_event.is_set():
            sent = time.monotonic()
            try:
                # A live answer comes within its 1 s deadline or not at all; the Python client, unlike the browser's,
                # does not fail a call whose connection dropped, so a short timeout stands in for that.
                answer = self.client.call("frame", FRAME, namespace="/live", timeout=2)
                outcome = "ok" if answer.get("faces") else answer.get("error", "dropped")
            except (socketio.exceptions.SocketIOError, OSError) as error:
                outcome = type(error).__name__
                time.sleep(0.05)
            self.log.append((sent, time.monotonic(), outcome))
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop streaming and disconnect."""
        self.stop_event.set()
        self.join(timeout=10)
        self.client.disconnect()

    def errors_after(self, moment: float) -> list[tuple[float, float, str]]:
        """Failed frames sent after ``moment``."""
        return [entry for entry in self.log if entry[0] > moment and entry[2] != "ok"]

    def answered_after(self, moment: float) -> int:
        """Frames answered with faces among those sent after ``moment``."""
        return sum(1 for sent, _, outcome in self.log if sent > moment and outcome == "ok")


class Corrector(threading.Thread):
    """Photos and corrections through the balancer in a loop; remembers every correction acknowledged (201)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop_event, self.acknowledged = url, threading.Event(), []

    def run(self) -> None:
        """Predict, then correct the face, until stopped; failures (a process was killed) are retried."""
        while not self.stop_event.is_set():
            try:
                analysis = predict(self.url, timeout=5)
                if analysis.status_code == 200:
                    answer = correct(self.url, analysis.json())
                    if answer.status_code == 201:
                        self.acknowledged.append(answer.json()["id"])
            except requests.RequestException:
                pass
            time.sleep(0.05)

    def stop(self) -> list[int]:
        """Stop and return the acknowledged correction ids."""
        self.stop_event.set()
        self.join(timeout=15)
        return self.acknowledged


def assert_all_stored(topology: Topology, acknowledged: list[int]) -> None:
    stored = {row[0] for row in topology.query("SELECT id FROM corrections")}
    assert acknowledged and set(acknowledged) <= stored, sorted(set(acknowledged) - stored)


def test_every_web_process_analyses_a_photo_and_stores_a_correction_in_postgresql(topology):
    for here, there in ((0, 1), (1, 0)):
        analysis = predict(topology.urls[here])
        assert analysis.status_code == 200, analysis.text
        assert analysis.json()["model"]["name"] == "fake" and len(analysis.json()["faces"]) == 1
        # The correction goes to the other process: the database and the crop cache are shared.
        answer = correct(topology.urls[there], analysis.json())
        assert answer.status_code == 201, answer.text
        assert answer.json()["crop_stored"] is True
        rows = topology.query(f"SELECT c.emotion, c.crop_path FROM corrections c JOIN faces f ON f.id = c.face_id "
                              f"WHERE f.analysis_id = '{analysis.json()['id']}'")
        assert len(rows) == 1 and rows[0][0] == "happy" and rows[0][1]


def test_rate_limits_live_in_redis(topology):
    import redis

    client = redis.Redis.from_url(topology.redis_url)
    assert any(b"predict" in key for key in client.scan_iter(match="LIMIT*", count=1000))
    client.close()


def test_every_web_process_streams_live(topology):
    for url in topology.urls:
        client = live_client(url)
        try:
            answers = [client.call("frame", FRAME, namespace="/live", timeout=5) for _ in range(10)]
        finally:
            client.disconnect()
        assert all(len(answer["faces"]) == 1 for answer in answers), answers[-1]
        assert [answer["seq"] for answer in answers] == sorted(answer["seq"] for answer in answers)


def test_an_event_through_the_message_queue_reaches_clients_of_both_processes(topology):
    received: dict[int, list] = {0: [], 1: []}
    clients = []
    for index, url in enumerate(topology.urls):
        client = socketio.Client()
        client.on("notice", received[index].append, namespace="/live")
        client.connect(url, namespaces=["/live"], transports=["websocket"])
        clients.append(client)
    try:
        # A third process emits through Redis (as a background job would); each web process delivers it to
        # its own client, addressed by sid, so the event crosses processes both ways.
        emitter = socketio.RedisManager(topology.redis_url, channel=f"{topology.queue}-socketio", write_only=True)
        for index, client in enumerate(clients):
            emitter.emit("notice", {"to": index}, namespace="/live", room=client.get_sid("/live"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(received.values()):
            time.sleep(0.05)
    finally:
        for client in clients:
            client.disconnect()
    assert received == {0: [{"to": 0}], 1: [{"to": 1}]}


def test_the_threaded_web_tier_serves_photos_and_websocket_streams(tmp_path):
    """gunicorn -k gthread with simple-websocket, for deployers on a gunicorn without the eventlet worker."""
    reason = services_missing()
    if reason:
        pytest.skip(reason)
    with Topology(tmp_path, workers=1, web=1, predictor=FAKE_PREDICTOR, web_env=WEB_ENV,
                  gunicorn_args=("-k", "gthread", "--threads", "16")) as threaded:
        assert "Using worker: gthread" in threaded.log_tail("web1")
        assert predict(threaded.urls[0]).status_code == 200
        client = live_client(threaded.urls[0])
        try:
            assert client.transport() == "websocket"
            answers = [client.call("frame", FRAME, namespace="/live", timeout=5) for _ in range(5)]
        finally:
            client.disconnect()
        assert all(len(answer["faces"]) == 1 for answer in answers)


@pytest.mark.skipif(not os.path.exists(NGINX), reason=f"{NGINX} is missing (apt-get install nginx-light)")
def test_nginx_example_serves_photos_and_streams_and_moves_clients_off_a_killed_process(topology):
    url = topology.start_nginx()
    predictions = [topology.log_tail(f"web{index + 1}", 10**9).count("POST /api/v1/predict") for index in (0, 1)]
    assert predict(url).status_code == 200
    # ip_hash sends this machine's address to one process; its access log shows which.
    holder = next(index for index in (0, 1)
                  if topology.log_tail(f"web{index + 1}", 10**9).count("POST /api/v1/predict") > predictions[index])
    # A browser's Origin carries the port: nginx must pass the Host with it, or Socket.IO refuses the page.
    # (Polling here: the WebSocket client adds an Origin of its own, and two Origins are refused.)
    browser = socketio.Client()
    browser.connect(url, namespaces=["/live"], transports=["polling"], headers={"Origin": url}, wait_timeout=5)
    browser.disconnect()
    client = live_client(url)
    try:
        assert len(client.call("frame", FRAME, namespace="/live", timeout=5)["faces"]) == 1
        topology.signal(topology.web[holder], signal.SIGKILL)
        killed_at, answered = time.monotonic(), None
        while time.monotonic() - killed_at < 10 and answered is None:
            try:
                answer = client.call("frame", FRAME, namespace="/live", timeout=2)
                answered = time.monotonic() if answer.get("faces") else None
            except (socketio.exceptions.SocketIOError, OSError):
                time.sleep(0.1)
        assert answered is not None and answered - killed_at < 5.0
        assert predict(url).status_code == 200  # the balancer skips the dead process for HTTP too
    finally:
        client.disconnect()
        topology.start_web(holder)
        topology.wait_ready(holder)


def test_killing_one_of_two_model_workers_mid_stream(topology):
    streams = [Stream(url) for url in topology.urls * 2]
    corrector = Corrector(topology.balanced_url)
    for thread in (*streams, corrector):
        thread.start()
    time.sleep(1.5)
    killed_at = time.monotonic()
    topology.signal(topology.workers["worker1"], signal.SIGKILL)
    time.sleep(3.0)
    for stream in streams:
        stream.stop()
    assert_all_stored(topology, corrector.stop())
    topology.start_worker("worker1")
    errors = [entry for stream in streams for entry in stream.errors_after(killed_at - 1.0)]
    assert len(errors) <= len(streams), errors  # at most the frames that were in the dead worker's hands
    assert all(stream.errors_after(killed_at + 1.0) == [] for stream in streams), errors
    # Streams go on (a loaded 2-core machine still answers several frames a second per client).
    assert all(stream.answered_after(killed_at + 1.0) >= 5 for stream in streams), \
        [stream.answered_after(killed_at + 1.0) for stream in streams]


def test_with_every_model_worker_stopped_visitors_are_refused_at_once_and_service_recovers(topology):
    for process in topology.workers.values():
        topology.signal(process, signal.SIGTERM)
    time.sleep(0.6)  # the web processes' cached "a worker is alive" answer is 0.5 s old at most
    for url in topology.urls:
        started = time.monotonic()
        answer = predict(url)
        assert answer.status_code == 503 and answer.json()["error"] == "model_unavailable"
        client = live_client(url)
        try:
            ack = client.call("frame", FRAME, namespace="/live", timeout=5)
        finally:
            client.disconnect()
        assert ack["error"] == "model_unavailable"
        assert time.monotonic() - started < 1.0
        assert requests.get(f"{url}/livez", timeout=2).status_code == 200
        assert requests.get(f"{url}/readyz", timeout=2).status_code == 503
    for name in topology.worker_names:
        topology.start_worker(name)
    for index in range(len(topology.urls)):
        topology.wait_ready(index, timeout_s=30)
    assert all(predict(url).status_code == 200 for url in topology.urls)


def test_killing_a_web_process_moves_its_clients_to_the_other(topology):
    streams = [Stream(topology.balanced_url) for _ in range(4)]  # the balancer spreads them over both
    corrector = Corrector(topology.balanced_url)
    for thread in (*streams, corrector):
        thread.start()
    time.sleep(1.0)
    killed_at = time.monotonic()
    topology.signal(topology.web[1], signal.SIGKILL)
    time.sleep(5.0)
    for stream in streams:
        stream.stop()
    acknowledged = corrector.stop()
    topology.start_web(1)
    topology.wait_ready(1)
    assert_all_stored(topology, acknowledged)
    # Every client answers again within a few seconds of the kill (the frame in flight at the kill times out
    # after 2 s; the client has reconnected through the balancer by then).
    assert all(stream.answered_after(killed_at + 2.5) >= 5 for stream in streams), \
        [stream.answered_after(killed_at + 2.5) for stream in streams]
    assert all(stream.errors_after(killed_at + 2.5) == [] for stream in streams)
