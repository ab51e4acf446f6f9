"""Video clips to emotion timelines: sample frames with OpenCV, analyse each through the model contract, follow
faces by box overlap. ``python -m model_server.video CLIP [--fps N] [--csv]`` prints the timeline.

No torch here: the model is whatever Predictor the caller hands in (in-process engine or remote worker).
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from .api import MODES, AnalysisRequest, Box, ImageAnalysis, Predictor
from .errors import AnalysisError
from .labels import EMOJI

DEFAULT_FPS = 2.0  # two looks a second follow a changing expression; more mostly repeats the same face
MAX_FPS = 10.0  # a ceiling on the work one clip can ask for
# Sampled frames are ~0.5 s apart, so a face moves further between them than between webcam frames.
TRACK_MIN_IOU = 0.2
TRACK_MAX_MISSED = 4  # samples a face may go undetected (turned head, blink) before its track ends
_REMOTE_JPEG_QUALITY = 90  # frames for a remote model travel as JPEG, the contract's portable form


class VideoError(AnalysisError):
    """A file OpenCV cannot read as a video, or one without frames."""

    code = "invalid_video"


class VideoTooLongError(VideoError):
    """A clip longer than the caller allows."""

    code = "video_too_long"


class VideoCancelled(Exception):
    """The caller cancelled the analysis between two frames."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a clip: frame rate, frame count and size (0 where it does not say)."""

    fps: float
    frames: int
    width: int
    height: int

    @property
    def duration(self) -> float | None:
        """Seconds, when the container gives both rate and count (WebM often gives neither)."""
        return self.frames / self.fps if self.fps > 0 and self.frames > 0 else None


def _open(path: str | Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise VideoError("the file could not be read as a video (MP4, WebM or MOV)")
    return capture


def probe(path: str | Path) -> VideoInfo:
    """Frame rate, frame count and size of a clip without decoding it; VideoError if unreadable."""
    capture = _open(path)
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0)
        info = VideoInfo(fps=fps if 0 < fps < 1000 else 0.0, frames=max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))),
                         width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                         height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        capture.release()
    if info.width <= 0 or info.height <= 0:
        raise VideoError("the video has no picture")
    return info


def sample_frames(path: str | Path, fps: float = DEFAULT_FPS,
                  max_seconds: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """(seconds, RGB frame) about ``fps`` times a second of clip time; VideoTooLongError past ``max_seconds``."""
    if not 0 < fps <= MAX_FPS:
        raise ValueError(f"fps must be in (0, {MAX_FPS:g}]")
    capture = _open(path)
    native = float(capture.get(cv2.CAP_PROP_FPS) or 0)
    step, due = 1.0 / fps, 0.0
    try:
        for index in itertools.count():
            if not capture.grab():  # grab without retrieve skips the colour conversion of unsampled frames
                break
            stamp = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            # Containers without timestamps report 0 for every frame; the frame rate then gives the time.
            seconds = stamp if stamp > 0 or index == 0 or native <= 0 else index / native
            if max_seconds is not None and seconds > max_seconds:
                raise VideoTooLongError(f"the clip is longer than the {max_seconds:g} s limit")
            if seconds + 1e-6 < due:
                continue
            ok, bgr = capture.retrieve()
            if ok and bgr is not None:
                yield round(seconds, 3), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            due = (int(seconds / step + 1e-6) + 1) * step
    finally:
        capture.release()


@dataclass
class _Track:
    id: int
    box: Box
    missed: int = 0


class FaceTracker:
    """Follows faces across consecutive frames by box overlap: each box gets the id of the best-overlapping
    face seen recently, or a new id."""

    def __init__(self, min_iou: float = TRACK_MIN_IOU, max_missed: int = TRACK_MAX_MISSED) -> None:
        self.min_iou, self.max_missed = min_iou, max_missed
        self._tracks: list[_Track] = []
        self._ids = itertools.count(1)

    def assign(self, boxes: list[Box]) -> list[int]:
        """Track ids for this frame's boxes, in the boxes' order."""
        pairs = sorted(((track.box.iou(box), t, b) for t, track in enumerate(self._tracks)
                        for b, box in enumerate(boxes)), reverse=True)
        ids: list[int | None] = [None] * len(boxes)
        taken: set[int] = set()
        # Greedy by overlap: with a handful of faces this equals the optimal matching in practice.
        for iou, t, b in pairs:
            if iou < self.min_iou:
                break
            if t not in taken and ids[b] is None:
                taken.add(t)
                ids[b] = self._tracks[t].id
        kept = [_Track(track.id, track.box, track.missed + 1) for t, track in enumerate(self._tracks)
                if t not in taken and track.missed < self.max_missed]
        for b, box in enumerate(boxes):
            ids[b] = ids[b] if ids[b] is not None else next(self._ids)
            kept.append(_Track(ids[b], box))
        self._tracks = kept
        return [int(i) for i in ids]

    def current_boxes(self) -> list[Box]:
        """Last boxes of the faces still tracked (where to look in the next frame), even if just missed."""
        return [track.box for track in self._tracks]


@dataclass
class Timeline:
    """Samples per face track as frames are analysed; ``as_dict`` gives the API's ``result``."""

    labels: tuple[str, ...] = ()
    tracker: FaceTracker = field(default_factory=FaceTracker)
    tracks: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    frames: int = 0

    def add(self, seconds: float, analysis: ImageAnalysis) -> None:
        """Record one analysed frame's faces under their track ids."""
        self.labels = self.labels or tuple(analysis.model.labels)
        self.frames += 1
        for track, face in zip(self.tracker.assign([face.box for face in analysis.faces]), analysis.faces):
            self.tracks.setdefault(track, []).append(
                {"t": seconds, "box": face.box.as_dict(), "emotions": face.emotions})

    def dominant(self, samples: list[dict[str, Any]]) -> str:
        """The emotion with the highest mean probability over a track's samples."""
        means = np.mean([[sample["emotions"][label] for label in self.labels] for sample in samples], axis=0)
        return self.labels[int(np.argmax(means))]

    def as_dict(self) -> dict[str, Any]:
        """``{frames, labels, tracks: [{id, dominant, emoji, samples: [{t, box, emotions}]}]}``, tracks by id."""
        tracks = []
        for number, samples in sorted(self.tracks.items()):
            dominant = self.dominant(samples)
            tracks.append({"id": number, "dominant": dominant, "emoji": EMOJI.get(dominant, ""), "samples": samples})
        return {"frames": self.frames, "labels": list(self.labels), "tracks": tracks}


def frame_input(rgb: np.ndarray, predictor: Predictor) -> bytes | np.ndarray:
    """The frame as an in-process model takes it (the array), or as JPEG bytes for a remote one."""
    if predictor.runs_locally:
        return rgb
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, _REMOTE_JPEG_QUALITY])
    if not ok:
        raise VideoError("a frame could not be encoded for the model")
    return encoded.tobytes()


def analyse_video(path: str | Path, predictor: Predictor, fps: float = DEFAULT_FPS, mode: str = "photo",
                  max_seconds: float | None = None,
                  progress: Callable[[float | None, float], None] | None = None,
                  cancelled: Callable[[], bool] | None = None) -> dict[str, Any]:
    """The clip's timeline: every sampled frame through ``predictor``, faces tracked across frames.

    ``progress`` gets the share of the clip done (0..1, or None when the container does not say how long the
    clip is, as WebM recorded by browsers often does) and the seconds of clip read, after each sampled frame;
    ``cancelled`` is asked before each frame and raises VideoCancelled when it answers True.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    info = probe(path)
    if max_seconds is not None and info.duration is not None and info.duration > max_seconds:
        raise VideoTooLongError(f"the clip lasts {info.duration:.0f} s; the limit is {max_seconds:g} s")
    timeline, last = Timeline(), 0.0
    for seconds, rgb in sample_frames(path, fps, max_seconds):
        if cancelled is not None and cancelled():
            raise VideoCancelled()
        timeline.add(seconds, predictor.analyze(AnalysisRequest(frame_input(rgb, predictor), mode=mode)))
        last = seconds
        if progress is not None:
            progress(min(1.0, seconds / info.duration) if info.duration else None, seconds)
    if not timeline.frames:
        raise VideoError("no frame of the video could be decoded")
    return {"duration": round(info.duration or last, 3), "sample_fps": fps, "width": info.width,
            "height": info.height, "model": {"name": predictor.info.name, "version": predictor.info.version},
            **timeline.as_dict()}


CSV_FIELDS = ("track", "t", "x", "y", "w", "h")


def timeline_csv(result: dict[str, Any]) -> str:
    """The samples of every track as CSV: track, t, the box, one column per emotion, then the top emotion."""
    labels = list(result["labels"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_FIELDS, *labels, "top"])
    for track in result["tracks"]:
        for sample in track["samples"]:
            box, emotions = sample["box"], sample["emotions"]
            writer.writerow([track["id"], sample["t"], box["x"], box["y"], box["w"], box["h"],
                             *(f"{emotions[label]:.6f}" for label in labels), max(emotions, key=emotions.get)])
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Print the clip's timeline as JSON (or its samples as CSV); exit 1 when the clip cannot be read."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("clip", type=Path, help="a video file (MP4, WebM, MOV, AVI: whatever OpenCV reads)")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help=f"frames analysed per second (max {MAX_FPS:g})")
    parser.add_argument("--mode", choices=MODES, default="photo", help="serving settings: thorough or webcam-fast")
    parser.add_argument("--csv", action="store_true", help="print the samples as CSV instead of JSON")
    parser.add_argument("--checkpoint", help="model file (default: the shipped model)")
    args = parser.parse_args(argv)
    if not 0 < args.fps <= MAX_FPS:
        parser.error(f"--fps must be in (0, {MAX_FPS:g}]")
    from .serving.engine import create_engine  # torch is imported only by the command, never by the library

    engine = create_engine(batching=False, checkpoint=args.checkpoint)
    try:
        result = analyse_video(args.clip, engine, fps=args.fps, mode=args.mode)
    except AnalysisError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    finally:
        engine.close()
    print(timeline_csv(result) if args.csv else json.dumps({"clip": str(args.clip), **result}, ensure_ascii=False),
          end="" if args.csv else "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
