"""Would levelling the eyes (OpenCV's bundled eye cascade) before classification help? Measured on PublicTest.

    .venv/bin/python benchmarks/eye_alignment.py [--checkpoint model_server/weights/emotion_live.pt] [--limit N]

Each PublicTest face is rotated by 0, ±10 and ±20 degrees (as the robustness table does). The eye cascade
looks for two eyes on the rotated face (upscaled to 96 px); where it finds a plausible pair, the face is
re-cut from the original at the rotation minus the eyes' angle, in one resampling, as a pipeline that
rotates the photo about the face before cropping would. Prints accuracy without and with the levelling,
and how often a pair of eyes was found. Nothing of this ships: see the README ("Generalisation").
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model_server.checkpoint import LIVE_CHECKPOINT, load_model  # noqa: E402
from model_server.training import augment  # noqa: E402
from model_server.training.data import load_faces  # noqa: E402
from model_server.training.loop import TrainConfig, predict_probabilities  # noqa: E402

ANGLES = (0, 10, -10, 20, -20)
# A levelling under this many degrees is noise of the eye boxes, not a tilt.
MIN_CORRECTION_DEG = 5.0


def eye_angle(face: np.ndarray, eyes: cv2.CascadeClassifier) -> float | None:
    """Roll of a uint8 48x48 face in degrees (positive: its right-hand eye is lower), or None without two eyes."""
    big = cv2.equalizeHist(cv2.resize(face, (96, 96), interpolation=cv2.INTER_CUBIC))
    found = eyes.detectMultiScale(big, scaleFactor=1.1, minNeighbors=3, minSize=(12, 12), maxSize=(40, 40))
    centres = sorted((x + w / 2, y + h / 2) for x, y, w, h in found if y + h / 2 < 60)
    best = None
    for i, (x1, y1) in enumerate(centres):
        for x2, y2 in centres[i + 1:]:
            distance, angle = math.hypot(x2 - x1, y2 - y1), math.degrees(math.atan2(y2 - y1, x2 - x1))
            # Eyes of a 96 px face sit 25-70 px apart; a steeper "pair" is an eye and an eyebrow or nostril.
            if 25 <= distance <= 70 and abs(angle) <= 35 and (best is None or distance > best[0]):
                best = (distance, angle)
    return None if best is None else best[1]


def main() -> None:
    """Print accuracy per rotation, without and with eye levelling."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(LIVE_CHECKPOINT))
    parser.add_argument("--data", default=TrainConfig.data)
    parser.add_argument("--limit", type=int, default=None, help="first N PublicTest faces only")
    args = parser.parse_args()
    public = load_faces(args.data).split("PublicTest")
    images, labels = torch.from_numpy(public.images[:args.limit]), public.labels[:args.limit]
    model, card = load_model(args.checkpoint)
    eyes = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")
    faces = images.float().unsqueeze(1) / 255.0

    def accuracy(batch: torch.Tensor) -> float:
        as_uint8 = (batch * 255).round().clamp(0, 255).to(torch.uint8).squeeze(1)
        probabilities = card.calibrate(predict_probabilities(model, as_uint8, card.preprocessing, tta="flip"))
        return float((probabilities.argmax(dim=1).numpy() == labels).mean())

    print("| rotation | accuracy | with eye levelling | eyes found |")
    print("|---|---|---|---|")
    for rotation in ANGLES:
        rotated = augment.reframe(faces, rotation_deg=rotation) if rotation else faces
        seen = (rotated * 255).round().clamp(0, 255).to(torch.uint8).squeeze(1).numpy()
        levelled, found = rotated.clone(), 0
        for index, face in enumerate(seen):
            roll = eye_angle(face, eyes)
            found += roll is not None
            if roll is not None and abs(roll) >= MIN_CORRECTION_DEG:
                # reframe's angle and the eyes' roll share a sign convention: adding them undoes the tilt.
                levelled[index:index + 1] = augment.reframe(faces[index:index + 1], rotation_deg=rotation + roll)
        print(f"| {rotation:+d}° | {accuracy(rotated):.2%} | {accuracy(levelled):.2%} | {found / len(seen):.0%} |",
              flush=True)


if __name__ == "__main__":
    main()
