"""Evaluate a checkpoint: ``python -m model_server.evaluate [--data PATH] [--split PrivateTest] [--json]``.

With --json the last printed line is one JSON object (accuracy, macro_f1, ferplus, calibration,
robustness, ...). ``--split PublicTest --calibrate`` fits the card's temperature instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..checkpoint import DEFAULT_CHECKPOINT, CheckpointError, ModelCard, load_model, read_checkpoint
from ..preprocessing import TTA_MODES, calibrate, without_shifted_crops
from ..serving.classifier import pick_device
from ..serving.imaging import encode_image
from . import augment
from .calibration import choose_class_bias, fit_temperature, negative_log_likelihood
from .data import SPLITS, DataError, load_faces
from .loop import TrainConfig, predict_probabilities, predict_probabilities_by_mode
from .metrics import classification_report, draw_confusion_matrix, expected_calibration_error


DEFAULT_DATA = TrainConfig.data

# Framing and lighting a detector or a webcam may hand over instead of FER2013's own crops. Framing is
# the side of the re-cropped box relative to FER's (0.8 = tighter, 1.2 = looser); photometric changes
# keep 8-bit pixels, as a real camera would.
ROBUSTNESS_CONDITIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "plain": lambda faces: faces,
    **{f"framing {scale}x": (lambda faces, scale=scale: augment.reframe(faces, framing=scale))
       for scale in (0.8, 0.9, 1.1, 1.2)},
    **{f"rotation {angle:+d} deg": (lambda faces, angle=angle: augment.reframe(faces, rotation_deg=angle))
       for angle in (-20, -10, 10, 20)},
    "darker (x0.6)": lambda faces: faces * 0.6,
    "lower contrast (x0.5)": lambda faces: (faces - faces.mean(dim=(1, 2, 3), keepdim=True)) * 0.5
    + faces.mean(dim=(1, 2, 3), keepdim=True),
}


def condition_probabilities(model: torch.nn.Module, images: torch.Tensor, card: ModelCard,
                            tta: str) -> dict[str, torch.Tensor]:
    """Uncalibrated probabilities on each re-framed or re-lit copy of uint8 [N,48,48] faces, by condition."""
    faces = images.float().unsqueeze(1) / 255.0
    return {name: predict_probabilities(model, (condition(faces) * 255).round().clamp(0, 255).to(torch.uint8)
                                        .squeeze(1), card.preprocessing, tta=tta)
            for name, condition in ROBUSTNESS_CONDITIONS.items()}


def robustness_table(model: torch.nn.Module, images: torch.Tensor, labels: np.ndarray, card: ModelCard,
                     tta: str | None = None) -> dict:
    """Accuracy on each re-framed or re-lit copy of uint8 [N,48,48] faces, and each one's drop from plain.

    By default with the card's views minus the shifted crops: ten conditions must stay affordable for an
    ensemble, and the plain row is measured the same way, so every difference is the condition's.
    """
    tta = tta or without_shifted_crops(card.preprocessing.tta)
    accuracy = {}
    for name, raw in condition_probabilities(model, images, card, tta).items():
        probabilities = card.calibrate(raw)
        predictions = probabilities.argmax(dim=1).numpy()
        accuracy[name] = round(float((predictions == labels).mean()), 4)
    drops = {name: round(accuracy["plain"] - value, 4) for name, value in accuracy.items() if name != "plain"}
    return {"tta": tta, "accuracy": accuracy, "drop": drops, "worst_drop": max(drops.values())}


def ferplus_report(probabilities: np.ndarray, majority: np.ndarray | None) -> dict | None:
    """Accuracy against the FER+ crowd majority (rows the crowd read as an emotion), or None without votes."""
    if majority is None:
        return None
    usable = majority >= 0
    predictions = probabilities[usable].argmax(axis=1)
    return {"n": int(usable.sum()), "accuracy": round(float((predictions == majority[usable]).mean()), 4)}


def require_tta_mode(card: ModelCard, tta: str) -> None:
    """Raise DataError unless the card's input geometry allows this TTA mode."""
    try:
        card.preprocessing.require_tta(tta)
    except ValueError as error:
        raise DataError(f"not available for this model: {error}") from None


def evaluate(checkpoint: str | Path, data: str | Path, split: str, tta: str | None = None,
             device: str = "auto", robustness: bool = True) -> dict:
    """Report for one split with the given TTA mode (default: the card's): accuracy and per-class figures
    on calibrated probabilities, every TTA mode's headline figures, FER+ accuracy, ECE and robustness."""
    model, card = load_model(checkpoint)
    model = model.to(pick_device(device), memory_format=torch.channels_last)
    faces = load_faces(data).split(split)
    if len(faces) == 0:
        raise DataError(f"{data}: split {split} is empty")
    images, labels = torch.from_numpy(faces.images), faces.labels
    tta = tta or card.preprocessing.tta
    report = {"split": split, "checkpoint": str(checkpoint), "model_version": card.version, "tta": tta}
    require_tta_mode(card, tta)
    by_mode = {}
    every_mode = predict_probabilities_by_mode(model, images, card.preprocessing,
                                               list(card.preprocessing.tta_modes()))
    raw = every_mode[tta]
    for mode, probabilities in every_mode.items():
        # The class bias moves decisions, so every mode is scored as served (temperature never does).
        mode_report = classification_report(card.calibrate(probabilities).numpy(), labels, card.labels)
        by_mode[mode] = {key: mode_report[key] for key in ("accuracy", "macro_f1", "top2_accuracy",
                                                           "six_class_accuracy")}
        by_mode[mode]["recall"] = {name: row["recall"] for name, row in mode_report["per_class"].items()}
    served = card.calibrate(raw).numpy()
    report.update(classification_report(served, labels, card.labels))
    report["by_tta"] = by_mode
    if card.class_bias:
        plain = classification_report(raw.numpy(), labels, card.labels)
        report["without_class_bias"] = {"accuracy": plain["accuracy"], "macro_f1": plain["macro_f1"],
                                        "recall": {k: v["recall"] for k, v in plain["per_class"].items()}}
    report["ferplus"] = ferplus_report(served, faces.ferplus_majority)
    # "Before" is everything the card serves except the temperature, so the difference is the temperature's.
    uncalibrated = calibrate(raw, 1.0, card.class_bias).numpy()
    report["calibration"] = {
        "temperature": card.temperature,
        "ece_before": expected_calibration_error(uncalibrated, labels),
        "ece_after": expected_calibration_error(served, labels),
        "nll_before": round(negative_log_likelihood(uncalibrated, labels), 4),
        "nll_after": round(negative_log_likelihood(uncalibrated, labels, card.temperature), 4)}
    if robustness:
        report["robustness"] = robustness_table(model, images, labels, card, without_shifted_crops(tta))
    return report


def fit_calibration(probabilities: torch.Tensor, labels: np.ndarray, training_labels: np.ndarray) -> dict:
    """Class bias, then temperature, both fitted on PublicTest probabilities; with the PublicTest figures."""
    class_bias, table = choose_class_bias(probabilities.numpy(), labels, training_labels)
    biased = calibrate(probabilities, 1.0, class_bias).numpy()
    temperature = fit_temperature(biased, labels)
    return {"class_bias": class_bias, "temperature": temperature, "split": "PublicTest", "prior_table": table,
            "ece_before": expected_calibration_error(biased, labels),
            "ece_after": expected_calibration_error(calibrate(torch.from_numpy(biased), temperature).numpy(), labels),
            "nll_before": round(negative_log_likelihood(biased, labels), 4),
            "nll_after": round(negative_log_likelihood(biased, labels, temperature), 4)}


def calibrate_checkpoint(checkpoint: str | Path, data: str | Path, split: str = "PublicTest",
                         tta: str | None = None) -> dict:
    """Fit class bias and temperature on PublicTest and store them in the card, with the TTA mode they were
    fitted for (default: the card's own; another mode is checked against the architecture's input)."""
    if split != "PublicTest":
        raise DataError("calibration is fitted on PublicTest only; PrivateTest stays untouched until the end")
    model, card = load_model(checkpoint)
    if tta is not None:
        require_tta_mode(card, tta)
        card.preprocessing = dataclasses.replace(card.preprocessing, tta=tta)
    faces = load_faces(data)
    public = faces.split(split)
    probabilities = predict_probabilities(model, torch.from_numpy(public.images), card.preprocessing,
                                          tta=card.preprocessing.tta)
    fitted = fit_calibration(probabilities, public.labels, faces.split("Training").labels)
    card.class_bias, card.temperature = fitted["class_bias"], fitted["temperature"]
    card.metrics["public_test_calibration"] = fitted
    payload = read_checkpoint(checkpoint)
    payload["card"] = card.to_json()
    _rewrite(checkpoint, payload)
    return fitted


def _rewrite(checkpoint: str | Path, payload: dict) -> None:
    """Save a payload read with read_checkpoint back in place, keeping its tensors exactly as stored."""
    temporary = Path(str(checkpoint) + ".tmp")
    torch.save(payload, temporary)
    temporary.replace(checkpoint)


def record_in_checkpoint(checkpoint: str | Path, report: dict) -> None:
    """Store the report's headline figures in the checkpoint's model card, so the file carries its metrics."""
    payload = read_checkpoint(checkpoint)
    card = ModelCard.from_json(payload["card"])
    prefix = {"PrivateTest": "private_test", "PublicTest": "public_test", "Training": "training"}[report["split"]]
    card.metrics[f"{prefix}_accuracy"] = report["accuracy"]
    card.metrics[f"{prefix}_macro_f1"] = report["macro_f1"]
    card.metrics.setdefault("evaluation", {})[report["split"]] = {
        key: report[key] for key in ("n", "tta", "accuracy", "macro_f1", "top2_accuracy", "six_class_accuracy",
                                     "by_tta", "ferplus", "calibration", "robustness", "without_class_bias")
        if key in report}
    card.metrics["evaluation"][report["split"]]["recall"] = {
        name: row["recall"] for name, row in report["per_class"].items()}
    # The recorded figures describe what the shipped pipeline does, so it uses the evaluated TTA mode.
    card.preprocessing = dataclasses.replace(card.preprocessing, tta=report["tta"])
    payload["card"] = card.to_json()
    _rewrite(checkpoint, payload)


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
    if report.get("ferplus"):
        print(f"FER+ majority label: accuracy {report['ferplus']['accuracy']:.4f} on {report['ferplus']['n']} faces")
    calibration = report["calibration"]
    print(f"temperature {calibration['temperature']:.2f}: ECE {calibration['ece_before']:.4f} -> "
          f"{calibration['ece_after']:.4f}, NLL {calibration['nll_before']:.4f} -> {calibration['nll_after']:.4f}")
    if report.get("robustness"):
        print(f"robustness (tta={report['robustness']['tta']}):")
        for name, accuracy in report["robustness"]["accuracy"].items():
            drop = report["robustness"]["drop"].get(name, 0.0)
            print(f"  {name:22s} {accuracy:.4f}  ({-drop * 100:+.1f} points)")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exits 2 with a message on a bad checkpoint or data path."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="default: the shipped model")
    parser.add_argument("--data", default=DEFAULT_DATA, help=f"fer2013.npz, fer2013.csv or an image folder "
                                                               f"(default: {DEFAULT_DATA})")
    parser.add_argument("--split", default="PrivateTest", choices=SPLITS)
    parser.add_argument("--tta", choices=TTA_MODES, help="test-time augmentation (default: the model card's)")
    parser.add_argument("--out", type=Path, help="folder for report.json and confusion.png")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument("--record", action="store_true",
                        help="write the headline figures into the checkpoint's model card")
    parser.add_argument("--calibrate", action="store_true",
                        help="fit class bias and temperature on PublicTest and store them in the card, with "
                             "--tta if given (no report)")
    parser.add_argument("--no-robustness", action="store_true", help="skip the re-framing and lighting table")
    args = parser.parse_args(argv)
    try:
        if args.calibrate:
            fitted = calibrate_checkpoint(args.checkpoint, args.data, args.split, tta=args.tta)
            print(json.dumps({key: value for key, value in fitted.items() if key != "prior_table"}))
            for row in fitted["prior_table"]:
                print(json.dumps(row))
            return 0
        report = evaluate(args.checkpoint, args.data, args.split, tta=args.tta, device=args.device,
                          robustness=not args.no_robustness)
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


