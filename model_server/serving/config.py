"""Every serving setting in one place: how photos and live frames are decoded, searched and classified."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class ServingConfig:
    """Settings of the in-process engine and of the model worker; the web app sets them from ``SERVING``."""

    checkpoint: str | None = None  # None: the shipped model
    device: str = "cpu"  # "cuda" or "auto" on a GPU host
    # torch/OpenCV threads per call; 0 keeps their defaults (one per core). On 2 cores, 0 gave 26 fps for one
    # live client and 1 gave 15.8, while 4 clients got 8.3 and 8.9: per-call parallelism wins at low load.
    threads: int = 0
    # Crops of concurrent requests share one model call: up to batch_max faces, waiting at most batch_wait_ms
    # after the first; 2 ms costs a lone client almost nothing and fills batches under load.
    batch_max: int = 32
    batch_wait_ms: float = 2.0
    # Margin per side around the detector's box before squaring. FER2013's own crops are almost exactly what
    # OpenCV's frontal cascades box on them (box side 0.97-0.98 of the crop, benchmarks/crop_framing.py), so
    # 2% reproduces the framing the model was trained on; 10% gave 1.17x looser crops and 0.4-2.1 points less.
    crop_margin: float = 0.02
    # Phones save 12 MP (a few 24 MP) by default; more is refused from the header before any pixel is decoded,
    # which bounds a decode's memory (a 25 MP RGB image is 75 MB) however small the compressed file is.
    photo_max_pixels: int = 25_000_000
    # A 1080p webcam frame; browsers send 480-640 px, so anything larger is not a webcam.
    live_max_pixels: int = 1920 * 1080
    # Photos: the thorough detector ("photo": six cascade passes, tilted and turned heads, confirmed by a second
    # cascade) finds 88% of faces on the generated group-photo set against 37% for the one-pass "live" one, at
    # about 1.4 s of CPU for a 1 MP photo instead of 40 ms (benchmarks/bench_detector.py). "live" suits a
    # site that serves many uploads on small CPUs and mostly gets selfies.
    photo_detector: str = "photo"
    photo_detect_max_side: int | None = None
    photo_min_face_fraction: float | None = None
    # Live: a 480 px detection image and faces of at least a tenth of the frame keep 2 cores at webcam rate;
    # smaller faces carry too few pixels to read an expression anyway.
    live_detect_max_side: int = 480
    live_min_face_fraction: float = 0.1
    # Test-time augmentation: None takes each model card's own mode (chosen on PublicTest): the photo
    # ensemble's, and for live frames the live student's. Where one named checkpoint serves both modes,
    # live frames use the mirror only: photo views (up to twelve per network) would not keep webcam rate.
    photo_tta: str | None = None
    live_tta: str | None = None
    # Crowd photos: the largest faces are kept and the answer says how many were left out.
    max_faces: int = 100
    jpeg_quality: int = 90

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "ServingConfig":
        """Build from a mapping of field names (any case) to values or strings, refusing unknown names."""
        fields = {item.name: item for item in dataclasses.fields(cls)}
        resolved: dict[str, Any] = {}
        for key, value in values.items():
            name = key.lower()
            if name not in fields:
                raise ValueError(f"unknown serving setting {key!r}; known: {', '.join(sorted(fields))}")
            resolved[name] = _convert(value, getattr(cls, name)) if isinstance(value, str) else value
        return cls(**resolved)


def _convert(raw: str, default: Any) -> Any:
    """A string from the environment or the command line, as the type of the setting's default."""
    if raw.strip().lower() in ("", "none"):
        return None
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if default is None:  # an optional number or string: a number when it reads as one
        for kind in (int, float):
            try:
                return kind(raw)
            except ValueError:
                pass
    return raw
