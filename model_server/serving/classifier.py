"""The emotion classifier: a checkpoint loaded once, serving batches of face crops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..checkpoint import DEFAULT_CHECKPOINT, LIVE_CHECKPOINT, load_model
from ..preprocessing import predict_faces


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA when present (or as named), otherwise the CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


SHIPPED = {"photo": DEFAULT_CHECKPOINT, "live": LIVE_CHECKPOINT}


class EmotionClassifier:
    """Turns grayscale face crops of any size into seven-class probabilities."""

    def __init__(self, checkpoint: str | Path | None = None, device: str = "auto", tta: str | None = None,
                 variant: str = "photo"):
        # Without an explicit file, photos get the shipped ensemble and live video its distilled student.
        if variant not in SHIPPED:
            raise ValueError(f"unknown classifier variant {variant!r}; expected one of {', '.join(SHIPPED)}")
        self.model, self.card = load_model(checkpoint or SHIPPED[variant])
        self.device = pick_device(device)
        self.model = self.model.to(self.device, memory_format=torch.channels_last)
        self.preprocessing = self.card.preprocessing
        # Test-time views (mirror, shifted crops) cost a few extra images per face and gain accuracy;
        # by default the mode the model card names, the one its figures were measured with.
        self.tta = tta or self.preprocessing.tta

    def to_model_size(self, gray_face: np.ndarray) -> np.ndarray:
        """Resize one grayscale crop to the square size the model was trained on."""
        size = self.preprocessing.resize
        interpolation = cv2.INTER_AREA if min(gray_face.shape[:2]) > size else cv2.INTER_LINEAR
        return cv2.resize(gray_face, (size, size), interpolation=interpolation)

    def classify(self, gray_faces: list[np.ndarray], tta: str | None = None) -> np.ndarray:
        """Calibrated probabilities [N,7] in the card's label order for N grayscale uint8 crops."""
        if not gray_faces:
            return np.zeros((0, len(self.card.labels)), dtype=np.float32)
        batch = np.stack([self.to_model_size(face) for face in gray_faces])
        faces = torch.from_numpy(batch).to(self.device).float().unsqueeze(1) / 255.0
        probabilities = predict_faces(self.model, faces, self.preprocessing, tta or self.tta)
        return self.card.calibrate(probabilities).cpu().numpy()

    def warm_up(self) -> None:
        """Run one dummy batch so the first real request does not pay for lazy initialisation."""
        self.classify([np.zeros((self.preprocessing.resize,) * 2, dtype=np.uint8)])
