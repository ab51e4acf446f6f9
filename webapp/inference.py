"""The one way the web app reaches the model tier: one off-loop call per request, bounded waiting."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from flask import Flask, current_app

from model_server.api import AnalysisRequest, ImageAnalysis, Predictor, load_predictor

from .errors import ServiceUnavailable

T = TypeVar("T")
REMOTE_PREDICTOR = "model_server.remote:create_remote_predictor"


@dataclass
class InferenceState:
    """Per-app model state: the predictor (None until loaded) and the slots that bound waiting work."""

    spec: str
    options: dict
    slots: threading.BoundedSemaphore
    queue_timeout: float
    deadlines: dict[str, float]
    predictor: Predictor | None = None
    load_lock: threading.Lock = field(default_factory=threading.Lock)


def predictor_options(config: dict) -> tuple[str, dict[str, Any]]:
    """The predictor to load and its options: the remote worker tier when MODEL_URL is set, else in-process."""
    if config["MODEL_URL"]:
        return REMOTE_PREDICTOR, {"url": config["MODEL_URL"]}
    return config["PREDICTOR"], dict(config["SERVING"])


def init_inference(app: Flask) -> None:
    """Register the model state and load the model now unless LAZY_MODEL defers it to first use."""
    spec, options = predictor_options(app.config)
    state = InferenceState(spec=spec, options=options,
                           slots=threading.BoundedSemaphore(app.config["INFERENCE_MAX_PENDING"]),
                           queue_timeout=app.config["INFERENCE_QUEUE_TIMEOUT"],
                           deadlines={"photo": app.config["PHOTO_DEADLINE"], "live": app.config["LIVE_DEADLINE"]})
    app.extensions["emotion_lens.inference"] = state
    if not app.config["LAZY_MODEL"]:
        _load(state)


def _load(state: InferenceState) -> Predictor:
    """Build the predictor once; concurrent first callers wait for the same load."""
    with state.load_lock:
        if state.predictor is None:
            state.predictor = load_predictor(state.spec, **state.options)
    return state.predictor


def _state() -> InferenceState:
    return current_app.extensions["emotion_lens.inference"]


def model_ready() -> bool:
    """True when the model can answer now (loaded in-process, or a model worker seen recently)."""
    predictor = _state().predictor
    return predictor is not None and predictor.ready()


def get_predictor() -> Predictor:
    """The app's predictor, loading it now in lazy mode."""
    state = _state()
    if state.predictor is not None:
        return state.predictor
    try:
        return _load(state)
    except Exception as error:
        current_app.logger.exception("loading the predictor %s failed", state.spec)
        raise ServiceUnavailable("the model could not be loaded; try again later") from error


def analyze(image: bytes, mode: str = "photo", **wants: Any) -> ImageAnalysis:
    """The one model call of a request: decode, detect, classify and encode off the event loop, by its deadline.

    ``wants`` are AnalysisRequest fields (want_crops, want_annotated, want_jpeg, hints).
    """
    predictor = get_predictor()
    state = _state()
    request = AnalysisRequest(image, mode=mode, deadline=time.time() + state.deadlines[mode], **wants)
    if not predictor.runs_locally:
        # A remote predictor only waits on a socket (a green wait under eventlet); the worker tier bounds its
        # own queue and answers "busy" by the request's deadline.
        return predictor.analyze(request)
    # A bounded number of analyses may wait; beyond that callers get 503 at once instead of a long queue.
    # Decoding runs inside these slots too: a burst of huge images cannot all be in memory at once.
    if not state.slots.acquire(timeout=state.queue_timeout):
        raise ServiceUnavailable("the model is busy; try again in a moment", code="busy")
    try:
        return run_off_loop(predictor.analyze, request)
    finally:
        state.slots.release()


def run_off_loop(function: Callable[..., T], *args: Any) -> T:
    """Run CPU work in a real OS thread under eventlet (it would stall every client on the loop), directly otherwise."""
    if current_app.config["ASYNC_MODE"] == "eventlet":
        from eventlet import tpool  # imported only when the app really runs under eventlet

        return tpool.execute(function, *args)
    return function(*args)


def close_predictor(app: Flask) -> None:
    """Release the predictor's threads and memory (tests and shutdown)."""
    state = app.extensions["emotion_lens.inference"]
    if state.predictor is not None:
        state.predictor.close()
        state.predictor = None
