"""Video clips to timelines: frame sampling, face tracks, /api/v1/videos (upload, status, CSV, cancel) and the CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from model_server import video
from model_server.api import Box, FaceResult, ImageAnalysis, ModelInfo
from model_server.labels import EMOTIONS
from test_model_tier_web import redis_prefix  # noqa: F401 - a key prefix in the test Redis (skips without Redis)
from web_helpers import REAL_PREDICTOR, image_bytes

REPO = Path(__file__).resolve().parent.parent


def make_clip(path: Path, seconds: float = 3.0, fps: int = 10, size: tuple[int, int] = (480, 360)) -> Path:
    """An MP4 (mp4v) of the scikit-image astronaut's face drifting right across a grey frame."""
    from skimage.data import astronaut

    width, height = size
    face = np.asarray(Image.fromarray(astronaut()).resize((300, 300), Image.BILINEAR))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), "this OpenCV build cannot write MP4 (mp4v)"
    for number in range(int(seconds * fps)):
        frame = np.full((height, width, 3), 90, np.uint8)
        x = 40 + 2 * number
        frame[30:330, x:x + 300] = face
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "astronaut.mp4")


# --- the library ----------------------------------------------------------------------------------------------

def test_frames_are_sampled_at_the_chosen_rate(clip):
    info = video.probe(clip)
    assert (info.fps, info.frames, info.width, info.height) == (10.0, 30, 480, 360) and info.duration == 3.0
    times = [t for t, _ in video.sample_frames(clip, fps=2)]
    assert times == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    _, first = next(video.sample_frames(clip, fps=1))
    assert first.shape == (360, 480, 3) and first.dtype == np.uint8
    with pytest.raises(video.VideoTooLongError):
        list(video.sample_frames(clip, fps=2, max_seconds=1.0))


def test_unreadable_files_are_refused(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    with pytest.raises(video.VideoError) as caught:
        video.probe(junk)
    assert caught.value.code == "invalid_video"


def analysis(*faces: tuple[Box, int]) -> ImageAnalysis:
    """An analysis whose faces are sure of one emotion each (by index)."""
    results = tuple(FaceResult(box, box, tuple(0.94 if i == top else 0.01 for i in range(7))) for box, top in faces)
    return ImageAnalysis(width=640, height=480, faces=results, model=ModelInfo("toy", "toy-1"))


def test_timeline_follows_faces_and_picks_each_tracks_dominant_emotion():
    timeline = video.Timeline()
    left, right = Box(10, 10, 100, 100), Box(400, 10, 100, 100)
    timeline.add(0.0, analysis((left, 3), (right, 0)))
    timeline.add(0.5, analysis((Box(30, 12, 100, 100), 3), (Box(380, 10, 100, 100), 4)))
    timeline.add(1.0, analysis((Box(395, 12, 100, 100), 0)))  # only the right face, listed first
    result = timeline.as_dict()
    assert result["frames"] == 3 and result["labels"] == list(EMOTIONS)
    first, second = result["tracks"]
    assert [s["t"] for s in first["samples"]] == [0.0, 0.5] and first["dominant"] == "happy"
    assert [s["t"] for s in second["samples"]] == [0.0, 0.5, 1.0] and second["dominant"] == "angry"
    assert second["samples"][2]["box"] == {"x": 395, "y": 12, "w": 100, "h": 100}
    rows = list(csv.DictReader(io.StringIO(video.timeline_csv({**result}))))
    assert len(rows) == 5 and list(rows[0]) == [*video.CSV_FIELDS, *EMOTIONS, "top"]
    assert rows[0]["top"] == "happy" and float(rows[0]["happy"]) == pytest.approx(0.94)


def test_progress_is_a_share_of_the_clip_or_the_seconds_read_when_its_length_is_unknown(clip, monkeypatch):
    from fakes import FakePredictor

    reports = []
    video.analyse_video(clip, FakePredictor(), fps=2, progress=lambda share, seconds: reports.append((share, seconds)))
    assert reports == [(t / 3.0, t) for t in (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)]
    # Browser-recorded WebM often has no frame count: no share can be given, but the seconds still advance.
    known = video.probe(clip)
    monkeypatch.setattr(video, "probe", lambda path: video.VideoInfo(known.fps, 0, known.width, known.height))
    reports.clear()
    result = video.analyse_video(clip, FakePredictor(), fps=2,
                                 progress=lambda share, seconds: reports.append((share, seconds)))
    assert reports == [(None, t) for t in (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)] and result["duration"] == 2.5


def test_the_video_modules_never_import_torch(clip):
    """Only the engine a caller hands in may bring torch; the sampling, tracking and data-set code do not."""
    code = ("import sys; from fakes import FakePredictor; from model_server import video; "
            "import model_server.training.video_data, webapp.video.service, webapp.rooms.service; "
            f"result = video.analyse_video({str(clip)!r}, FakePredictor(), fps=1); "
            "assert len(result['tracks']) == 1; assert 'torch' not in sys.modules, 'torch was imported'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


# --- the API ----------------------------------------------------------------------------------------------------

def post_clip(client, data: bytes, filename: str = "clip.mp4", **fields):
    return client.post("/api/v1/videos", data={"video": (io.BytesIO(data), filename), **fields},
                       content_type="multipart/form-data")


def wait_done(client, status_url: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(status_url).get_json()
        if body["status"] not in ("queued", "running"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"the job did not finish: {body}")


def test_upload_gives_a_job_whose_result_is_a_timeline(client, clip):
    answer = post_clip(client, clip.read_bytes(), fps="2")
    assert answer.status_code == 202
    body = answer.get_json()
    assert body["status_url"] == f"/api/v1/videos/{body['id']}" and answer.headers["Location"] == body["status_url"]
    done = wait_done(client, body["status_url"])
    assert done["status"] == "done" and done["progress"] == 1.0 and done["error"] is None
    assert done["seconds_analysed"] == 3.0
    result = done["result"]
    assert result["duration"] == 3.0 and result["frames"] == 6 and result["model"]["name"] == "fake"
    [track] = result["tracks"]  # the fake model finds one face in the centre of every frame
    assert set(track) == {"id", "dominant", "emoji", "samples"}
    assert [s["t"] for s in track["samples"]] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert all(set(s) == {"t", "box", "emotions"} and list(s["emotions"]) == list(EMOTIONS) for s in track["samples"])
    # The page for the job (reload-proof: the id is in the URL) and the CSV of the same samples.
    page = client.get(body["page_url"]).get_data(as_text=True)
    assert f'data-job="{body["id"]}"' in page
    csrf_token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    exported = client.get(body["status_url"] + "?format=csv")
    assert exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert len(rows) == 6 and {row["track"] for row in rows} == {str(track["id"])}
    assert float(rows[2]["t"]) == 1.0 and rows[2]["top"] == max(track["samples"][2]["emotions"],
                                                                 key=track["samples"][2]["emotions"].get)
    # The page's session cookie now rides along, so a delete needs the page's CSRF token, like the page's script.
    assert client.delete(body["status_url"]).status_code == 400
    assert client.delete(body["status_url"], headers={"X-CSRFToken": csrf_token}).status_code == 204
    assert client.get(body["status_url"]).status_code == 404


@pytest.mark.parametrize(("suffix", "fourcc"), [(".webm", "VP80"), (".mov", "mp4v")])
def test_webm_and_mov_clips_are_accepted(client, tmp_path, suffix, fourcc):
    path = tmp_path / f"clip{suffix}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (128, 96))
    for number in range(20):
        writer.write(np.full((96, 128, 3), 10 * number, np.uint8))
    writer.release()
    done = wait_done(client, post_clip(client, path.read_bytes(), path.name).get_json()["status_url"])
    assert done["status"] == "done" and done["result"]["frames"] == 4 and done["result"]["duration"] == 2.0


def test_the_clip_file_is_deleted_when_the_job_ends(client, clip):
    before = set(Path(tempfile.gettempdir()).glob("clip-*"))
    body = post_clip(client, clip.read_bytes(), fps="1").get_json()
    wait_done(client, body["status_url"])
    deadline = time.monotonic() + 5
    while set(Path(tempfile.gettempdir()).glob("clip-*")) - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert set(Path(tempfile.gettempdir()).glob("clip-*")) - before == set()


@pytest.mark.parametrize(("data", "filename", "status", "code"), [
    (image_bytes(), "clip.mp4", 415, "unsupported_video"),
    (b"\x1a\x45\xdf\xa3" + b"\x00" * 64, "clip.mp4", 415, "unsupported_video"),  # WebM bytes, MP4 name
    (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, "clip.avi", 415, "unsupported_video"),
    (b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8, "clip.mp4", 422, "invalid_video"),
])
def test_bad_uploads_are_refused(client, data, filename, status, code):
    answer = post_clip(client, data, filename)
    assert (answer.status_code, answer.get_json()["error"]) == (status, code)


def test_missing_field_fps_and_mode_are_checked(client, clip):
    assert client.post("/api/v1/videos", data={}).get_json()["error"] == "missing_video"
    assert post_clip(client, clip.read_bytes(), fps="0").status_code == 422
    assert post_clip(client, clip.read_bytes(), fps="many").status_code == 422
    assert post_clip(client, clip.read_bytes(), mode="slow").status_code == 422


@pytest.fixture(params=["memory", "redis"])
def board(request):
    """Every API test runs with the job board in memory and in Redis (skipped without Redis)."""
    if request.param == "memory":
        return {}
    from topology_helpers import REDIS_URL

    return {"VIDEO_STORE_URL": REDIS_URL, "VIDEO_STORE_PREFIX": request.getfixturevalue("redis_prefix") + ":"}


@pytest.fixture
def app_config(app_config, request, board):
    """The board's settings, and limits low enough for the test clip to exceed them when a test asks."""
    return {**app_config, **board, **getattr(request, "param", {})}


@pytest.mark.parametrize("app_config", [{"VIDEO_MAX_BYTES": 10_000}], indirect=True)
def test_size_limit(client, clip):
    answer = post_clip(client, clip.read_bytes())
    assert (answer.status_code, answer.get_json()["error"]) == (413, "video_too_large")


@pytest.mark.parametrize("app_config", [{"MAX_CONTENT_LENGTH": 10_000}], indirect=True)
def test_a_browser_may_upload_a_video_larger_than_a_photo(client, clip):
    # With the page's session cookie the CSRF check reads the form first; the video cap must already apply.
    page = client.get("/video").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    answer = client.post("/api/v1/videos", data={"video": (io.BytesIO(clip.read_bytes()), "clip.mp4")},
                         headers={"X-CSRFToken": token}, content_type="multipart/form-data")
    assert len(clip.read_bytes()) > 10_000 and answer.status_code == 202, answer.get_json()
    assert post_clip(client, clip.read_bytes()).status_code == 400  # the cookie without the token: CSRF refused
    assert client.post("/api/v1/predict", data={"image": (io.BytesIO(clip.read_bytes()), "x.png")},
                       headers={"X-CSRFToken": token}).status_code == 413  # photos keep their own cap


@pytest.mark.parametrize("app_config", [{"VIDEO_MAX_RESULTS": 1}], indirect=True)
def test_only_the_newest_results_are_kept(client, clip, board):
    if board:
        pytest.skip("Redis keeps results for VIDEO_RESULT_SECONDS and bounds memory by its own policy")
    first = post_clip(client, clip.read_bytes(), fps="1").get_json()["status_url"]
    wait_done(client, first)
    second = post_clip(client, clip.read_bytes(), fps="1").get_json()["status_url"]
    assert wait_done(client, second)["status"] == "done"
    assert client.get(first).status_code == 404  # the older result made way


@pytest.mark.parametrize("app_config", [{"VIDEO_MAX_SECONDS": 2.0}], indirect=True)
def test_length_limit(client, clip):
    answer = post_clip(client, clip.read_bytes())
    assert (answer.status_code, answer.get_json()["error"]) == (422, "video_too_long")


def test_csv_before_the_end_is_a_conflict_and_delete_cancels(client, clip, app):
    state = app.extensions["emotion_lens.inference"]
    fake, started = state.predictor, []

    class Slow:
        """The fake model, slowly: a running job can be caught mid-way."""

        info, runs_locally = fake.info, True

        def analyze(self, request):
            started.append(time.monotonic())
            time.sleep(0.2)
            return fake.analyze(request)

    state.predictor = Slow()
    body = post_clip(client, clip.read_bytes(), fps="10").get_json()  # 30 frames: 6 s at this pace
    deadline = time.monotonic() + 10
    while not started and time.monotonic() < deadline:
        time.sleep(0.02)
    running = client.get(body["status_url"]).get_json()
    assert running["status"] == "running" and running["result"] is None
    assert client.get(body["status_url"] + "?format=csv").get_json()["error"] == "not_ready"
    assert client.delete(body["status_url"]).status_code == 204
    time.sleep(0.5)
    calls = len(started)
    time.sleep(0.5)
    assert len(started) == calls < 30, "the worker stops at the next frame after a cancel"
    assert client.get(body["status_url"]).status_code == 404
    state.predictor = fake


def test_the_job_runs_in_a_real_thread_not_the_request(client, clip, app):
    import threading

    body = post_clip(client, clip.read_bytes(), fps="1").get_json()
    wait_done(client, body["status_url"])
    names = [thread.name for thread in threading.enumerate()]
    assert "video-0" in names


class RemoteLike:
    """A predictor that says it is remote (like the Redis one): frames must reach it as JPEG bytes."""

    runs_locally = False
    built: list["RemoteLike"] = []

    def __init__(self) -> None:
        from fakes import FakePredictor

        self.fake, self.info, self.images = FakePredictor(), FakePredictor().info, []
        RemoteLike.built.append(self)

    def analyze(self, request):
        self.images.append(request.image)
        return self.fake.analyze(request)

    def ready(self) -> bool:
        return True

    def close(self) -> None:
        pass


def create_remote_like(**_options) -> RemoteLike:
    """Factory named by the test below (tests/ is on sys.path)."""
    return RemoteLike()


@pytest.mark.parametrize("app_config", [{"PREDICTOR": "test_video:create_remote_like"}], indirect=True)
def test_a_remote_model_gets_jpeg_frames_from_the_workers_own_predictor(client, clip, app):
    web = app.extensions["emotion_lens.inference"].predictor  # the one requests use, built with the app
    RemoteLike.built.clear()
    done = wait_done(client, post_clip(client, clip.read_bytes(), fps="2").get_json()["status_url"])
    assert done["status"] == "done" and len(done["result"]["tracks"][0]["samples"]) == 6
    [worker] = RemoteLike.built  # the worker thread's own, built in that thread
    assert web.images == [] and len(worker.images) == 6
    assert all(isinstance(image, bytes) and image.startswith(b"\xff\xd8") for image in worker.images)


def test_any_web_process_answers_for_a_job_in_redis(app_config, redis_prefix, clip):
    """Two apps (as two processes would be) on one Redis board: upload to one, ask and cancel on the other."""
    from fakes import FakePredictor
    from topology_helpers import REDIS_URL
    from webapp import create_app
    from webapp.inference import close_predictor

    shared = {"VIDEO_STORE_URL": REDIS_URL, "VIDEO_STORE_PREFIX": redis_prefix + ":v:"}
    first, second = create_app({**app_config, **shared}), create_app({**app_config, **shared})
    try:
        taker, other = first.test_client(), second.test_client()
        done = wait_done(other, post_clip(taker, clip.read_bytes(), fps="2").get_json()["status_url"])
        assert done["status"] == "done" and len(done["result"]["tracks"][0]["samples"]) == 6
        # A slow job on the first process, cancelled through the second: the worker stops at the next frame.
        fake, calls = first.extensions["emotion_lens.inference"].predictor, []

        class Slow(FakePredictor):
            def analyze(self, request):
                calls.append(1)
                time.sleep(0.2)
                return fake.analyze(request)

        first.extensions["emotion_lens.inference"].predictor = Slow()
        status_url = post_clip(taker, clip.read_bytes(), fps="10").get_json()["status_url"]
        deadline = time.monotonic() + 10
        while other.get(status_url).get_json()["status"] != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert other.delete(status_url).status_code == 204
        time.sleep(0.5)
        seen = len(calls)
        time.sleep(0.5)
        assert len(calls) == seen < 30 and taker.get(status_url).status_code == 404
    finally:
        for each in (first, second):
            each.extensions["emotion_lens.video"].close()
            close_predictor(each)
            each.extensions["emotion_lens.db"].engine.dispose()


def test_openapi_describes_the_video_routes(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"post"} <= set(paths["/api/v1/videos"]) and {"get", "delete"} <= set(paths["/api/v1/videos/{id}"])


# --- with the shipped model -------------------------------------------------------------------------------------

@pytest.mark.parametrize("app_config", [{"PREDICTOR": REAL_PREDICTOR}], indirect=True)
def test_api_with_the_real_model_reads_the_astronaut_as_happy(client, clip):
    body = post_clip(client, clip.read_bytes(), fps="2").get_json()
    done = wait_done(client, body["status_url"])
    [track] = done["result"]["tracks"]
    assert track["dominant"] == "happy" and len(track["samples"]) == 6
    # The face drifts right, and its box follows.
    xs = [sample["box"]["x"] for sample in track["samples"]]
    assert xs == sorted(xs) and xs[-1] - xs[0] > 30


def test_cli_prints_the_timeline_as_json_and_csv(clip):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-m", "model_server.video", str(clip), "--fps", "2"],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["clip"] == str(clip) and result["frames"] == 6 and result["duration"] == 3.0
    [track] = result["tracks"]
    assert track["dominant"] == "happy" and track["emoji"] == "\U0001F604"
    assert [s["t"] for s in track["samples"]] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    run = subprocess.run([sys.executable, "-m", "model_server.video", str(clip), "--fps", "1", "--csv"],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert [row["t"] for row in rows] == ["0.0", "1.0", "2.0"] and {row["top"] for row in rows} == {"happy"}
    missing = subprocess.run([sys.executable, "-m", "model_server.video", str(clip.with_name("none.mp4"))],
                             capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert missing.returncode == 1 and "could not be read" in missing.stderr
