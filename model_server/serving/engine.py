"""The in-process model: decode → detect → square the box → crop → classify (batched) → encode, behind one call."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import cv2
import numpy as np
import torch

from ..api import AnalysisRequest, Box, FaceResult, ImageAnalysis, ModelInfo
from ..errors import AnalysisError, ModelBusyError, ModelUnavailableError
from .batching import BatcherClosed, DynamicBatcher
from ..checkpoint import LIVE_CHECKPOINT
from .classifier import EmotionClassifier
from .config import ServingConfig
from .detector import FaceDetector, HaarFaceDetector, create_detector, square_box
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


# Followed faces are searched in their last box grown by this fraction of its side on every side: at webcam
# rate a face moves far less than that between frames.
_FOLLOW_WINDOW = 0.5
_SIGNATURE_SIZE = (16, 12)


def _scaled(box: Box, factor: float, width: int, height: int, grow: float = 0.0) -> Box | None:
    """A box scaled by ``factor`` (and grown by ``grow`` pixels per side), clipped to a width x height image."""
    left, top = max(0, int(round((box.x - grow) * factor))), max(0, int(round((box.y - grow) * factor)))
    right = min(width, int(round((box.x + box.w + grow) * factor)))
    bottom = min(height, int(round((box.y + box.h + grow) * factor)))
    return Box(left, top, right - left, bottom - top) if right - left >= 2 and bottom - top >= 2 else None


def _model_info(card: Any) -> ModelInfo:
    """What an answer says about its model: headline figures only; the full evaluation stays in the file."""
    headline = {key: value for key, value in card.metrics.items() if isinstance(value, (int, float))}
    return ModelInfo(name=card.architecture, version=card.version, labels=tuple(card.labels), metrics=headline)


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
        # Searches a small window around a known face: the face fills a third of it or more, and a 112 px window
        # makes the search cost about a millisecond; where the face is known, fewer neighbours are needed.
        self._follower = HaarFaceDetector(max_side=112, min_face_fraction=0.3, min_neighbors=3)
        self._runners = {"photo": photo, "live": live}
        # Each mode answers with the facts of the model that read its faces (the live student may differ).
        self._infos = {mode: _model_info(runner.classifier.card) for mode, runner in self._runners.items()}
        self.info = self._infos["photo"]

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
        """Decode, detect (or follow the hinted faces, or take the picture as one face), crop, classify and encode
        one image as the request asks."""
        if request.deadline is not None and time.time() > request.deadline:
            raise ModelBusyError("the request waited past its deadline; try again")
        runner, info = self._runners[request.mode], self._infos[request.mode]
        started = time.perf_counter()
        rgb, full_size = self._decode(request)
        decoded = time.perf_counter()
        gray = to_gray(rgb)
        to_decoded = gray.shape[1] / full_size[0]
        if request.face_only:
            # The caller says the picture is one cropped face: its largest centred square is FER2013's framing.
            side = min(gray.shape[:2])
            boxes = [Box((gray.shape[1] - side) // 2, (gray.shape[0] - side) // 2, side, side)]
        else:
            # Hints are in full-image pixels; the decode may be smaller (live frames are decoded at reduced size).
            hints = [_scaled(hint, to_decoded, gray.shape[1], gray.shape[0]) for hint in request.hints]
            boxes = self.follow(gray, [hint for hint in hints if hint]) if request.hints else []
            if len(boxes) < len(request.hints) or not request.hints:
                # A followed face was lost (turned away, occluded, or it moved fast): search the whole frame now
                # rather than answer without it, keeping what following found where the full search missed.
                full = runner.detector.detect(gray)
                boxes = full + [box for box in boxes if all(box.iou(other) < 0.3 for other in full)]
        kept, omitted = boxes[: self.config.max_faces], max(0, len(boxes) - self.config.max_faces)
        cut = self.crops(gray, kept, runner.face_size)
        detected = time.perf_counter()
        probabilities = runner.classify([crop for _, _, crop in cut])
        classified = time.perf_counter()
        to_full = 1 / to_decoded
        faces = tuple(FaceResult(box=_scaled(box, to_full, *full_size), crop_box=_scaled(square, to_full, *full_size),
                                 probabilities=tuple(float(p) for p in probs),
                                 crop=crop if request.want_crops else None, labels=info.labels)
                      for (box, square, crop), probs in zip(cut, probabilities))
        analysis = ImageAnalysis(width=full_size[0], height=full_size[1], faces=faces, model=info,
                                 faces_omitted=omitted)
        annotated = encode_image(annotate(rgb, analysis), "PNG") if request.want_annotated else None
        jpeg = encode_image(rgb, "JPEG", self.config.jpeg_quality) if request.want_jpeg else None
        # A thumbnail of the scene lets a stateless tier's caller notice a cut or a camera move between frames.
        signature = cv2.resize(gray, _SIGNATURE_SIZE, interpolation=cv2.INTER_AREA).tobytes() \
            if request.mode == "live" else None
        finished = time.perf_counter()
        timings = {"decode": decoded - started, "detect": detected - decoded, "classify": classified - detected,
                   "encode": finished - classified, "total": finished - started}
        return dataclasses.replace(analysis, annotated_png=annotated, jpeg=jpeg, signature=signature,
                                   timings_ms={stage: round(seconds * 1000, 2) for stage, seconds in timings.items()})

    def follow(self, gray: np.ndarray, hints: list[Box]) -> list[Box]:
        """Look for each hinted face only in a window around its last box (a few ms instead of a full search)."""
        height, width = gray.shape[:2]
        found: list[Box] = []
        for hint in hints:
            grow = max(hint.w, hint.h) * _FOLLOW_WINDOW
            window = _scaled(Box(hint.x, hint.y, hint.w, hint.h), 1, width, height, grow=grow)
            if window is None:
                continue
            region = gray[window.y:window.y + window.h, window.x:window.x + window.w]
            candidates = [Box(b.x + window.x, b.y + window.y, b.w, b.h) for b in self._follower.detect(region)]
            best = max(candidates, key=hint.iou, default=None)
            if best is not None and best.iou(hint) > 0.2 and all(best.iou(other) < 0.5 for other in found):
                found.append(best)
        return sorted(found, key=lambda b: b.w * b.h, reverse=True)

    def _decode(self, request: AnalysisRequest) -> tuple[np.ndarray, tuple[int, int]]:
        """The request's image as an upright RGB (or gray) uint8 array, and the image's full (width, height)."""
        if isinstance(request.image, np.ndarray):
            if request.image.dtype != np.uint8 or request.image.size == 0 or request.image.ndim not in (2, 3):
                raise AnalysisError("an image array must be a non-empty uint8 [H,W] or [H,W,C] array")
            return request.image, (request.image.shape[1], request.image.shape[0])
        live = request.mode == "live"
        cap = request.max_pixels or (self.config.live_max_pixels if live else self.config.photo_max_pixels)
        # Live frames only need the detector's size: JPEG's DCT scaling decodes 1/2 or 1/4 size at a fraction
        # of the cost. Photos decode fully, since small faces in group photos need every pixel; so does any
        # request for a drawn or re-encoded image, which must come back at the picture's own size.
        reduce = live and not (request.want_annotated or request.want_jpeg)
        decoded = decode_image(bytes(request.image), cap, max_side=self.config.live_detect_max_side if reduce else None)
        return decoded.rgb, decoded.full_size or (decoded.width, decoded.height)

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
    # Live frames get the distilled single-network student (one forward pass instead of the ensemble's
    # several); a named checkpoint serves both modes.
    live_classifier = classifier if config.checkpoint or not LIVE_CHECKPOINT.exists() else \
        EmotionClassifier(None, device=config.device, variant="live")
    if live_classifier is not classifier:
        live_classifier.warm_up()
    photo_detector = create_detector(config.photo_detector, max_side=config.photo_detect_max_side,
                                     min_face_fraction=config.photo_min_face_fraction)
    live_detector = create_detector("live", max_side=config.live_detect_max_side,
                                    min_face_fraction=config.live_min_face_fraction)
    live_tta = config.live_tta or (None if live_classifier is not classifier else "flip")
    return Engine(config, photo=_ModeRunner(photo_detector, classifier, config.photo_tta, config, batching),
                  live=_ModeRunner(live_detector, live_classifier, live_tta, config, batching))

