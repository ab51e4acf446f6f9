"""The inference service: under eventlet the model runs in a real OS thread, never on the event loop."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from web_helpers import make_config, upload
from webapp import create_app

REPO = Path(__file__).resolve().parent.parent
# The child needs the project and the tests folder (fakes, web_helpers) on its path, like pytest has.
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}


def test_threading_mode_runs_the_model_directly(tmp_path):
    app = create_app(make_config(tmp_path))
    assert app.config["ASYNC_MODE"] == "threading"
    assert upload(app.test_client()).status_code == 200
    assert app.extensions["emotion_lens.inference"].predictor.calls == 1


def test_eventlet_mode_runs_the_model_in_an_os_thread():
    # A fresh interpreter, patched first like python -m webapp and gunicorn -k eventlet do.
    script = textwrap.dedent("""
        import eventlet
        eventlet.monkey_patch()
        import pathlib, tempfile
        from eventlet import patcher
        real_threading = patcher.original("threading")
        from web_helpers import make_config, upload
        from webapp import create_app

        config = make_config(pathlib.Path(tempfile.mkdtemp()))
        del config["ASYNC_MODE"]  # let the app see that it was patched
        app = create_app(config)
        assert app.config["ASYNC_MODE"] == "eventlet", app.config["ASYNC_MODE"]
        predictor = app.extensions["emotion_lens.inference"].predictor
        seen = []
        original = predictor.analyze
        predictor.analyze = lambda rgb, realtime=False: seen.append(real_threading.get_ident()) or original(rgb)
        assert upload(app.test_client()).status_code == 200
        assert seen and seen[0] != real_threading.get_ident(), "analyze ran on the event loop's thread"
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=CHILD_ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_too_many_waiting_analyses_get_503(tmp_path):
    app = create_app(make_config(tmp_path, INFERENCE_MAX_PENDING=1, INFERENCE_QUEUE_TIMEOUT=0.01))
    slots = app.extensions["emotion_lens.inference"].slots
    slots.acquire()  # one analysis "running"
    try:
        response = upload(app.test_client())
    finally:
        slots.release()
    assert response.status_code == 503 and response.get_json()["error"] == "busy"


def test_an_upload_is_one_off_loop_model_call_that_decodes_and_encodes(app, client, monkeypatch):
    from web_helpers import upload
    from webapp import inference as inference_module

    offloaded = []
    original = inference_module.run_off_loop

    def recording(function, *args):
        offloaded.append(function.__name__)
        return original(function, *args)

    monkeypatch.setattr(inference_module, "run_off_loop", recording)
    response = upload(client, query="?annotate=true&crops=true&keep_photo=true")
    assert response.status_code == 200
    # Decoding, annotating and re-encoding all happen inside the model tier's one call.
    assert offloaded == ["analyze"]
    [request] = app.extensions["emotion_lens.inference"].predictor.requests
    assert isinstance(request.image, bytes) and request.mode == "photo"
    assert request.want_annotated and request.want_jpeg and request.want_crops
