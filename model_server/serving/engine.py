"""The full pipeline: detect → square the box → crop → classify (batched) → per-face results."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ..api import Box, FaceResult, ImageAnalysis, ModelInfo
from .batching import DynamicBatcher
from .classifier import EmotionClassifier
from .detector import FaceDetector, HaarFaceDetector, square_box


def to_gray(image: np.ndarray) -> np.ndarray:
    """Grayscale uint8 view of a gray, RGB or RGBA image (the model was trained on gray faces)."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2GRAY)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"expected a gray, RGB or RGBA image, got shape {image.shape}")


class EmotionPipeline:
    """Implements model_server.api.Predictor: thread-safe, model loaded once, crops batched across callers."""

    def __init__(self, classifier: EmotionClassifier, detector: FaceDetector | None = None,
                 realtime_detector: FaceDetector | None = None, realtime_tta: str = "flip",
                 crop_margin: float = 0.1, batching: dict | None = None, max_faces: int = 20):
        self.classifier = classifier
        self.detector = detector or HaarFaceDetector()
        # Video frames: a smaller detection image, faces of at least a tenth of the frame (smaller ones
        # carry too few pixels to read an expression) and the cheaper mirror-only TTA keep a 2-core CPU at
        # webcam rate; the viewer's per-face smoothing averages over frames, which TTA would otherwise do.
        self.realtime_detector = realtime_detector or HaarFaceDetector(max_side=480, min_face_fraction=0.1)
        self.realtime_tta = realtime_tta
        # Haar boxes hug the face; FER2013 crops include a little forehead and chin.
        self.crop_margin = crop_margin
        self.max_faces = max_faces
        # One batcher per TTA mode: crops in one model call must share their test-time views.
        self.batchers = {mode: DynamicBatcher(functools.partial(classifier.classify, tta=mode), **batching)
                         for mode in (None, realtime_tta)} if batching is not None else {}
        card = classifier.card
        # Headline figures only (accuracy, macro-F1); the full evaluation stays in the checkpoint.
        headline = {key: value for key, value in card.metrics.items() if isinstance(value, (int, float))}
        self.info = ModelInfo(name=card.architecture, version=card.version, labels=tuple(card.labels),
                              metrics=headline)

    def face_crops(self, gray: np.ndarray, realtime: bool = False) -> list[tuple[Box, np.ndarray]]:
        """Detected faces (at most max_faces, largest first) as (box, square grayscale crop) pairs."""
        height, width = gray.shape[:2]
        pairs = []
        detector = self.realtime_detector if realtime else self.detector
        for box in detector.detect(gray)[: self.max_faces]:
            square = square_box(box, self.crop_margin, width, height)
            if square is not None:
                pairs.append((box, gray[square.y:square.y + square.h, square.x:square.x + square.w]))
        return pairs

    def classify(self, crops: list[np.ndarray], realtime: bool = False) -> np.ndarray:
        """Probabilities for crops, through the shared batcher when there is one."""
        tta = self.realtime_tta if realtime else None
        batcher = self.batchers.get(tta)
        return batcher.classify(crops) if batcher else self.classifier.classify(crops, tta=tta)

    def analyze(self, rgb: np.ndarray, realtime: bool = False) -> ImageAnalysis:
        """Find and classify every face in an image (gray, RGB or RGBA uint8); ``realtime`` for video frames."""
        if rgb.size == 0:
            raise ValueError("the image has no pixels")
        started = time.perf_counter()
        gray = to_gray(rgb)
        pairs = self.face_crops(gray, realtime)
        detected = time.perf_counter()
        probabilities = self.classify([crop for _, crop in pairs], realtime)
        finished = time.perf_counter()
        faces = tuple(FaceResult(box=box, probabilities=tuple(float(p) for p in probs), labels=self.info.labels)
                      for (box, _), probs in zip(pairs, probabilities))
        return ImageAnalysis(width=int(gray.shape[1]), height=int(gray.shape[0]), faces=faces, model=self.info,
                             timings_ms={"detect": round((detected - started) * 1000, 2),
                                         "classify": round((finished - detected) * 1000, 2)})

    def close(self) -> None:
        """Stop the batching threads, if any."""
        for batcher in self.batchers.values():
            batcher.close()


def create_pipeline(checkpoint: str | Path | None = None, device: str = "auto", tta: str | None = None,
                    batching: bool = True, max_batch: int = 32, max_wait_ms: float = 2.0,
                    threads: int | None = None) -> EmotionPipeline:
    """Load the model once (default: the shipped checkpoint), warm it up, and return a ready pipeline.

    ``threads`` caps torch's and OpenCV's own thread pools (None or 0: their defaults, one per core);
    with many concurrent requests 1 trades single-request latency for throughput.
    """
    if threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
    classifier = EmotionClassifier(checkpoint, device=device, tta=tta)
    classifier.warm_up()
    batching_options = {"max_batch": max_batch, "max_wait_ms": max_wait_ms} if batching else None
    return EmotionPipeline(classifier, batching=batching_options)
