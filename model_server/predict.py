"""Predict emotions for image files: ``python -m model_server.predict IMAGE... [--annotate OUT.png]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .checkpoint import CheckpointError
from .serving.draw import annotate
from .serving.imaging import ImageError, decode_image, encode_image
from .labels import to_six_class
from .serving.engine import create_pipeline
from .preprocessing import TTA_MODES


def analysis_to_json(path: str, analysis) -> dict:
    """The per-image JSON printed by the CLI (the same face shape as the web API)."""
    return {
        "image": path, "width": analysis.width, "height": analysis.height, "model": analysis.model.version,
        "faces": [{"index": i, "box": f.box.as_dict(), "emotions": f.emotions, "top": f.top, "emoji": f.emoji,
                   "six_class": to_six_class(f.probabilities)} for i, f in enumerate(analysis.faces)],
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
    args = parser.parse_args(argv)
    try:
        pipeline = create_pipeline(args.checkpoint, tta=args.tta, batching=False)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failures = 0
    for index, name in enumerate(args.images):
        try:
            image = decode_image(Path(name).read_bytes())
        except (OSError, ImageError) as error:
            print(json.dumps({"image": name, "error": str(error)}))
            failures += 1
            continue
        analysis = pipeline.analyze(image.rgb)
        print(json.dumps(analysis_to_json(name, analysis), ensure_ascii=False))
        if args.annotate:
            target = annotated_path(args.annotate, index, len(args.images))
            target.write_bytes(encode_image(annotate(image.rgb, analysis), "PNG"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
