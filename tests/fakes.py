"""A deterministic predictor for web tests: no torch, no weights, answers in microseconds."""

from __future__ import annotations

import io
import threading

import numpy as np
from PIL import Image

from model_server.api import AnalysisRequest, Box, FaceResult, ImageAnalysis, ModelInfo
from model_server.labels import EMOTIONS
from model_server.serving.imaging import decode_image

# tests/ is on sys.path under pytest (and on PYTHONPATH for the subprocesses and the benchmark).
FAKE_SPEC = "fakes:create_fake_predictor"
MIN_SIDE = 64  # smaller images have "no face", so tests can exercise the empty answer


def decode_rgb(image: bytes | np.ndarray, max_pixels: int = 25_000_000) -> np.ndarray:
    """The request's image as RGB, through the model tier's real (torch-free) decoder and its errors."""
    return image if isinstance(image, np.ndarray) else decode_image(image, max_pixels).rgb


def _encoded(rgb: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt)
    return buffer.getvalue()


class FakePredictor:
    """One face in the centre of any image at least 64x64 (of any image when ``face_only``: then the face is its
    largest centred square, as in the engine); probabilities follow the pixel mean."""

    runs_locally = True

    def __init__(self, photo_max_pixels: int = 25_000_000) -> None:
        self.photo_max_pixels = int(photo_max_pixels)
        self.info = ModelInfo(name="fake", version="fake-1")
        self.calls = 0
        self.requests: list[AnalysisRequest] = []
        self._lock = threading.Lock()

    def analyze(self, request: AnalysisRequest) -> ImageAnalysis:
        """Centre box; a softmax over a pixel-mean-dependent vector, so different images differ."""
        with self._lock:
            self.calls += 1
            self.requests.append(request)
        rgb = decode_rgb(request.image, request.max_pixels or self.photo_max_pixels)
        height, width = rgb.shape[:2]
        faces: tuple[FaceResult, ...] = ()
        if request.face_only or min(height, width) >= MIN_SIDE:
            mean = float(rgb.mean()) / 255.0
            logits = np.cos(mean * 6.0 + np.arange(len(EMOTIONS)) * 0.9) * 3.0
            probabilities = np.exp(logits) / np.exp(logits).sum()
            side = min(width, height) // (1 if request.face_only else 2)
            square = Box((width - side) // 2, (height - side) // 2, side, side)
            box = square if request.face_only else Box(width // 4, height // 4, width // 2, height // 2)
            gray = np.asarray(Image.fromarray(rgb).convert("L"))
            region = gray[square.y:square.y + square.h, square.x:square.x + square.w]
            crop = np.asarray(Image.fromarray(region).resize((48, 48))) if request.want_crops else None
            faces = (FaceResult(box, square, tuple(float(p) for p in probabilities), crop),)
        return ImageAnalysis(width=width, height=height, faces=faces, model=self.info, timings_ms={"total": 0.1},
                             jpeg=_encoded(rgb, "JPEG") if request.want_jpeg else None,
                             annotated_png=_encoded(rgb, "PNG") if request.want_annotated else None)

    def ready(self) -> bool:
        """Always ready."""
        return True

    def close(self) -> None:
        """Nothing to release."""


def create_fake_predictor(photo_max_pixels: int = 25_000_000, **_settings) -> FakePredictor:
    """Factory named by FAKE_SPEC; honours the pixel cap and ignores the real engine's other settings."""
    return FakePredictor(photo_max_pixels)
