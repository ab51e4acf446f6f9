"""The full pipeline: detect → square the box → crop → classify (batched) → per-face results."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from .api import Box, FaceResult, ImageAnalysis, ModelInfo
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
                 crop_margin: float = 0.1, batcher: DynamicBatcher | None = None, max_faces: int = 20):
        self.classifier = classifier
        self.detector = detector or HaarFaceDetector()
        # Haar boxes hug the face; FER2013 crops include a little forehead and chin.
        self.crop_margin = crop_margin
        self.batcher = batcher
        self.max_faces = max_faces
        card = classifier.card
        self.info = ModelInfo(name=card.architecture, version=card.version, labels=tuple(card.labels),
                              metrics=dict(card.metrics))

    def face_crops(self, gray: np.ndarray) -> list[tuple[Box, np.ndarray]]:
        """Detected faces (at most max_faces, largest first) as (box, square grayscale crop) pairs."""
        height, width = gray.shape[:2]
        pairs = []
        for box in self.detector.detect(gray)[: self.max_faces]:
            square = square_box(box, self.crop_margin, width, height)
            if square is not None:
                pairs.append((box, gray[square.y:square.y + square.h, square.x:square.x + square.w]))
        return pairs

    def classify(self, crops: list[np.ndarray]) -> np.ndarray:
        """Probabilities for crops, through the shared batcher when there is one."""
        return self.batcher.classify(crops) if self.batcher else self.classifier.classify(crops)

    def analyze(self, rgb: np.ndarray) -> ImageAnalysis:
        """Find and classify every face in an image (gray, RGB or RGBA uint8)."""
        if rgb.size == 0:
            raise ValueError("the image has no pixels")
        started = time.perf_counter()
        gray = to_gray(rgb)
        pairs = self.face_crops(gray)
        detected = time.perf_counter()
        probabilities = self.classify([crop for _, crop in pairs])
        finished = time.perf_counter()
        faces = tuple(FaceResult(box=box, probabilities=tuple(float(p) for p in probs), labels=self.info.labels)
                      for (box, _), probs in zip(pairs, probabilities))
        return ImageAnalysis(width=int(gray.shape[1]), height=int(gray.shape[0]), faces=faces, model=self.info,
                             timings_ms={"detect": round((detected - started) * 1000, 2),
                                         "classify": round((finished - detected) * 1000, 2)})

    def close(self) -> None:
        """Stop the batching thread, if any."""
        if self.batcher:
            self.batcher.close()


def create_pipeline(checkpoint: str | Path | None = None, device: str = "auto", tta: str | None = None,
                    batching: bool = True, max_batch: int = 32, max_wait_ms: float = 4.0) -> EmotionPipeline:
    """Load the model once (default: the shipped checkpoint), warm it up, and return a ready pipeline."""
    classifier = EmotionClassifier(checkpoint, device=device, tta=tta)
    classifier.warm_up()
    batcher = DynamicBatcher(classifier.classify, max_batch=max_batch, max_wait_ms=max_wait_ms) if batching else None
    return EmotionPipeline(classifier, batcher=batcher)
