"""How a grayscale face becomes model input, and test-time views; the facts travel inside each checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

# Test-time augmentation modes, cheapest first. "five_crop_flip" averages ten views: the centre crop and
# four crops shifted 2 px diagonally (inside the range of training shifts), each with its mirror image.
TTA_MODES = ("none", "flip", "five_crop_flip")
_FIVE_CROP_SHIFT = 2


@dataclass(frozen=True)
class Preprocessing:
    """Faces are resized to ``resize`` pixels square, centre-cropped to ``input_size``, then normalised.

    ``tta`` is the test-time augmentation the shipped pipeline uses (chosen on PublicTest).
    """

    resize: int = 48
    input_size: int = 40
    mean: float = 0.5
    std: float = 0.25
    tta: str = "flip"

    def _crop(self, faces: torch.Tensor, dy: int = 0, dx: int = 0) -> torch.Tensor:
        margin = (self.resize - self.input_size) // 2
        top, left = margin + dy, margin + dx
        return faces[..., top:top + self.input_size, left:left + self.input_size]

    def _normalise(self, crops: torch.Tensor) -> torch.Tensor:
        # channels_last runs the convolutions ~25% faster on CPU (oneDNN's preferred layout).
        return ((crops - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    def to_input(self, faces: torch.Tensor) -> torch.Tensor:
        """Centre-crop and normalise a float [N,1,resize,resize] batch of [0,1] faces."""
        return self._normalise(self._crop(faces))

    def tta_modes(self) -> tuple[str, ...]:
        """The TTA modes this input geometry allows (shifted crops need a margin around the centre crop)."""
        has_margin = (self.resize - self.input_size) // 2 >= _FIVE_CROP_SHIFT
        return TTA_MODES if has_margin else tuple(m for m in TTA_MODES if m != "five_crop_flip")

    def views(self, faces: torch.Tensor, tta: str | None = None) -> torch.Tensor:
        """All test-time views of a [N,1,resize,resize] batch, stacked view-major: [V*N,1,size,size]."""
        mode = tta or self.tta
        if mode not in self.tta_modes():
            raise ValueError(f"unknown test-time augmentation {mode!r} for {self.input_size}px crops of "
                             f"{self.resize}px faces; expected one of {', '.join(self.tta_modes())}")
        shift = _FIVE_CROP_SHIFT
        offsets = [(0, 0)] + ([(-shift, -shift), (-shift, shift), (shift, -shift), (shift, shift)]
                              if mode == "five_crop_flip" else [])
        crops = [self._crop(faces, dy, dx) for dy, dx in offsets]
        if mode != "none":
            crops += [crop.flip(-1) for crop in crops]
        return self._normalise(torch.cat(crops))


def calibrate(probabilities: torch.Tensor, temperature: float = 1.0,
              class_bias: Sequence[float] = ()) -> torch.Tensor:
    """softmax((log p + class_bias) / T): a per-class margin shift, then temperature (T > 1 softens)."""
    if temperature == 1.0 and not class_bias:
        return probabilities
    log_probs = probabilities.clamp_min(1e-12).log()
    if class_bias:
        log_probs = log_probs + torch.tensor(class_bias, dtype=log_probs.dtype, device=log_probs.device)
    return (log_probs / temperature).softmax(dim=1)


@torch.inference_mode()
def predict_faces(model: torch.nn.Module, faces: torch.Tensor, prep: Preprocessing,
                  tta: str | None = None) -> torch.Tensor:
    """Softmax probabilities [N,classes] for [0,1] faces [N,1,resize,resize], averaged over the TTA views."""
    views = prep.views(faces, tta)
    probabilities = model(views).float().softmax(dim=1)
    return probabilities.view(-1, faces.shape[0], probabilities.shape[1]).mean(dim=0)
