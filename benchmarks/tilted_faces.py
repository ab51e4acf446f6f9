"""Tilted heads in photos: accuracy of faces cut as found (axis-aligned) and cut upright from the detector's turn.

    .venv/bin/python benchmarks/tilted_faces.py [--limit 600] [--checkpoint model_server/weights/emotion_live.pt]

Each PublicTest face is enlarged 4x (to 192 px), set in a reflected border like benchmarks/crop_framing.py,
and rotated by each angle about its centre. The photo detector looks for it; for the box nearest the middle
the classifier reads the crop cut axis-aligned (as the engine cut every face before) and the crop turned
upright by the angle of the detector pass that found it (``upright_crop``, what the engine cuts now). FER's
own upright crops of the same faces give the ceiling.
"""

from __future__ import annotations

import cv2

from fer_sample import accuracy_on, in_border, public_sample, sample_arguments
from model_server.serving.config import ServingConfig
from model_server.serving.detector import create_detector, square_box, upright_crop

ANGLES = (-25, -20, -15, 0, 15, 20, 25)


def main() -> None:
    """Print, per rotation, how often the face is found, which pass found it, and both crops' accuracy."""
    args = sample_arguments(__doc__, limit=600)
    faces, labels = public_sample(args.data, args.limit)
    accuracy, detector, margin = accuracy_on(args.checkpoint), create_detector("photo"), ServingConfig.crop_margin
    print(f"{len(faces)} PublicTest faces, {args.checkpoint}, crop margin {margin}")
    for angle in ANGLES:
        as_found, turned, found, turns = [], [], [], []
        for k, face in enumerate(faces):
            canvas = in_border(face)
            middle = canvas.shape[0] / 2
            canvas = cv2.warpAffine(canvas, cv2.getRotationMatrix2D((middle, middle), angle, 1.0), canvas.shape[::-1],
                                    borderMode=cv2.BORDER_REFLECT)
            near = [box for box in detector.detect(canvas)
                    if abs(box.x + box.w / 2 - middle) < 40 and abs(box.y + box.h / 2 - middle) < 40]
            if not near:
                continue
            box = max(near, key=lambda b: b.w)
            square = square_box(box, margin, *canvas.shape[::-1])
            region = canvas[square.y:square.y + square.h, square.x:square.x + square.w]
            as_found.append(cv2.resize(region, (48, 48), interpolation=cv2.INTER_AREA))
            turned.append(upright_crop(canvas, box, margin, 48))
            found.append(k)
            turns.append(box.angle)
        seen = labels[found]
        passes = {turn: turns.count(turn) for turn in sorted(set(turns))}
        print(f"rotation {angle:+d}°: found {len(found) / len(faces):.0%}, pass angles {passes}; accuracy "
              f"as found {accuracy(as_found, seen):.2%}, turned upright {accuracy(turned, seen):.2%}, "
              f"FER's upright crops {accuracy([faces[k] for k in found], seen):.2%}", flush=True)


if __name__ == "__main__":
    main()
