"""What the FER2013 framing benchmarks share: their options, a random PublicTest sample, FER's faces enlarged
in a reflected border (a picture a detector can search), and a classifier's calibrated accuracy on crops."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model_server.checkpoint import LIVE_CHECKPOINT, load_model  # noqa: E402
from model_server.training.data import load_faces  # noqa: E402
from model_server.training.loop import TrainConfig, predict_probabilities  # noqa: E402

FACE = 4 * 48  # a face enlarged 4x: cascades need more than 48 px to box it


def sample_arguments(description: str, limit: int) -> argparse.Namespace:
    """--data, --limit (random PublicTest faces) and --checkpoint (default: the live student), parsed."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=TrainConfig.data)
    parser.add_argument("--limit", type=int, default=limit, help="random PublicTest faces to use")
    parser.add_argument("--checkpoint", default=str(LIVE_CHECKPOINT))
    return parser.parse_args()


def public_sample(data: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(faces [N,48,48] uint8, labels [N]) of a fixed random sample of PublicTest."""
    public = load_faces(data).split("PublicTest")
    chosen = np.random.default_rng(0).choice(len(public.images), min(limit, len(public.images)), replace=False)
    return public.images[chosen], public.labels[chosen]


def in_border(face: np.ndarray) -> np.ndarray:
    """The face enlarged to FACE px in the middle of a canvas twice that size, the border filled by reflection."""
    big = cv2.resize(face, (FACE, FACE), interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(big, FACE // 2, FACE // 2, FACE // 2, FACE // 2, cv2.BORDER_REFLECT)


def accuracy_on(checkpoint: str) -> Callable[[list[np.ndarray], np.ndarray], float]:
    """A function giving the checkpoint's calibrated accuracy (mirror views) on 48x48 uint8 crops and labels."""
    model, card = load_model(checkpoint)

    def accuracy(faces: list[np.ndarray], labels: np.ndarray) -> float:
        probabilities = predict_probabilities(model, torch.from_numpy(np.stack(faces)), card.preprocessing, tta="flip")
        return float((card.calibrate(probabilities).argmax(dim=1).numpy() == labels).mean())

    return accuracy
