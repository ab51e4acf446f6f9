"""How serving's crops frame a face compared with FER2013's own crops, and which crop margin matches them.

    .venv/bin/python benchmarks/crop_framing.py [--limit 1000] [--checkpoint model_server/weights/emotion_live.pt]

Each PublicTest face is enlarged 4x (to 192 px) and set in the middle of a canvas twice its size, the
border filled by reflection. Both frontal cascades the detectors use then look for it; the box nearest
the middle is the detector's framing of that face. Prints the box's side relative to FER's 48x48 crop
(1.0: the detector boxes exactly what FER2013 cropped), the margin per side that makes the squared crop
match FER's framing, and the classifier's accuracy on the faces cut with several margins, as the engine
cuts them (``square_box``). Beyond FER's crop the pixels are reflections, so looser crops are judged a
little harshly: a real photo has hair, ears and background there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from model_server.api import Box  # noqa: E402
from model_server.checkpoint import LIVE_CHECKPOINT, load_model  # noqa: E402
from model_server.serving.detector import ALT, FRONTAL, CascadePool, square_box  # noqa: E402
from model_server.training.data import load_faces  # noqa: E402
from model_server.training.loop import TrainConfig, predict_probabilities  # noqa: E402

FACE = 4 * 48  # the face enlarged 4x: cascades need more than 48 px to box it
MARGINS = (0.0, 0.02, 0.05, 0.1, 0.15)


def detected_box(canvas: np.ndarray, cascade: cv2.CascadeClassifier) -> Box | None:
    """The largest face box whose centre is within 40 px of the canvas centre, or None."""
    centre = canvas.shape[0] / 2
    found = cascade.detectMultiScale(canvas, scaleFactor=1.05, minNeighbors=3, minSize=(60, 60))
    near = [Box(*map(int, box)) for box in found
            if abs(box[0] + box[2] / 2 - centre) < 40 and abs(box[1] + box[3] / 2 - centre) < 40]
    return max(near, key=lambda box: box.w, default=None)


def main() -> None:
    """Print the framing statistics and the accuracy per margin for each cascade."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=TrainConfig.data)
    parser.add_argument("--limit", type=int, default=1000, help="random PublicTest faces to use")
    parser.add_argument("--checkpoint", default=str(LIVE_CHECKPOINT))
    args = parser.parse_args()
    public = load_faces(args.data).split("PublicTest")
    chosen = np.random.default_rng(0).choice(len(public.images), min(args.limit, len(public.images)), replace=False)
    model, card = load_model(args.checkpoint)
    canvases = [cv2.copyMakeBorder(cv2.resize(public.images[i], (FACE, FACE), interpolation=cv2.INTER_CUBIC),
                                   FACE // 2, FACE // 2, FACE // 2, FACE // 2, cv2.BORDER_REFLECT) for i in chosen]

    def accuracy(faces: list[np.ndarray], labels: np.ndarray) -> float:
        probabilities = predict_probabilities(model, torch.from_numpy(np.stack(faces)), card.preprocessing, tta="flip")
        return float((card.calibrate(probabilities).argmax(dim=1).numpy() == labels).mean())

    for name in (FRONTAL, ALT):
        with CascadePool(name).borrow() as cascade:
            boxes = [detected_box(canvas, cascade) for canvas in canvases]
        found = [k for k, box in enumerate(boxes) if box is not None]
        ratios = np.array([boxes[k].w / FACE for k in found])
        labels = public.labels[chosen[found]]
        print(f"{name}: found {len(found) / len(chosen):.0%} of {len(chosen)} faces; box side / FER crop: "
              f"median {np.median(ratios):.3f} (quartiles {np.percentile(ratios, 25):.3f}-"
              f"{np.percentile(ratios, 75):.3f}); margin per side matching FER's framing: "
              f"{(1 / np.median(ratios) - 1) / 2:.3f}")
        own = accuracy([public.images[chosen[k]] for k in found], labels)
        print(f"  accuracy on FER's own crops of these faces: {own:.2%}")
        for margin in MARGINS:
            crops = []
            for k in found:
                square = square_box(boxes[k], margin, FACE * 2, FACE * 2)
                region = canvases[k][square.y:square.y + square.h, square.x:square.x + square.w]
                crops.append(cv2.resize(region, (48, 48), interpolation=cv2.INTER_AREA))
            framing = np.median(ratios) * (1 + 2 * margin)
            print(f"  margin {margin:.2f} (about {framing:.2f}x FER's framing): {accuracy(crops, labels):.2%}",
                  flush=True)


if __name__ == "__main__":
    main()
