"""The emotion classifier: a checkpoint loaded once, serving batches of face crops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from .checkpoint import DEFAULT_CHECKPOINT, load_model


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA when present (or as named), otherwise the CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


class EmotionClassifier:
    """Turns grayscale face crops of any size into seven-class probabilities."""

    def __init__(self, checkpoint: str | Path | None = None, device: str = "auto", flip_tta: bool = True):
        self.model, self.card = load_model(checkpoint or DEFAULT_CHECKPOINT)
        self.device = pick_device(device)
        self.model = self.model.to(self.device, memory_format=torch.channels_last)
        # Averaging with the mirrored face costs one extra image per face and gains
        # accuracy (the evaluation report shows how much); faces are left-right symmetric.
        self.flip_tta = flip_tta
        self.preprocessing = self.card.preprocessing

    def to_model_size(self, gray_face: np.ndarray) -> np.ndarray:
        """Resize one grayscale crop to the square size the model was trained on."""
        size = self.preprocessing.resize
        interpolation = cv2.INTER_AREA if min(gray_face.shape[:2]) > size else cv2.INTER_LINEAR
        return cv2.resize(gray_face, (size, size), interpolation=interpolation)

    @torch.inference_mode()
    def classify(self, gray_faces: list[np.ndarray]) -> np.ndarray:
        """Probabilities [N,7] in the card's label order for N grayscale uint8 crops."""
        if not gray_faces:
            return np.zeros((0, len(self.card.labels)), dtype=np.float32)
        batch = np.stack([self.to_model_size(face) for face in gray_faces])
        inputs = torch.from_numpy(batch).to(self.device).float().unsqueeze(1) / 255.0
        inputs = self.preprocessing.to_input(inputs)
        if self.flip_tta:
            inputs = torch.cat([inputs, inputs.flip(-1)])
        probabilities = self.model(inputs).float().softmax(dim=1)
        if self.flip_tta:
            probabilities = (probabilities[: len(gray_faces)] + probabilities[len(gray_faces):]) / 2
        return probabilities.cpu().numpy()

    def warm_up(self) -> None:
        """Run one dummy batch so the first real request does not pay for lazy initialisation."""
        self.classify([np.zeros((self.preprocessing.resize,) * 2, dtype=np.uint8)])
