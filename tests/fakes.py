"""A deterministic predictor for web tests: no torch, no weights, answers in microseconds."""

from __future__ import annotations

import threading

import numpy as np

from model_server.api import Box, FaceResult, ImageAnalysis, ModelInfo
from model_server.labels import EMOTIONS

# tests/ is on sys.path under pytest (and on PYTHONPATH for the subprocesses and the benchmark).
FAKE_SPEC = "fakes:create_fake_predictor"
MIN_SIDE = 64  # smaller images have "no face", so tests can exercise the empty answer


class FakePredictor:
    """One face in the centre of any image at least 64x64; probabilities follow the pixel mean."""

    def __init__(self) -> None:
        self.info = ModelInfo(name="fake", version="fake-1")
        self.calls = 0
        self._lock = threading.Lock()

    def analyze(self, rgb: np.ndarray, realtime: bool = False) -> ImageAnalysis:
        """Centre box; a softmax over a pixel-mean-dependent vector, so different images differ."""
        with self._lock:
            self.calls += 1
        height, width = rgb.shape[:2]
        faces: tuple[FaceResult, ...] = ()
        if min(height, width) >= MIN_SIDE:
            mean = float(rgb.mean()) / 255.0
            logits = np.cos(mean * 6.0 + np.arange(len(EMOTIONS)) * 0.9) * 3.0
            probabilities = np.exp(logits) / np.exp(logits).sum()
            box = Box(width // 4, height // 4, width // 2, height // 2)
            faces = (FaceResult(box, tuple(float(p) for p in probabilities)),)
        return ImageAnalysis(width=width, height=height, faces=faces, model=self.info,
                             timings_ms={"total": 0.1})

    def close(self) -> None:
        """Nothing to release."""


def create_fake_predictor(**_options) -> FakePredictor:
    """Factory named by FAKE_SPEC; accepts and ignores the real pipeline's options."""
    return FakePredictor()
