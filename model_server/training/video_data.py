"""Labelled video clips to training faces, with each actor in exactly one split.

``python -m model_server.training.video_data CLIPS_DIR OUT_DIR`` writes ``OUT_DIR/<split>/<class>/<image>.png``
(train, val, test), which ``python -m model_server.train --data OUT_DIR`` reads like any folder data set.
Faces are found and cut by the serving model's own detect-and-crop step (the crop the classifier sees
when serving), so training and serving faces have the same geometry.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2

from ..api import AnalysisRequest, Predictor, load_predictor
from ..errors import AnalysisError
from ..labels import EMOTIONS
from ..video import VideoError, frame_input, sample_frames

VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".avi", ".mkv", ".m4v"}
SPLIT_FOLDERS = ("train", "val", "test")  # load_folder's aliases for Training, PublicTest, PrivateTest
DEFAULT_FPS = 2.0  # acted clips hold an expression for seconds; denser frames add near-duplicates, not faces
DEFAULT_FACES_PER_CLIP = 8  # caps how much one long clip weighs against the others

# RAVDESS file names: modality-channel-emotion-intensity-statement-repetition-actor, e.g. 03-01-06-01-02-01-12.mp4.
# Modality 01 is audio-video and 02 video-only; 03 is audio-only (no faces). Emotion codes to FER labels:
RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fear",
                    "07": "disgust", "08": "surprise"}
# Calm has no FER class. Dropped by default: RAVDESS actors play it as a relaxed, often faintly smiling face,
# so folding it into neutral would teach "neutral" a smile. ``--calm neutral`` keeps it as neutral instead.
CALM_CHOICES = ("drop", "neutral")


@dataclass(frozen=True)
class ClipLabel:
    """What a clip's name says: the FER emotion acted (None: not usable) and who acted it."""

    emotion: str | None
    subject: str


def ravdess_label(path: Path, calm: str = "drop") -> ClipLabel | None:
    """The label of a RAVDESS-named clip; None for names that are not RAVDESS or audio-only files."""
    fields = path.stem.split("-")
    if len(fields) != 7 or not all(len(f) == 2 and f.isdigit() for f in fields):
        return None
    modality, _channel, code, _intensity, _statement, _repetition, actor = fields
    if modality not in ("01", "02") or code not in RAVDESS_EMOTIONS:
        return None
    emotion = RAVDESS_EMOTIONS[code]
    if emotion == "calm":
        emotion = "neutral" if calm == "neutral" else None
    return ClipLabel(emotion, f"actor{actor}")


def folder_label(path: Path, calm: str = "drop") -> ClipLabel | None:
    """``<subject>/<emotion>/<clip>``: the folder above the clip names the emotion, the one above it the subject."""
    emotion = path.parent.name.lower()
    if emotion == "calm" and calm == "neutral":
        emotion = "neutral"
    return ClipLabel(emotion if emotion in EMOTIONS else None, path.parent.parent.name) if emotion else None


SCHEMES: dict[str, Callable[..., ClipLabel | None]] = {"ravdess": ravdess_label, "folder": folder_label}


def assign_splits(subjects: list[str], val: float = 0.1, test: float = 0.1, seed: int = 0) -> dict[str, str]:
    """Subject → split folder; each subject in exactly one split, every split non-empty from three subjects on."""
    order = sorted(set(subjects))
    random.Random(seed).shuffle(order)
    count = len(order)
    n_test = max(1, round(count * test)) if count >= 3 else 0
    n_val = max(1, round(count * val)) if count >= 3 else 0
    split_of = {subject: "test" for subject in order[:n_test]}
    split_of.update({subject: "val" for subject in order[n_test:n_test + n_val]})
    split_of.update({subject: "train" for subject in order[n_test + n_val:]})
    return split_of


def clip_faces(path: Path, predictor: Predictor, fps: float = DEFAULT_FPS,
               limit: int = DEFAULT_FACES_PER_CLIP) -> list:
    """Gray face crops of the largest face in frames sampled from a clip (the actor), as serving cuts them."""
    crops = []
    for _seconds, rgb in sample_frames(path, fps):
        analysis = predictor.analyze(AnalysisRequest(frame_input(rgb, predictor), mode="photo", want_crops=True))
        face = max(analysis.faces, key=lambda f: f.box.w * f.box.h, default=None)
        if face is not None and face.crop is not None:
            crops.append(face.crop)
        if len(crops) >= limit:
            break
    return crops


def build_dataset(clips_dir: Path, out_dir: Path, predictor: Predictor, scheme: str = "ravdess",
                  fps: float = DEFAULT_FPS, faces_per_clip: int = DEFAULT_FACES_PER_CLIP, calm: str = "drop",
                  val: float = 0.1, test: float = 0.1, seed: int = 0) -> dict[str, Any]:
    """Write ``out_dir/<split>/<class>/<subject>_<clip>_<n>.png`` and a manifest; return the manifest."""
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty; choose a new folder so no old faces mix in")
    labelled, skipped = [], []
    for path in sorted(p for p in clips_dir.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES):
        label = SCHEMES[scheme](path, calm=calm)
        (labelled if label is not None and label.emotion else skipped).append((path, label))
    split_of = assign_splits([label.subject for _, label in labelled], val, test, seed)
    counts: Counter[str] = Counter()
    unreadable = []
    for path, label in labelled:
        split = split_of[label.subject]
        try:
            crops = clip_faces(path, predictor, fps, faces_per_clip)
        except (VideoError, AnalysisError) as error:
            unreadable.append(f"{path.name}: {error}")
            continue
        folder = out_dir / split / label.emotion
        folder.mkdir(parents=True, exist_ok=True)
        for number, crop in enumerate(crops):
            cv2.imwrite(str(folder / f"{label.subject}_{path.stem}_{number:03d}.png"), crop)
        counts[f"{split}/{label.emotion}"] += len(crops)
    subjects = {split: sorted(s for s, chosen in split_of.items() if chosen == split) for split in SPLIT_FOLDERS}
    manifest = {"clips_dir": str(clips_dir), "scheme": scheme, "calm": calm, "fps": fps,
                "faces_per_clip": faces_per_clip, "seed": seed, "model": predictor.info.version,
                "subjects": subjects, "faces": dict(sorted(counts.items())),
                "skipped": [path.name for path, _ in skipped], "unreadable": unreadable}
    out_dir.mkdir(parents=True, exist_ok=True)
    # Kept beside the faces, so a model trained on them can say where its data came from.
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Build the folder data set and print its manifest."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips_dir", type=Path, help="folder of labelled clips (searched recursively)")
    parser.add_argument("out_dir", type=Path, help="new folder for <split>/<class>/<image>.png")
    parser.add_argument("--scheme", choices=sorted(SCHEMES), default="ravdess", help="how clip paths give labels")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help="frames sampled per second of clip")
    parser.add_argument("--faces-per-clip", type=int, default=DEFAULT_FACES_PER_CLIP)
    parser.add_argument("--calm", choices=CALM_CHOICES, default="drop", help="RAVDESS calm: drop it or call it neutral")
    parser.add_argument("--val", type=float, default=0.1, help="share of subjects in the validation split")
    parser.add_argument("--test", type=float, default=0.1, help="share of subjects in the test split")
    parser.add_argument("--seed", type=int, default=0, help="which subjects land in which split")
    parser.add_argument("--predictor", default="model_server.serving.engine:create_engine",
                        help="module:factory of the model whose detector and crop step cut the faces")
    args = parser.parse_args(argv)
    if not args.clips_dir.is_dir():
        parser.error(f"{args.clips_dir} is not a folder")
    predictor = load_predictor(args.predictor, batching=False)
    try:
        manifest = build_dataset(args.clips_dir, args.out_dir, predictor, args.scheme, args.fps,
                                 args.faces_per_clip, args.calm, args.val, args.test, args.seed)
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        predictor.close()
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
