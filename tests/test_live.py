"""The /live Socket.IO namespace: frames answered in the API's shape, limits, bad input, corrections."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from model_server.api import Box
from web_helpers import image_bytes, upload
from webapp import inference
from webapp.db import get_session
from webapp.extensions import socketio
from webapp.live.service import FaceTracker, NewestOnly, TokenBucket
from webapp.models import Analysis, Correction

NS = "/live"


@pytest.fixture
def live(app, client):
    """A Socket.IO test client connected to /live (events are handled synchronously)."""
    live = socketio.test_client(app, namespace=NS, flask_test_client=client)
    assert live.is_connected(NS)
    yield live
    if live.is_connected(NS):
        live.disconnect(namespace=NS)


def jpeg(value: int | None = 120, size: tuple[int, int] = (160, 120), seed: int = 0) -> bytes:
    """A JPEG frame: one colour, or noise when value is None."""
    return image_bytes(*size, fmt="JPEG", value=value, seed=seed)


def send(live, data):
    """Emit a frame and return its ack."""
    return live.emit("frame", data, namespace=NS, callback=True)


def errors(live) -> list[dict]:
    """The bodies of the ``error`` events received so far."""
    return [event["args"][0] for event in live.get_received(NS) if event["name"] == "error"]


def test_frame_is_answered_with_the_api_face_shape(live, client):
    frame = jpeg(value=90)
    answer = send(live, frame)
    assert answer["seq"] == 0 and (answer["width"], answer["height"]) == (160, 120)
    assert answer["model"] == {"name": "fake", "version": "fake-1"}
    # The model tier's own stage timings plus the server's whole time for the frame.
    assert answer["timings_ms"]["server"] >= answer["timings_ms"]["total"] >= 0
    [face] = answer["faces"]
    api_face = upload(client, frame, "frame.jpg").get_json()["faces"][0]
    # One serializer for both transports: the live face is the API face plus its track id.
    assert {key: value for key, value in face.items() if key != "track"} == api_face
    assert list(face) == list(api_face) + ["track"]


def test_frames_get_sequence_numbers_and_a_face_keeps_its_track(live):
    first, second = send(live, jpeg(value=90)), send(live, jpeg(value=200))
    assert (first["seq"], second["seq"]) == (0, 1)
    assert first["faces"][0]["track"] == second["faces"][0]["track"]
    assert first["faces"][0]["emotions"] != second["faces"][0]["emotions"]


def test_a_frame_without_a_face_is_an_empty_list(live):
    assert send(live, jpeg(size=(40, 40)))["faces"] == []


@pytest.fixture
def app_config(app_config):
    """Small limits so tests can exceed them cheaply."""
    return {**app_config, "LIVE_MAX_FRAME_BYTES": 20_000, "LIVE_MAX_FPS": 3}


def test_oversize_frame_gets_an_error_and_the_stream_goes_on(live):
    big = jpeg(value=None, size=(400, 400))
    assert len(big) > 20_000
    answer = send(live, big)
    assert answer["error"] == "too_large" and "20,000" in answer["message"]
    assert errors(live) == [answer]
    assert send(live, jpeg())["faces"]


@pytest.mark.parametrize(("payload", "code"), [
    (image_bytes(fmt="PNG", value=100), "not_jpeg"),
    (bytes(range(256)) * 4, "not_jpeg"),
    (b"\xff\xd8\xff" + b"garbage" * 50, "unsupported_image"),
    (image_bytes(fmt="JPEG")[:2000], "corrupt_image"),  # truncated on the way
    ("a text string, not bytes", "invalid_frame"),
    ({"image": "base64..."}, "invalid_frame"),
    (None, "invalid_frame"),
])
def test_non_jpeg_payloads_get_an_error_and_the_stream_goes_on(live, payload, code):
    answer = send(live, payload)
    assert answer["error"] == code and answer["message"]
    assert [body["error"] for body in errors(live)] == [code]
    assert send(live, jpeg())["faces"]


def test_frames_beyond_the_rate_limit_are_refused(live):
    answers = [send(live, jpeg()) for _ in range(4)]
    assert all("faces" in answer for answer in answers[:3])
    assert answers[3]["error"] == "rate_limited"
    assert errors(live) == []  # the ack says it; no error event per refused frame
    time.sleep(0.4)  # one token back after 1/3 s
    assert "faces" in send(live, jpeg())


def test_a_client_that_keeps_flooding_is_disconnected(app, live):
    app.config["LIVE_MAX_REFUSED_FRAMES"] = 5
    answers = [send(live, jpeg()) for _ in range(3 + 6)]
    assert answers[-1]["error"] == "flooding"
    assert not live.is_connected(NS)


def test_a_frame_event_with_the_wrong_arguments_is_refused_quietly(live, caplog):
    answer = live.emit("frame", jpeg(), b"extra", namespace=NS, callback=True)
    assert answer["error"] == "invalid_event"
    assert "Traceback" not in caplog.text and "unhandled" not in caplog.text
    assert "faces" in send(live, jpeg())


def test_unexpected_errors_are_logged_not_sent(live, monkeypatch, caplog):
    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(inference, "analyze", broken)
    answer = send(live, jpeg())
    assert answer["error"] == "internal_error" and "secret" not in answer["message"]
    assert "secret internal detail" in caplog.text


def test_disconnect_forgets_the_connection(app, live):
    assert len(app.extensions["emotion_lens.live"]) == 1
    live.disconnect(namespace=NS)
    assert len(app.extensions["emotion_lens.live"]) == 0


def correct(live, **payload):
    """Send a frame, then a correction of its answer; return the correction's ack."""
    seq = send(live, jpeg(value=90))["seq"]
    return live.emit("correction", {"seq": seq, "faces": [{"index": 0, "emotion": "sad"}],
                                    "consent_crop": False, **payload}, namespace=NS, callback=True)


def test_live_correction_stores_the_answer_the_visitor_saw_without_analysing_again(app, live):
    shown = send(live, jpeg(value=90))
    send(live, jpeg(value=200))  # the stream went on after the frame the visitor froze
    calls = app.extensions["emotion_lens.inference"].predictor.calls
    answer = live.emit("correction", {"seq": shown["seq"], "faces": [{"index": 0, "emotion": "sad"}],
                                      "consent_crop": False}, namespace=NS, callback=True)
    assert app.extensions["emotion_lens.inference"].predictor.calls == calls  # no second analysis
    with app.app_context():
        stored = get_session().get(Analysis, answer["analysis_id"])
        assert stored.faces[0].emotions == pytest.approx(shown["faces"][0]["emotions"])
        assert stored.faces[0].x == shown["faces"][0]["box"]["x"]


def test_live_correction_of_a_forgotten_frame_is_refused(live):
    send(live, jpeg(value=90))
    answer = live.emit("correction", {"seq": 999, "faces": [{"index": 0, "emotion": "sad"}]},
                       namespace=NS, callback=True)
    assert answer["error"] == "frame_expired"


def test_live_correction_stores_numbers_but_no_frame(app, live):
    answer = correct(live)
    assert answer["corrections"][0]["emotion"] == "sad" and not answer["corrections"][0]["crop_stored"]
    assert answer["url"].endswith(answer["analysis_id"]) and answer["delete_token"]
    with app.app_context():
        analysis = get_session().get(Analysis, answer["analysis_id"])
        assert analysis.source == "camera" and analysis.photo_path is None
        [correction] = get_session().scalars(select(Correction)).all()
        assert correction.face.analysis_id == analysis.id and correction.crop_path is None
    assert not [path for path in Path(app.config["MEDIA_DIR"]).rglob("*") if path.is_file()]  # no frame on disk


def test_live_correction_with_consent_keeps_only_the_crop(app, live):
    answer = correct(live, consent_crop=True)
    assert answer["corrections"][0]["crop_stored"]
    with app.app_context():
        [correction] = get_session().scalars(select(Correction)).all()
        assert correction.consent_crop and correction.crop_path.startswith("crops")
        assert get_session().get(Analysis, answer["analysis_id"]).photo_path is None


@pytest.mark.parametrize(("faces", "code"), [
    ([{"index": 3, "emotion": "sad"}], "frame_changed"),
    ([{"index": 0, "emotion": "bored"}], "invalid_emotion"),
    ([{"index": "0", "emotion": "sad"}], "invalid_request"),
    ([], "invalid_request"),
])
def test_bad_live_corrections_leave_nothing_behind(app, live, faces, code):
    assert correct(live, faces=faces)["error"] == code
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(Analysis)) == 0


def test_token_bucket_refills_at_its_rate():
    now = [0.0]
    bucket = TokenBucket(rate=2, burst=2, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    now[0] = 0.5
    assert [bucket.take(), bucket.take()] == [True, False]


def test_newest_only_drops_the_older_waiting_frame():
    slot, results = NewestOnly(), {}
    assert slot.enter()  # frame 1 is being analysed

    def waiter(name):
        results[name] = slot.enter()

    second = threading.Thread(target=waiter, args=("second",))
    second.start()
    time.sleep(0.05)
    third = threading.Thread(target=waiter, args=("third",))
    third.start()
    second.join(timeout=2)
    assert results == {"second": False}  # superseded while frame 1 was still running
    slot.leave()
    third.join(timeout=2)
    assert results["third"] is True


def test_tracker_follows_faces_by_overlap():
    tracker = FaceTracker()
    left, right = Box(10, 10, 50, 50), Box(200, 10, 50, 50)
    first = tracker.assign([left, right])
    assert tracker.assign([Box(205, 12, 50, 50), Box(14, 10, 50, 50)]) == first[::-1]
    assert tracker.assign([]) == []
    # A face missing for a frame keeps its id; a face elsewhere gets a new one.
    again = tracker.assign([Box(12, 10, 50, 50), Box(100, 100, 40, 40)])
    assert again[0] == first[0] and again[1] not in first


def test_live_page_links_the_vendored_client(client):
    page = client.get("/live")
    assert page.status_code == 200 and b"/vendor/socket.io.min.js" in page.data
    assert b'href="/live"' in client.get("/").data
