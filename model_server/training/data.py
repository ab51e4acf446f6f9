"""Loaders for FER2013 in its three common layouts, all returning one FaceSet."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..labels import EMOTIONS

SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
IMAGE_SIZE = 48
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}

# Folder-name variants seen in the Kaggle image-folder copies of FER2013.
_SPLIT_ALIASES = {
    "train": "Training", "training": "Training",
    "val": "PublicTest", "valid": "PublicTest", "validation": "PublicTest", "publictest": "PublicTest",
    "test": "PrivateTest", "privatetest": "PrivateTest",
}
_CLASS_ALIASES = {
    "anger": "angry", "disgusted": "disgust", "fearful": "fear", "happiness": "happy",
    "sadness": "sad", "surprised": "surprise",
}
# FER+ vote columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF.
# FER+ column → FER2013 class index; contempt counts toward disgust, unknown/NF are dropped.
_FERPLUS_TO_FER = {0: 6, 1: 3, 2: 5, 3: 4, 4: 0, 5: 1, 6: 2}
_FERPLUS_CONTEMPT, _FERPLUS_DISGUST_TARGET = 7, 1


class DataError(ValueError):
    """A data set path or file that cannot be read as FER2013-style faces."""


@dataclass
class FaceSet:
    """Grayscale 48x48 faces with FER2013 labels, split ids and optional FER+ soft labels."""

    images: np.ndarray  # uint8 [N, 48, 48]
    labels: np.ndarray  # int64 [N], FER2013 order
    usage: np.ndarray  # uint8 [N], index into SPLITS
    soft_labels: np.ndarray | None = None  # float32 [N, 7], FER+ vote distribution
    source: str = ""
    ferplus_majority: np.ndarray | None = None  # int64 [N], FER+ majority class in FER2013 order, -1 if none

    def split(self, name: str) -> "FaceSet":
        """Return the rows of one split (Training, PublicTest or PrivateTest)."""
        mask = self.usage == SPLITS.index(name)
        soft = None if self.soft_labels is None else self.soft_labels[mask]
        majority = None if self.ferplus_majority is None else self.ferplus_majority[mask]
        return FaceSet(self.images[mask], self.labels[mask], self.usage[mask], soft, f"{self.source}:{name}",
                       majority)

    def fingerprint(self) -> str:
        """Short sha256 of pixels, labels and splits: identifies the exact training data."""
        digest = hashlib.sha256()
        for array in (self.images, self.labels, self.usage):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.labels)


def ferplus_to_soft_labels(votes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Turn FER+ vote counts into 7-class distributions; rows without usable votes use their label."""
    soft = np.zeros((len(votes), len(EMOTIONS)), dtype=np.float32)
    for ferplus_column, fer_index in _FERPLUS_TO_FER.items():
        soft[:, fer_index] = votes[:, ferplus_column]
    soft[:, _FERPLUS_DISGUST_TARGET] += votes[:, _FERPLUS_CONTEMPT]
    totals = soft.sum(axis=1, keepdims=True)
    one_hot = np.eye(len(EMOTIONS), dtype=np.float32)[labels]
    return np.where(totals > 0, soft / np.maximum(totals, 1), one_hot)


def ferplus_majority_labels(votes: np.ndarray) -> np.ndarray:
    """FER+ majority label per row in FER2013 order (contempt counted as disgust), or -1 for rows the
    crowd did not read as one of the emotions (no votes, or "unknown" / "not a face" leading)."""
    emotion_votes = np.zeros((len(votes), len(EMOTIONS)), dtype=np.float32)
    for ferplus_column, fer_index in _FERPLUS_TO_FER.items():
        emotion_votes[:, fer_index] = votes[:, ferplus_column]
    emotion_votes[:, _FERPLUS_DISGUST_TARGET] += votes[:, _FERPLUS_CONTEMPT]
    usable = emotion_votes.max(axis=1) > votes[:, _FERPLUS_CONTEMPT + 1:].max(axis=1)
    return np.where(usable, emotion_votes.argmax(axis=1), -1).astype(np.int64)


def load_npz(path: Path, drop_inexact: bool = True) -> FaceSet:
    """Load the project's fer2013.npz (see its README); optionally drop rows whose pixels are approximate."""
    try:
        archive = np.load(path)
        images, labels, usage = archive["images"], archive["labels"].astype(np.int64), archive["usage"]
    except (OSError, KeyError, ValueError) as error:
        raise DataError(f"{path}: not a FER2013 npz archive ({error})") from error
    keep = np.ones(len(labels), dtype=bool)
    if drop_inexact and "provenance" in archive:
        # Only Training rows are dropped: the test splits must stay whole to be comparable.
        keep &= ~((archive["provenance"] == 3) & (usage == 0))
    soft = majority = None
    if "ferplus_votes" in archive:
        votes = archive["ferplus_votes"].astype(np.float32)
        soft = ferplus_to_soft_labels(votes, labels)[keep]
        majority = ferplus_majority_labels(votes)[keep]
    return FaceSet(images[keep], labels[keep], usage[keep], soft, str(path), majority)


def load_csv(path: Path) -> FaceSet:
    """Load the original Kaggle fer2013.csv (columns emotion, pixels, Usage)."""
    images, labels, usage = [], [], []
    try:
        with open(path, newline="") as handle:
            for line_number, row in enumerate(csv.DictReader(handle), start=2):
                pixels = np.array(row["pixels"].split(), dtype=np.uint8)
                if pixels.size != IMAGE_SIZE * IMAGE_SIZE:
                    raise DataError(f"{path}:{line_number}: expected 2304 pixels, got {pixels.size}")
                images.append(pixels.reshape(IMAGE_SIZE, IMAGE_SIZE))
                labels.append(int(row["emotion"]))
                usage.append(SPLITS.index(row.get("Usage") or "Training"))
    except (OSError, KeyError, ValueError) as error:
        raise DataError(f"{path}: not a FER2013 csv ({error})") from error
    if not images:
        raise DataError(f"{path}: no rows")
    return FaceSet(np.stack(images), np.array(labels, dtype=np.int64), np.array(usage, dtype=np.uint8),
                   source=str(path))


def _class_index(folder_name: str) -> int | None:
    name = _CLASS_ALIASES.get(folder_name.lower(), folder_name.lower())
    return EMOTIONS.index(name) if name in EMOTIONS else None


def _read_face(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise DataError(f"{path}: unreadable image")
    if image.shape != (IMAGE_SIZE, IMAGE_SIZE):
        image = cv2.resize(image, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    return image


def load_folder(root: Path) -> FaceSet:
    """Load ``<split>/<class>/<image>`` folders, or ``<class>/<image>`` (taken as Training)."""
    split_dirs = [(child, _SPLIT_ALIASES[child.name.lower()]) for child in sorted(root.iterdir())
                  if child.is_dir() and child.name.lower() in _SPLIT_ALIASES]
    if not split_dirs:
        split_dirs = [(root, "Training")]
    images, labels, usage = [], [], []
    for split_dir, split in split_dirs:
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            label = _class_index(class_dir.name)
            if label is None:
                continue
            for image_path in sorted(class_dir.iterdir()):
                if image_path.suffix.lower() in IMAGE_SUFFIXES:
                    images.append(_read_face(image_path))
                    labels.append(label)
                    usage.append(SPLITS.index(split))
    if not images:
        raise DataError(f"{root}: no images found in <split>/<class>/ or <class>/ folders")
    return FaceSet(np.stack(images), np.array(labels, dtype=np.int64), np.array(usage, dtype=np.uint8),
                   source=str(root))


def load_faces(path: str | Path) -> FaceSet:
    """Load a data set from an .npz, a .csv or an image folder, chosen by what the path is."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        return load_folder(path)
    if path.suffix.lower() == ".npz":
        return load_npz(path)
    if path.suffix.lower() == ".csv":
        return load_csv(path)
    raise DataError(f"{path}: expected a .npz, a .csv or a folder of images")


def concatenate(parts: list[FaceSet]) -> FaceSet:
    """Join data sets; rows without FER+ votes get their one-hot label as soft target when others have votes."""
    soft = None
    if any(part.soft_labels is not None for part in parts):
        soft = np.concatenate([part.soft_labels if part.soft_labels is not None
                               else np.eye(len(EMOTIONS), dtype=np.float32)[part.labels] for part in parts])
    return FaceSet(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]),
                   np.concatenate([p.usage for p in parts]), soft, ",".join(p.source for p in parts))


def load_sources(spec: str) -> FaceSet:
    """Load one data set, or several joined (comma-separated), e.g. FER2013 plus exported corrections."""
    paths = [part.strip() for part in spec.split(",") if part.strip()]
    if not paths:
        raise DataError("no data path given")
    parts = [load_faces(path) for path in paths]
    return parts[0] if len(parts) == 1 else concatenate(parts)

