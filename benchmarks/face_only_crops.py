"""How often the photo detector finds the face in a picture that is only a face (a face data set's crop).

    .venv/bin/python benchmarks/face_only_crops.py [--limit 300] [--sizes 48 100 160 256]

Random PublicTest faces, cropped as FER2013 crops them (brow to chin), resized to each size, are given to the
photo detector as whole pictures. A miss means "no face" for a visitor or a data set evaluated through the
API, which is why such pictures can be sent with face_only (read whole, no detection).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model_server.serving.detector import create_detector  # noqa: E402
from model_server.training.data import load_faces  # noqa: E402
from model_server.training.loop import TrainConfig  # noqa: E402


def main() -> None:
    """Print, per picture size, the share of faces the photo detector finds."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=TrainConfig.data)
    parser.add_argument("--limit", type=int, default=300, help="random PublicTest faces to use")
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 100, 160, 256], help="picture sides in px")
    args = parser.parse_args()
    public = load_faces(args.data).split("PublicTest")
    chosen = np.random.default_rng(1).choice(len(public.images), min(args.limit, len(public.images)), replace=False)
    detector = create_detector("photo")
    for size in args.sizes:
        pictures = [public.images[i] if size == 48 else
                    cv2.resize(public.images[i], (size, size), interpolation=cv2.INTER_CUBIC) for i in chosen]
        # A hit must be the face itself, not a detail of it: a box of at least half the picture.
        found = sum(any(box.w >= size / 2 for box in detector.detect(picture)) for picture in pictures)
        print(f"{size} px: the photo detector finds {found / len(chosen):.1%} of {len(chosen)} face-only pictures",
              flush=True)


if __name__ == "__main__":
    main()
