"""The in-process model: decode → detect → square the box → crop → classify (batched) → encode, behind one call."""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np
import torch

from ..api import AnalysisRequest, Box, FaceResult, ImageAnalysis, ModelInfo
from ..errors import AnalysisError, ModelBusyError, ModelUnavailableError
from .batching import BatcherClosed, DynamicBatcher
from .classifier import EmotionClassifier
from .config import ServingConfig
from .detector import FaceDetector, HaarFaceDetector, square_box
from .draw import annotate
from .imaging import decode_image, encode_image


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


class _ModeRunner:
    """What one mode (photo or live) uses: its detector, classifier, TTA and shared batcher."""

    def __init__(self, detector: FaceDetector, classifier: EmotionClassifier, tta: str | None,
                 config: ServingConfig, batching: bool) -> None:
        self.detector, self.classifier, self.tta = detector, classifier, tta
        self.face_size = classifier.preprocessing.resize
        # One batcher per mode: crops in one model call must share their classifier and test-time views.
        self.batcher = DynamicBatcher(self._classify_now, max_batch=config.batch_max,
                                      max_wait_ms=config.batch_wait_ms) if batching else None

    def _classify_now(self, crops: list[np.ndarray]) -> np.ndarray:
        return self.classifier.classify(crops, tta=self.tta)

    def classify(self, crops: list[np.ndarray]) -> np.ndarray:
        """Probabilities for 48x48 crops, through the shared batcher when there is one."""
        if not crops:
            return np.zeros((0, len(self.classifier.card.labels)), dtype=np.float32)
        try:
            return self.batcher.classify(crops) if self.batcher else self._classify_now(crops)
        except BatcherClosed as error:
            raise ModelUnavailableError("the model is shutting down") from error
        except TimeoutError as error:
            raise ModelBusyError("the model is busy; try again in a moment") from error

    def close(self) -> None:
        """Stop the batching thread."""
        if self.batcher:
            self.batcher.close()


class Engine:
    """Implements model_server.api.Predictor in this process: thread-safe, model loaded once, crops batched."""

    runs_locally = True

    def __init__(self, config: ServingConfig, photo: _ModeRunner, live: _ModeRunner) -> None:
        self.config = config
        self._runners = {"photo": photo, "live": live}
        card = photo.classifier.card
        # Headline figures only (accuracy, macro-F1); the full evaluation stays in the checkpoint.
        headline = {key: value for key, value in card.metrics.items() if isinstance(value, (int, float))}
        self.info = ModelInfo(name=card.architecture, version=card.version, labels=tuple(card.labels),
                              metrics=headline)

    def ready(self) -> bool:
        """The model is in memory from construction on."""
        return True

    def crops(self, gray: np.ndarray, boxes: list[Box], face_size: int) -> list[tuple[Box, Box, np.ndarray]]:
        """(box, square crop box, face_size² crop) per box: the exact input the classifier sees."""
        height, width = gray.shape[:2]
        found = []
        for box in boxes:
            square = square_box(box, self.config.crop_margin, width, height)
            if square is None:
                continue
            region = gray[square.y:square.y + square.h, square.x:square.x + square.w]
            # Shrinking averages pixels (INTER_AREA); enlarging a small face interpolates.
            interpolation = cv2.INTER_AREA if min(region.shape) > face_size else cv2.INTER_LINEAR
            found.append((box, square, cv2.resize(region, (face_size, face_size), interpolation=interpolation)))
        return found

    def analyze(self, request: AnalysisRequest) -> ImageAnalysis:
        """Decode, detect, crop, classify and encode one image as the request asks."""
        if request.deadline is not None and time.time() > request.deadline:
            raise ModelBusyError("the request waited past its deadline; try again")
        runner = self._runners[request.mode]
        started = time.perf_counter()
        rgb = self._decode(request)
        decoded = time.perf_counter()
        gray = to_gray(rgb)
        boxes = runner.detector.detect(gray)
        kept, omitted = boxes[: self.config.max_faces], max(0, len(boxes) - self.config.max_faces)
        cut = self.crops(gray, kept, runner.face_size)
        detected = time.perf_counter()
        probabilities = runner.classify([crop for _, _, crop in cut])
        classified = time.perf_counter()
        faces = tuple(FaceResult(box=box, crop_box=square, probabilities=tuple(float(p) for p in probs),
                                 crop=crop if request.want_crops else None, labels=self.info.labels)
                      for (box, square, crop), probs in zip(cut, probabilities))
        analysis = ImageAnalysis(width=int(gray.shape[1]), height=int(gray.shape[0]), faces=faces,
                                 model=self.info, faces_omitted=omitted)
        annotated = encode_image(annotate(rgb, analysis), "PNG") if request.want_annotated else None
        jpeg = encode_image(rgb, "JPEG", self.config.jpeg_quality) if request.want_jpeg else None
        finished = time.perf_counter()
        timings = {"decode": decoded - started, "detect": detected - decoded, "classify": classified - detected,
                   "encode": finished - classified, "total": finished - started}
        return ImageAnalysis(width=analysis.width, height=analysis.height, faces=faces, model=self.info,
                             faces_omitted=omitted, annotated_png=annotated, jpeg=jpeg,
                             timings_ms={stage: round(seconds * 1000, 2) for stage, seconds in timings.items()})

    def _decode(self, request: AnalysisRequest) -> np.ndarray:
        """The request's image as an upright RGB (or gray) uint8 array."""
        if isinstance(request.image, np.ndarray):
            if request.image.dtype != np.uint8 or request.image.size == 0 or request.image.ndim not in (2, 3):
                raise AnalysisError("an image array must be a non-empty uint8 [H,W] or [H,W,C] array")
            return request.image
        default_cap = self.config.live_max_pixels if request.mode == "live" else self.config.photo_max_pixels
        return decode_image(bytes(request.image), request.max_pixels or default_cap).rgb

    def close(self) -> None:
        """Stop the batching threads."""
        for runner in self._runners.values():
            runner.close()


def create_engine(batching: bool = True, **settings: Any) -> Engine:
    """Load the model once (default: the shipped checkpoint), warm it up, and return a ready engine.

    ``settings`` are ServingConfig fields (strings are converted), e.g. ``device="cuda"``, ``live_tta="none"``.
    """
    config = ServingConfig.from_mapping(settings)
    if config.threads:
        torch.set_num_threads(config.threads)
        cv2.setNumThreads(config.threads)
    classifier = EmotionClassifier(config.checkpoint, device=config.device)
    classifier.warm_up()
    photo_detector = HaarFaceDetector(**_given(max_side=config.photo_detect_max_side,
                                               min_face_fraction=config.photo_min_face_fraction))
    live_detector = HaarFaceDetector(max_side=config.live_detect_max_side,
                                     min_face_fraction=config.live_min_face_fraction)
    return Engine(config, photo=_ModeRunner(photo_detector, classifier, config.photo_tta, config, batching),
                  live=_ModeRunner(live_detector, classifier, config.live_tta, config, batching))


def _given(**values: Any) -> dict[str, Any]:
    """Only the settings that are set, so the detector's own defaults apply to the rest."""
    return {key: value for key, value in values.items() if value is not None}
