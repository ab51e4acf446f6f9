"""Small generated inputs for the model_server tests: no FER2013, no network, no shipped-weight quirks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from model_server.checkpoint import ModelCard, save_checkpoint
from model_server.labels import EMOTIONS
from model_server.networks import create_model
from model_server.preprocessing import Preprocessing

FER_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013" / "fer2013.npz"


def tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """A randomly initialised vgg_tiny checkpoint with a complete model card."""
    import torch

    torch.manual_seed(seed)
    model = create_model("vgg_tiny", num_classes=len(EMOTIONS)).eval()
    card = ModelCard(architecture="vgg_tiny", architecture_kwargs={}, preprocessing=Preprocessing(),
                     version="test-tiny", metrics={"public_test_accuracy": 0.0})
    save_checkpoint(path, model, card)
    return path


def astronaut_rgb() -> np.ndarray:
    """scikit-image's astronaut portrait: a real, freely usable face photo (512x512 RGB)."""
    from skimage.data import astronaut

    return astronaut()


def write_fer_csv(path: Path, rows_per_split=(70, 14, 14), seed: int = 0) -> Path:
    """A fer2013.csv-shaped file of random faces, every class present in every split."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as handle:
        handle.write("emotion,pixels,Usage\n")
        for split, count in zip(("Training", "PublicTest", "PrivateTest"), rows_per_split):
            for row in range(count):
                pixels = " ".join(map(str, rng.integers(0, 256, 48 * 48)))
                handle.write(f"{row % 7},{pixels},{split}\n")
    return path


def write_image(path: Path, size=(64, 48), mode: str = "L", seed: int = 0, **save_options) -> Path:
    """A random image of the given size and PIL mode, saved in the format its suffix names."""
    rng = np.random.default_rng(seed)
    channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], *channels), dtype=np.uint8)
    Image.fromarray(pixels, mode).save(path, **save_options)
    return path
