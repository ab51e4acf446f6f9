"""The live stream on the real server (python -m webapp, eventlet): slow inference never stalls other clients."""

from __future__ import annotations

import threading
import time

import pytest
import requests
import socketio

from benchmarks.bench_upload import free_port, start_server, wait_healthy
from web_helpers import image_bytes
from fakes_live import SLOW_SECONDS, SLOW_SPEC

pytestmark = pytest.mark.slow
FAST_ENOUGH_S = 0.3  # what client B may wait while client A's frame blocks an OS thread for SLOW_SECONDS


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    """A real eventlet server whose predictor blocks for SLOW_SECONDS on one-colour frames."""
    port = free_port()
    server = start_server(port, tmp_path_factory.mktemp("live_server"), SLOW_SPEC)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server, timeout_s=60)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def connect(url: str, **options) -> socketio.Client:
    """A Socket.IO client on /live."""
    client = socketio.Client()
    client.connect(url, namespaces=["/live"], **options)
    return client


def test_a_slow_frame_does_not_stall_other_clients(server_url):
    slow_client, fast_client = connect(server_url, transports=["websocket"]), connect(server_url,
                                                                                      transports=["websocket"])
    slow_answer = {}

    def send_slow_frame():
        started = time.perf_counter()
        slow_answer.update(slow_client.call("frame", image_bytes(fmt="JPEG", value=128), namespace="/live",
                                            timeout=30), seconds=time.perf_counter() - started)

    try:
        slow = threading.Thread(target=send_slow_frame)
        slow.start()
        time.sleep(0.3)  # client A's frame is now blocking an inference thread
        waits = []
        for seed in range(5):
            started = time.perf_counter()
            answer = fast_client.call("frame", image_bytes(fmt="JPEG", seed=seed), namespace="/live", timeout=5)
            waits.append(time.perf_counter() - started)
            assert len(answer["faces"]) == 1
            started = time.perf_counter()
            assert requests.get(f"{server_url}/api/v1/health", timeout=5).status_code == 200
            waits.append(time.perf_counter() - started)
        assert slow.is_alive(), "the slow frame should still be in flight while B was answered"
        assert max(waits) < FAST_ENOUGH_S, waits
        slow.join(timeout=30)
        assert slow_answer["seconds"] >= SLOW_SECONDS and len(slow_answer["faces"]) == 1
    finally:
        slow_client.disconnect()
        fast_client.disconnect()


def test_a_foreign_origin_is_refused(server_url):
    with pytest.raises(socketio.exceptions.ConnectionError):
        connect(server_url, headers={"Origin": "https://evil.example"}, transports=["polling"])
    same_origin = connect(server_url, headers={"Origin": server_url}, transports=["polling"])
    assert same_origin.connected
    same_origin.disconnect()
