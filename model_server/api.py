"""The one contract between the web app and the model tier: no torch and no pixels work in here, on purpose.

The web app imports only this module and ``errors``; the model (in-process or a remote worker) is
loaded by name at start-up (``load_predictor``), so a web process can be tested with a fake.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from .labels import EMOJI, EMOTIONS


@dataclass(frozen=True)
class Box:
    """A face rectangle in image pixels; refuses empty or negative boxes."""

    x: int
    y: int
    w: int
    h: int

    def __post_init__(self) -> None:
        if self.w <= 0 or self.h <= 0 or self.x < 0 or self.y < 0:
            raise ValueError(f"invalid box {self}")

    def as_dict(self) -> dict[str, int]:
        """Plain dict for JSON."""
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}

    def iou(self, other: "Box") -> float:
        """Intersection over union with another box (0 when disjoint)."""
        left, top = max(self.x, other.x), max(self.y, other.y)
        right, bottom = min(self.x + self.w, other.x + other.w), min(self.y + self.h, other.y + other.h)
        inter = max(0, right - left) * max(0, bottom - top)
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union else 0.0


@dataclass(frozen=True)
class FaceResult:
    """One face: the detector's box, the square crop box cut around it, the 48x48 grayscale crop the
    classifier saw (None unless asked for), and the probabilities in ``labels`` order."""

    box: Box
    crop_box: Box
    probabilities: tuple[float, ...]
    crop: np.ndarray | None = None
    labels: tuple[str, ...] = EMOTIONS

    def __post_init__(self) -> None:
        if len(self.probabilities) != len(self.labels):
            raise ValueError("one probability per label is required")

    @property
    def top(self) -> str:
        """The most probable emotion."""
        return self.labels[int(np.argmax(self.probabilities))]

    @property
    def emoji(self) -> str:
        """Emoji of the most probable emotion."""
        return EMOJI[self.top]

    @property
    def emotions(self) -> dict[str, float]:
        """Label → probability mapping."""
        return dict(zip(self.labels, (float(p) for p in self.probabilities)))


@dataclass(frozen=True)
class ModelInfo:
    """What a client needs to know about the model that answered."""

    name: str
    version: str
    labels: tuple[str, ...] = EMOTIONS
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {"name": self.name, "version": self.version, "labels": list(self.labels),
                "metrics": dict(self.metrics)}


MODES = ("photo", "live")


@dataclass(frozen=True)
class AnalysisRequest:
    """One image to analyse and what the caller wants back.

    ``image`` is encoded bytes (JPEG, PNG, WebP) or an RGB uint8 array. ``mode`` picks the serving
    settings: ``photo`` (thorough) or ``live`` (webcam rate). ``hints`` are boxes where faces were in the
    caller's previous frames (live tracking): when given, faces are looked for only around them, and a face
that is not found there is left out (the caller then asks for a full search); ``deadline`` is a wall-clock time (``time.time()``) after
    which nobody waits for the answer any more. ``face_only`` says the picture is one face, already
    cropped (a face data set, a cut-out): detection is skipped and its largest centred square is read as
    that face, as FER2013's own crops are.
    """

    image: bytes | np.ndarray
    mode: str = "photo"
    want_crops: bool = False
    want_annotated: bool = False
    want_jpeg: bool = False
    max_pixels: int | None = None
    hints: tuple[Box, ...] = ()
    deadline: float | None = None
    face_only: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")


@dataclass(frozen=True)
class ImageAnalysis:
    """Every face found in one image, with the image size, the model, per-stage timings and the extras asked for.

    ``faces_omitted`` counts faces found beyond the face cap (largest faces are kept).
    ``annotated_png`` and ``jpeg`` (the upright image re-encoded without EXIF) are None unless asked for.
    ``signature`` (live mode) is a 16x12 grayscale thumbnail: a caller compares it between frames to notice
    that the picture changed a lot, without the model tier keeping any state.
    """

    width: int
    height: int
    faces: tuple[FaceResult, ...]
    model: ModelInfo
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    faces_omitted: int = 0
    annotated_png: bytes | None = None
    jpeg: bytes | None = None
    signature: bytes | None = None


def face_json(index: int, box: Box, emotions: Mapping[str, float], **extra: Any) -> dict[str, Any]:
    """One face as every transport shows it: the JSON API, stored analyses, live acks and the predict CLI."""
    top = max(emotions, key=emotions.get)
    return {"index": index, "box": box.as_dict(), "emotions": {k: float(v) for k, v in emotions.items()},
            "top": top, "emoji": EMOJI[top], **extra}


@runtime_checkable
class Predictor(Protocol):
    """The model tier as the web tier sees it: an AnalysisRequest in, one ImageAnalysis out.

    ``runs_locally`` tells the caller whether ``analyze`` burns CPU in this process (run it in a real OS
    thread under eventlet) or only waits on a socket (a green wait is enough).
    """

    info: ModelInfo
    runs_locally: bool

    def analyze(self, request: AnalysisRequest) -> ImageAnalysis:
        """Decode, detect, crop, classify and encode as asked; thread-safe; raises AnalysisError subclasses."""
        ...

    def ready(self) -> bool:
        """True when an answer can be expected now (model loaded, or a live worker seen recently)."""
        ...

    def close(self) -> None:
        """Release threads, connections and memory."""
        ...


def load_predictor(spec: str, **options: Any) -> Predictor:
    """Build a predictor from ``"module:factory"``; torch is imported only if that module needs it."""
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise ValueError(f"predictor spec {spec!r} must look like 'package.module:factory'")
    factory = getattr(importlib.import_module(module_name), attribute)
    return factory(**options)
