"""Predict emotions for image files: ``python -m model_server.predict IMAGE... [--annotate OUT.png]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .api import AnalysisRequest, ImageAnalysis, face_json
from .checkpoint import CheckpointError
from .errors import ImageError
from .labels import to_six_class
from .preprocessing import TTA_MODES
from .serving.engine import create_engine


def analysis_to_json(path: str, analysis: ImageAnalysis) -> dict:
    """The per-image JSON printed by the CLI (the web API's face serializer, plus the six-class view)."""
    return {
        "image": path, "width": analysis.width, "height": analysis.height, "model": analysis.model.version,
        "faces": [face_json(i, f.box, f.emotions, six_class=to_six_class(f.probabilities))
                  for i, f in enumerate(analysis.faces)],
        "faces_omitted": analysis.faces_omitted,
    }


def annotated_path(template: Path, index: int, count: int) -> Path:
    """One output file per image: the name as given for one image, numbered for several."""
    return template if count == 1 else template.with_name(f"{template.stem}-{index}{template.suffix}")


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line per image; exit 1 if any image could not be read."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("images", nargs="+", help="image files (JPEG, PNG or WebP)")
    parser.add_argument("--checkpoint", help="model file (default: the shipped model)")
    parser.add_argument("--annotate", type=Path, metavar="OUT.png", help="write a copy with boxes, labels, emoji")
    parser.add_argument("--tta", choices=TTA_MODES, help="test-time augmentation (default: the model card's)")
    parser.add_argument("--face-only", action="store_true",
                        help="each image is one face, already cropped: skip detection and read the whole image")
    args = parser.parse_args(argv)
    try:
        engine = create_engine(batching=False, checkpoint=args.checkpoint, photo_tta=args.tta)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failures = 0
    for index, name in enumerate(args.images):
        try:
            analysis = engine.analyze(AnalysisRequest(Path(name).read_bytes(), want_annotated=bool(args.annotate),
                                                      face_only=args.face_only))
        except (OSError, ImageError) as error:
            print(json.dumps({"image": name, "error": str(error)}))
            failures += 1
            continue
        print(json.dumps(analysis_to_json(name, analysis), ensure_ascii=False))
        if args.annotate:
            annotated_path(args.annotate, index, len(args.images)).write_bytes(analysis.annotated_png)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
