"""Combine trained networks into one ensemble checkpoint, members chosen on PublicTest only.

``python -m model_server.training.ensemble --candidates A.pt B.pt C.pt D.pt --out FILE [--data PATH]``
scores every subset of the candidates (probabilities averaged, per test-time augmentation mode), keeps
the best, fits its class bias and temperature on the same PublicTest probabilities and writes one
self-describing file.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import CheckpointError, ModelCard, load_member, save_checkpoint
from ..networks import create_model
from ..preprocessing import TTA_MODES, TTA_VIEWS, without_shifted_crops
from .data import DataError, load_faces
from .evaluation import ROBUSTNESS_CONDITIONS, condition_probabilities, fit_calibration
from .loop import TrainConfig, predict_probabilities_by_mode
from .metrics import classification_report

COMBINATION = ("mean of the members' softmax probabilities over the same test-time views, "
               "then the card's class bias and temperature")


def check_compatible(cards: list[ModelCard]) -> None:
    """Members share one input pipeline (the ensemble feeds them the same tensor), or this raises."""
    geometry = {(c.preprocessing.resize, c.preprocessing.input_size, c.preprocessing.mean, c.preprocessing.std,
                 tuple(c.labels)) for c in cards}
    if len(geometry) != 1:
        raise CheckpointError(f"ensemble members disagree on input size, normalisation or labels: {geometry}")


def build_ensemble(paths: list[str | Path], version: str, tta: str) -> tuple[torch.nn.Module, ModelCard]:
    """One Ensemble network holding the members' weights, and a card naming every member and its story."""
    loaded = [load_member(path) for path in paths]
    cards = [card for _, card in loaded]
    check_compatible(cards)
    specs = [{"architecture": c.architecture, "architecture_kwargs": c.architecture_kwargs} for c in cards]
    ensemble = create_model("ensemble", num_classes=len(cards[0].labels), members=specs)
    for slot, (member, _) in zip(ensemble.members, loaded):
        slot.load_state_dict(member.state_dict())
    members = [{"source": str(path), "version": c.version, "architecture": c.architecture,
                "architecture_kwargs": c.architecture_kwargs, "training_config": c.training_config,
                "metrics": c.metrics} for path, c in zip(paths, cards)]
    card = ModelCard(architecture="ensemble", architecture_kwargs={"members": specs}, labels=cards[0].labels,
                     preprocessing=dataclasses.replace(cards[0].preprocessing, tta=tta), version=version,
                     training_config={"combination": COMBINATION, "members": members},
                     data_fingerprint=cards[0].data_fingerprint)
    return ensemble.eval(), card


def score_subsets(probabilities: dict[str, dict[str, np.ndarray]], labels: np.ndarray,
                  sizes: range) -> list[dict]:
    """PublicTest accuracy and macro-F1 of every subset of members, per TTA mode, best first."""
    rows = []
    for size in sizes:
        for subset in itertools.combinations(sorted(probabilities), size):
            for mode in probabilities[subset[0]]:
                averaged = np.mean([probabilities[path][mode] for path in subset], axis=0)
                report = classification_report(averaged, labels, [str(i) for i in range(averaged.shape[1])])
                rows.append({"members": list(subset), "tta": mode, "accuracy": report["accuracy"],
                             "macro_f1": report["macro_f1"]})
    # Ties go to fewer members and fewer views: the same accuracy for less compute per face.
    return sorted(rows, key=lambda r: (-r["accuracy"], -r["macro_f1"], len(r["members"]), TTA_VIEWS[r["tta"]]))


def worst_drop(conditions: dict[str, dict[str, np.ndarray]], members: list[str], labels: np.ndarray) -> float:
    """The largest accuracy drop from plain over the robustness conditions, for the members' averaged probabilities.

    ``conditions`` maps each member to its probabilities per condition, all under the same test-time views.
    """
    accuracy = {name: float((np.mean([conditions[path][name] for path in members], axis=0).argmax(1) == labels)
                            .mean()) for name in ROBUSTNESS_CONDITIONS}
    return max(accuracy["plain"] - value for name, value in accuracy.items() if name != "plain")


def candidate_probabilities(spec: str, images: torch.Tensor, tta_modes: list[str], with_conditions: bool,
                            cache: Path | None, data_fingerprint: str) -> tuple[dict, dict, str]:
    """One candidate's PublicTest probabilities per TTA mode, per robustness condition under each mode's views
    minus the shifted crops ({views: {condition: p}}), and its version.

    With a cache folder they are kept in one file per candidate, keyed by the checkpoint's bytes, the member
    index and the data: scoring is minutes of CPU, re-reading milliseconds. A later run that asks for views
    or robustness conditions the file lacks scores only those and adds them to it.
    """
    file, _, index = spec.partition("#")
    stored, saved = None, {}
    if cache is not None and Path(file).is_file():  # a missing file is load_member's error to report
        digest = hashlib.sha256(Path(file).read_bytes())
        digest.update(json.dumps({"member": index, "data": data_fingerprint}).encode())
        stored = cache / f"{digest.hexdigest()[:32]}.npz"
        if stored.exists():
            with np.load(stored) as arrays:
                saved = {name: arrays[name] for name in arrays.files}
    robustness_views = sorted({without_shifted_crops(mode) for mode in tta_modes}) if with_conditions else []
    wanted = [f"tta:{mode}" for mode in tta_modes]
    wanted += [f"condition:{views}:{name}" for views in robustness_views for name in ROBUSTNESS_CONDITIONS]
    missing = [name for name in wanted if name not in saved]
    if missing:
        model, card = load_member(spec)
        model = model.to(memory_format=torch.channels_last)
        saved["version"] = np.array(card.version)
        modes_missing = [mode for mode in tta_modes if f"tta:{mode}" in missing]
        if modes_missing:
            for mode, p in predict_probabilities_by_mode(model, images, card.preprocessing, modes_missing).items():
                saved[f"tta:{mode}"] = p.numpy()
        for views in robustness_views:
            if any(name.startswith(f"condition:{views}:") for name in missing):
                for name, p in condition_probabilities(model, images, card, views).items():
                    saved[f"condition:{views}:{name}"] = p.numpy()
        if stored is not None:
            cache.mkdir(parents=True, exist_ok=True)
            np.savez(stored.with_suffix(".tmp.npz"), **saved)
            stored.with_suffix(".tmp.npz").replace(stored)  # a stopped run never leaves half a file under the key
    return ({mode: saved[f"tta:{mode}"] for mode in tta_modes},
            {views: {name: saved[f"condition:{views}:{name}"] for name in ROBUSTNESS_CONDITIONS}
             for views in robustness_views},
            str(saved["version"]))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exits 2 with a message on unusable checkpoints or data."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", nargs="+", required=True,
                        help="member checkpoints to choose from; FILE#N is member N of an ensemble checkpoint")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", default=TrainConfig.data)
    parser.add_argument("--version", default="ensemble")
    parser.add_argument("--min-members", type=int, default=3)
    parser.add_argument("--max-members", type=int, default=5)
    parser.add_argument("--tta", nargs="+", choices=TTA_MODES, default=[m for m in TTA_MODES if m != "none"],
                        help="TTA modes to compare (default: every mode with mirror views)")
    parser.add_argument("--max-robustness-drop", type=float, default=None,
                        help="only subsets whose PublicTest accuracy drops at most this much (0.04 = 4 points) "
                             "under every re-framing and lighting condition")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder keeping each candidate's PublicTest probabilities, so a rerun with one more "
                             "candidate, view or robustness check computes only what is new")
    args = parser.parse_args(argv)
    try:
        everything = load_faces(args.data)
        faces, training_labels = everything.split("PublicTest"), everything.split("Training").labels
        images = torch.from_numpy(faces.images)
        probabilities, conditions, fingerprint = {}, {}, faces.fingerprint()
        for path in args.candidates:
            probabilities[path], conditions[path], version = candidate_probabilities(
                path, images, args.tta, args.max_robustness_drop is not None, args.cache, fingerprint)
            print(json.dumps({"member": path, "version": version,
                              **{mode: round(float((p.argmax(1) == faces.labels).mean()), 4)
                                 for mode, p in probabilities[path].items()}}), flush=True)
        sizes = range(args.min_members, min(args.max_members, len(args.candidates)) + 1)
        table = score_subsets(probabilities, faces.labels, sizes)
        if args.max_robustness_drop is not None:
            # Visitors' faces come framed, tilted and lit as their detector and camera make them: a subset
            # that only wins on FER2013's own crops is not the better model for them.
            for row in table:
                views = without_shifted_crops(row["tta"])
                by_member = {path: conditions[path][views] for path in row["members"]}
                row["worst_robustness_drop"] = round(worst_drop(by_member, row["members"], faces.labels), 4)
            table.sort(key=lambda row: row["worst_robustness_drop"] > args.max_robustness_drop)  # stable
        best = table[0]
        averaged = np.mean([probabilities[path][best["tta"]] for path in best["members"]], axis=0)
        fitted = fit_calibration(torch.from_numpy(averaged), faces.labels, training_labels)
        model, card = build_ensemble(best["members"], args.version, best["tta"])
    except (CheckpointError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    card.class_bias, card.temperature = fitted["class_bias"], fitted["temperature"]
    card.training_config["selection"] = {"split": "PublicTest", "max_robustness_drop": args.max_robustness_drop,
                                         "table": table[:20]}
    card.metrics = {"public_test_accuracy": best["accuracy"], "public_test_macro_f1": best["macro_f1"],
                    "public_test_calibration": fitted}
    save_checkpoint(args.out, model, card, half=True)
    for row in table[:10] + fitted["prior_table"]:
        print(json.dumps(row))
    print(f"chose {len(best['members'])} members, tta={best['tta']}: PublicTest accuracy {best['accuracy']:.4f}, "
          f"macro-F1 {best['macro_f1']:.4f}; class bias {fitted['class_bias']}; temperature "
          f"{fitted['temperature']:.2f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
