"""The one way the web app runs the model: loaded once per worker, never on the event loop."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import numpy as np
from flask import Flask, current_app

from model_server.api import ImageAnalysis, Predictor, load_predictor

from .errors import ServiceUnavailable

T = TypeVar("T")


@dataclass
class InferenceState:
    """Per-app model state: the predictor (None until loaded) and the slots that bound waiting work."""

    spec: str
    options: dict
    slots: threading.BoundedSemaphore
    queue_timeout: float
    predictor: Predictor | None = None
    load_lock: threading.Lock = field(default_factory=threading.Lock)


def init_inference(app: Flask) -> None:
    """Register the model state and load the model now unless LAZY_MODEL defers it to first use."""
    options = {"device": app.config["DEVICE"], "threads": app.config["MODEL_THREADS"]}
    if app.config["CHECKPOINT"]:
        options["checkpoint"] = app.config["CHECKPOINT"]
    state = InferenceState(spec=app.config["PREDICTOR"], options=options,
                           slots=threading.BoundedSemaphore(app.config["INFERENCE_MAX_PENDING"]),
                           queue_timeout=app.config["INFERENCE_QUEUE_TIMEOUT"])
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


def model_loaded() -> bool:
    """True once the predictor is in memory."""
    return _state().predictor is not None


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


def analyze(rgb: np.ndarray, realtime: bool = False) -> ImageAnalysis:
    """Run the model on an RGB image in a real OS thread under eventlet, directly otherwise."""
    predictor = get_predictor()
    state = _state()
    # A bounded number of analyses may wait; beyond that callers get 503 at once instead of a long queue.
    if not state.slots.acquire(timeout=state.queue_timeout):
        raise ServiceUnavailable("the model is busy; try again in a moment", code="busy")
    try:
        return run_off_loop(predictor.analyze, rgb, realtime)
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
