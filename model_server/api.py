"""The small typed contract between the web app and the model: no torch in here, on purpose.

The web app imports only this module and ``imaging``; anything that needs torch is loaded
by name at start-up (``load_predictor``), so a web process can be tested with a fake.
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
    """One detected face: its box and the seven probabilities in ``labels`` order."""

    box: Box
    probabilities: tuple[float, ...]
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


@dataclass(frozen=True)
class ImageAnalysis:
    """Every face found in one image, with the image size and per-stage timings."""

    width: int
    height: int
    faces: tuple[FaceResult, ...]
    model: ModelInfo
    timings_ms: Mapping[str, float] = field(default_factory=dict)


@runtime_checkable
class Predictor(Protocol):
    """Anything that turns an RGB uint8 image [H,W,3] into an ImageAnalysis."""

    info: ModelInfo

    def analyze(self, rgb: np.ndarray, realtime: bool = False) -> ImageAnalysis:
        """Detect faces and classify each; thread-safe. ``realtime`` trades a little accuracy for speed
        (video frames, where the viewer's smoothing averages over frames anyway)."""
        ...

    def close(self) -> None:
        """Release threads and memory."""
        ...


def load_predictor(spec: str, **options: Any) -> Predictor:
    """Build a predictor from ``"module:factory"``; torch is imported only if that module needs it."""
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise ValueError(f"predictor spec {spec!r} must look like 'package.module:factory'")
    factory = getattr(importlib.import_module(module_name), attribute)
    return factory(**options)
