"""Evaluate a checkpoint: ``python -m model_server.evaluate --data PATH [--split PrivateTest] [--json]``.

With --json the last printed line is one JSON object (accuracy, macro_f1, n, split, ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import DEFAULT_CHECKPOINT, CheckpointError, load_model, read_checkpoint, save_checkpoint
from ..serving.classifier import pick_device
from .data import SPLITS, DataError, load_faces
from ..serving.imaging import encode_image
from ..preprocessing import TTA_MODES
from .metrics import classification_report, draw_confusion_matrix
from .loop import predict_probabilities


def evaluate(checkpoint: str | Path, data: str | Path, split: str, tta: str | None = None,
             device: str = "auto") -> dict:
    """Report for one split with the given TTA mode (default: the card's), plus every mode's headline figures."""
    model, card = load_model(checkpoint)
    model = model.to(pick_device(device), memory_format=torch.channels_last)
    faces = load_faces(data).split(split)
    if len(faces) == 0:
        raise DataError(f"{data}: split {split} is empty")
    images, labels = torch.from_numpy(faces.images), faces.labels
    tta = tta or card.preprocessing.tta
    report = {"split": split, "checkpoint": str(checkpoint), "model_version": card.version, "tta": tta}
    by_mode = {}
    for mode in card.preprocessing.tta_modes():
        probabilities = predict_probabilities(model, images, card.preprocessing, tta=mode).numpy()
        mode_report = classification_report(probabilities, labels, card.labels)
        if mode == tta:
            report.update(mode_report)
        by_mode[mode] = {key: mode_report[key] for key in ("accuracy", "macro_f1", "top2_accuracy",
                                                           "six_class_accuracy")}
        by_mode[mode]["recall"] = {name: row["recall"] for name, row in mode_report["per_class"].items()}
    report["by_tta"] = by_mode
    return report


def record_in_checkpoint(checkpoint: str | Path, report: dict) -> None:
    """Store the report's headline figures in the checkpoint's model card, so the file carries its metrics."""
    payload = read_checkpoint(checkpoint)
    model, card = load_model(checkpoint)
    prefix = {"PrivateTest": "private_test", "PublicTest": "public_test", "Training": "training"}[report["split"]]
    card.metrics[f"{prefix}_accuracy"] = report["accuracy"]
    card.metrics[f"{prefix}_macro_f1"] = report["macro_f1"]
    card.metrics.setdefault("evaluation", {})[report["split"]] = {
        key: report[key] for key in ("n", "tta", "accuracy", "macro_f1", "top2_accuracy", "six_class_accuracy",
                                     "by_tta")}
    # The recorded figures describe what the shipped pipeline does, so it uses the evaluated TTA mode.
    card.preprocessing = dataclasses.replace(card.preprocessing, tta=report["tta"])
    extra = {key: value for key, value in payload.items() if key not in ("state_dict", "card")}
    save_checkpoint(checkpoint, model, card, extra=extra)


def print_report(report: dict) -> None:
    """Human-readable summary table."""
    print(f"{report['split']}  n={report['n']}  model={report['model_version']}  tta={report['tta']}")
    print(f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  "
          f"top-2 {report['top2_accuracy']:.4f}  six-class {report['six_class_accuracy']:.4f}")
    print(f"{'class':10s} {'precision':>9s} {'recall':>7s} {'f1':>6s} {'support':>8s}")
    for name, row in report["per_class"].items():
        print(f"{name:10s} {row['precision']:9.3f} {row['recall']:7.3f} {row['f1']:6.3f} {row['support']:8d}")
    for mode, figures in report["by_tta"].items():
        print(f"tta={mode:15s} accuracy {figures['accuracy']:.4f}  macro-F1 {figures['macro_f1']:.4f}")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exits 2 with a message on a bad checkpoint or data path."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="default: the shipped model")
    parser.add_argument("--data", required=True, help="fer2013.npz, fer2013.csv or an image folder")
    parser.add_argument("--split", default="PrivateTest", choices=SPLITS)
    parser.add_argument("--tta", choices=TTA_MODES, help="test-time augmentation (default: the model card's)")
    parser.add_argument("--out", type=Path, help="folder for report.json and confusion.png")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument("--record", action="store_true",
                        help="write the headline figures into the checkpoint's model card")
    args = parser.parse_args(argv)
    try:
        report = evaluate(args.checkpoint, args.data, args.split, tta=args.tta, device=args.device)
    except (CheckpointError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.json").write_text(json.dumps(report, indent=2))
        title = f"{report['model_version']} on {args.split}: accuracy {report['accuracy'] * 100:.1f}%"
        picture = draw_confusion_matrix(np.array(report["confusion_matrix"]),
                                        list(report["per_class"]), title)
        (args.out / "confusion.png").write_bytes(encode_image(picture, "PNG"))
    if args.record:
        record_in_checkpoint(args.checkpoint, report)
    print_report(report)
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "confusion_matrix"}))
    return 0


