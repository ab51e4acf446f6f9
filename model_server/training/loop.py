"""Train an emotion classifier on FER2013: ``python -m model_server.train --data PATH [--config FILE] [--key value ...]``.

Model selection and the learning-rate schedule use PublicTest only; PrivateTest is never read here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import augment
from ..serving.classifier import pick_device
from ..checkpoint import ModelCard, load_member, load_model, read_checkpoint, save_checkpoint
from .data import DataError, FaceSet, load_sources
from ..labels import EMOTIONS
from ..networks import create_model
from ..preprocessing import Preprocessing, predict_faces, predict_views, view_keys


@dataclass
class TrainConfig:
    """Every training knob in one place; a JSON file and command-line flags override these defaults."""

    # One path, or several joined by commas (e.g. FER2013 plus exported visitor corrections).
    data: str = "../shared/data/fer2013/fer2013.npz"
    out_dir: str = "runs/default"
    architecture: str = "vgg_tiny"
    architecture_kwargs: dict[str, Any] = field(default_factory=dict)
    # Faces are 48x48; the network sees a 40x40 crop (random in training via shifts, centred at test),
    # which costs 30% less compute than 48x48 and acts as translation augmentation.
    input_size: int = 40
    # Start from another checkpoint's weights (same architecture): a warm restart of the schedule,
    # or fine-tuning the shipped model on FER2013 plus visitors' corrections.
    init_from: str = ""
    epochs: int = 30
    batch_size: int = 128
    # One-cycle SGD: warm up to max_lr, anneal to ~0; reliable on small CNNs without tuning.
    optimizer: str = "sgd"
    max_lr: float = 0.05
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.15
    # Label smoothing: FER2013 labels are noisy (FER+ annotators disagree with a third of them).
    label_smoothing: float = 0.1
    # Weight of FER+ vote distributions in the target (0 = FER2013 labels only).
    soft_label_weight: float = 0.0
    # Class weighting against imbalance: "none" or "sqrt_inverse" (disgust is 1.5% of the data).
    class_weighting: str = "none"
    mixup_alpha: float = 0.0
    # Geometric and photometric augmentation, sized for 48x48 faces.
    flip: bool = True
    max_shift: float = 4.0
    max_rotation_deg: float = 10.0
    max_scale: float = 0.1
    brightness: float = 0.15
    contrast: float = 0.25
    erase_probability: float = 0.25
    # Knowledge distillation: a teacher checkpoint (the shipped ensemble) whose calibrated probabilities
    # are blended into the targets with distill_weight, so one small network learns what the ensemble knows.
    teacher: str = ""
    distill_weight: float = 0.0
    seed: int = 0
    device: str = "auto"
    # 0 keeps PyTorch's default (every core). On a shared 2-core CPU, 1 thread trained 3.8x faster than 2
    # (0.29 vs 1.10 s per batch, measured while other jobs ran): OpenMP threads spin waiting for each other.
    threads: int = 0
    # bfloat16 autocast on the CPU (weights, gradients and the loss stay float32): on a CPU with
    # AVX512-BF16 one thread ran a vgg_tiny batch 1.6x faster (0.34 → 0.22 s). Off by default so the
    # shipped recipes replay as they were run.
    cpu_bfloat16: bool = False
    version: str = ""


def resolve_config(argv: list[str] | None = None) -> tuple[TrainConfig, bool]:
    """Build the config from defaults, then --config JSON, then flags; also return the --resume flag."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", help="JSON file of TrainConfig fields")
    parser.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.pt if it exists")
    for item in dataclasses.fields(TrainConfig):
        flag = "--" + item.name.replace("_", "-")
        if item.type in ("bool", bool):
            parser.add_argument(flag, type=lambda text: text.lower() in ("1", "true", "yes"), default=None)
        elif item.type in ("dict[str, Any]",):
            parser.add_argument(flag, type=json.loads, default=None)
        else:
            kind = {"int": int, "float": float}.get(str(item.type), str)
            parser.add_argument(flag, type=kind, default=None)
    args = parser.parse_args(argv)
    values = dataclasses.asdict(TrainConfig())
    if args.config:
        file_values = json.loads(Path(args.config).read_text())
        unknown = set(file_values) - set(values)
        if unknown:
            parser.error(f"unknown config keys in {args.config}: {', '.join(sorted(unknown))}")
        values.update(file_values)
    values.update({k: v for k, v in vars(args).items() if k in values and v is not None})
    return TrainConfig(**values), args.resume


def normalisation_from(train_set: FaceSet, input_size: int) -> Preprocessing:
    """Mean and std of the training pixels, rounded so the card stays readable."""
    pixels = train_set.images.astype(np.float32) / 255.0
    return Preprocessing(resize=train_set.images.shape[-1], input_size=input_size,
                         mean=round(float(pixels.mean()), 4), std=round(float(pixels.std()), 4))


def build_targets(labels: torch.Tensor, soft: torch.Tensor | None, config: TrainConfig,
                  teacher: torch.Tensor | None = None) -> torch.Tensor:
    """Target distributions: smoothed one-hot labels, optionally blended with FER+ votes and a teacher."""
    classes = len(EMOTIONS)
    targets = F.one_hot(labels, classes).float()
    if soft is not None and config.soft_label_weight > 0:
        targets = (1 - config.soft_label_weight) * targets + config.soft_label_weight * soft
    targets = targets * (1 - config.label_smoothing) + config.label_smoothing / classes
    if teacher is not None:
        targets = (1 - config.distill_weight) * targets + config.distill_weight * teacher
    return targets


def class_weights(labels: np.ndarray, mode: str) -> torch.Tensor | None:
    """Per-class loss weights, or None for plain cross-entropy."""
    if mode == "none":
        return None
    if mode != "sqrt_inverse":
        raise ValueError(f"unknown class_weighting {mode!r}")
    counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(np.float64)
    # Square-root inverse frequency: lifts disgust recall without wrecking overall accuracy.
    weights = 1 / np.sqrt(np.maximum(counts, 1))
    return torch.tensor(weights / (weights * counts).sum() * counts.sum(), dtype=torch.float32)


def predict_probabilities(model: torch.nn.Module, images: torch.Tensor, prep: Preprocessing,
                          batch_size: int = 512, tta: str = "none") -> torch.Tensor:
    """Softmax probabilities for uint8 [N,48,48] images, in batches, with the given test-time views."""
    model.eval()
    device = next(model.parameters()).device
    outputs = [predict_faces(model, images[start:start + batch_size].to(device).float().unsqueeze(1) / 255.0,
                             prep, tta).cpu()
               for start in range(0, len(images), batch_size)]
    return torch.cat(outputs)


def predict_probabilities_by_mode(model: torch.nn.Module, images: torch.Tensor, prep: Preprocessing,
                                  modes: list[str], batch_size: int = 512) -> dict[str, torch.Tensor]:
    """predict_probabilities for several TTA modes at the cost of their distinct views: the modes share
    views (every one has the centre crop, most its mirror), so each view runs once and each mode averages
    its own."""
    for mode in modes:
        prep.require_tta(mode)
    keys = list(dict.fromkeys(key for mode in modes for key in view_keys(mode)))
    model.eval()
    device = next(model.parameters()).device
    per_view = torch.cat([predict_views(model, images[start:start + batch_size].to(device).float().unsqueeze(1)
                                        / 255.0, prep, keys).cpu()
                          for start in range(0, len(images), batch_size)], dim=1)
    return {mode: per_view[[keys.index(key) for key in view_keys(mode)]].mean(dim=0) for mode in modes}


@dataclass
class Run:
    """Everything one training run builds before its first epoch, and the state that moves per epoch."""

    config: TrainConfig
    device: torch.device
    prep: Preprocessing
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    generator: torch.Generator
    card: ModelCard
    train_images: torch.Tensor
    train_labels: torch.Tensor
    train_soft: torch.Tensor | None
    teacher_probs: torch.Tensor | None
    class_weights: torch.Tensor | None
    val_images: torch.Tensor
    val_labels: torch.Tensor
    out_dir: Path
    start_epoch: int = 0
    best_accuracy: float = -1.0
    history: list[dict] = field(default_factory=list)


def _optimizer(model: torch.nn.Module, config: TrainConfig, steps_per_epoch: int):
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=config.max_lr, momentum=0.9, nesterov=True,
                                    weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.max_lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.max_lr, epochs=config.epochs,
                                                    steps_per_epoch=steps_per_epoch,
                                                    pct_start=config.warmup_fraction)
    return optimizer, scheduler


def _load_parent(model: torch.nn.Module, config: TrainConfig) -> dict:
    """Copy init_from's weights (a checkpoint, or FILE#N for an ensemble's member) into the model.

    Returns the parent's story for the card.
    """
    parent, parent_card = load_member(config.init_from)
    if (parent_card.architecture, parent_card.architecture_kwargs) != (config.architecture,
                                                                       config.architecture_kwargs):
        raise DataError(f"{config.init_from} is a {parent_card.architecture} {parent_card.architecture_kwargs}, "
                        f"not the configured {config.architecture} {config.architecture_kwargs}")
    model.load_state_dict(parent.state_dict())
    return {"version": parent_card.version, "training_config": parent_card.training_config,
            "metrics": parent_card.metrics}


def _teacher_probabilities(config: TrainConfig, images: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The teacher's calibrated, mirror-averaged probabilities on the clean training faces, computed once.

    Precomputing costs one pass over the data instead of a teacher forward pass per augmented batch;
    the augmentations are mild enough that a face keeps its teacher's distribution.
    """
    teacher, teacher_card = load_model(config.teacher)
    teacher = teacher.to(images.device, memory_format=torch.channels_last)
    probabilities = teacher_card.calibrate(predict_probabilities(teacher, images, teacher_card.preprocessing,
                                                                 tta="flip"))
    story = {"version": teacher_card.version, "architecture": teacher_card.architecture,
             "temperature": teacher_card.temperature, "class_bias": teacher_card.class_bias,
             "metrics": teacher_card.metrics}
    return probabilities.to(images.device), story


def cpu_has_native_bfloat16() -> bool | None:
    """Whether the CPU computes bfloat16 natively (avx512_bf16 or amx_bf16 flags); None where unknown."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def build_run(config: TrainConfig, resume: bool = False) -> Run:
    """Load data, build model, optimizer, schedule and card; restore OUT_DIR/last.pt when resuming."""
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    if device.type == "cpu" and config.cpu_bfloat16 and cpu_has_native_bfloat16() is False:
        # Without native bfloat16, oneDNN emulates it: a vgg_small batch took 1.49 s instead of 0.52 s.
        print("warning: this CPU has no native bfloat16 (no avx512_bf16 or amx_bf16); cpu_bfloat16 will "
              "train about 3x slower than float32. Pass --cpu-bfloat16 false.", file=sys.stderr)
    if config.threads:
        torch.set_num_threads(config.threads)
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))

    faces = load_sources(config.data)
    train_set, val_set = faces.split("Training"), faces.split("PublicTest")
    if len(train_set) == 0 or len(val_set) == 0:
        raise DataError(f"{config.data}: training needs Training and PublicTest rows (found {len(train_set)} and "
                        f"{len(val_set)}); add FER2013 or a folder with train/ and val/ sub-folders")
    prep = normalisation_from(train_set, config.input_size)
    # The whole data set fits in memory (and on any GPU): 29k x 48 x 48 bytes = 66 MB.
    train_images = torch.from_numpy(train_set.images).to(device)
    train_soft = None if train_set.soft_labels is None else torch.from_numpy(train_set.soft_labels).to(device)

    model = create_model(config.architecture, num_classes=len(EMOTIONS), **config.architecture_kwargs)
    model = model.to(device, memory_format=torch.channels_last)
    optimizer, scheduler = _optimizer(model, config, math.ceil(len(train_set) / config.batch_size))
    weights = class_weights(train_set.labels, config.class_weighting)
    training_record = dataclasses.asdict(config)
    if config.init_from:
        # The parent's recipe and figures travel along, so the file alone tells the whole training story.
        training_record["parent"] = _load_parent(model, config)
    teacher_probs = None
    if config.teacher and config.distill_weight > 0:
        teacher_probs, training_record["teacher"] = _teacher_probabilities(config, train_images)
    card = ModelCard(architecture=config.architecture, architecture_kwargs=config.architecture_kwargs,
                     preprocessing=prep, version=config.version or f"{config.architecture}-{time.strftime('%Y%m%d')}",
                     training_config=training_record, data_fingerprint=faces.fingerprint())
    run = Run(config, device, prep, model, optimizer, scheduler,
              torch.amp.GradScaler("cuda", enabled=device.type == "cuda"),
              torch.Generator(device=device).manual_seed(config.seed), card,
              train_images, torch.from_numpy(train_set.labels).to(device), train_soft, teacher_probs,
              None if weights is None else weights.to(device),
              torch.from_numpy(val_set.images), torch.from_numpy(val_set.labels), out_dir)
    last_path = out_dir / "last.pt"
    if resume and last_path.exists():
        state = read_checkpoint(last_path)
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        run.generator.set_state(state["generator"])
        run.start_epoch, run.best_accuracy = state["epoch"] + 1, state["best_accuracy"]
        run.history = json.loads(state["history"])
        print(f"resumed from {last_path} at epoch {run.start_epoch}")
    return run


def autocast(run: Run) -> torch.autocast:
    """Mixed precision for the forward pass: float16 with loss scaling on CUDA, optionally bfloat16 on the CPU."""
    if run.device.type == "cpu":
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=run.config.cpu_bfloat16)
    return torch.autocast(device_type=run.device.type, dtype=torch.float16, enabled=run.scaler.is_enabled())


def train_epoch(run: Run, epoch: int) -> dict:
    """One pass over the shuffled training faces with augmentation; returns mean loss and accuracy."""
    config, model, generator = run.config, run.model, run.generator
    model.train()
    steps = math.ceil(len(run.train_labels) / config.batch_size)
    order = torch.randperm(len(run.train_labels), generator=generator, device=run.device)
    seen, correct, loss_sum = 0, 0, 0.0
    bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch")
    for step in bar:
        index = order[step * config.batch_size:(step + 1) * config.batch_size]
        images = run.train_images[index].float().unsqueeze(1) / 255.0
        labels = run.train_labels[index]
        images = augment.random_affine(images, generator, config.max_shift, config.max_rotation_deg,
                                       config.max_scale, config.flip)
        images = augment.random_photometric(images, generator, config.brightness, config.contrast)
        images = augment.random_erase(images, generator, config.erase_probability, fill=run.prep.mean)
        targets = build_targets(labels, None if run.train_soft is None else run.train_soft[index], config,
                                None if run.teacher_probs is None else run.teacher_probs[index])
        if config.mixup_alpha > 0:
            images, targets = augment.mixup(images, targets, generator, config.mixup_alpha)
        with autocast(run):
            logits = model(run.prep.to_input(images))
        log_probs = logits.float().log_softmax(dim=1)
        weights = 1 if run.class_weights is None else run.class_weights
        loss = -(targets * log_probs * weights).sum(dim=1).mean()
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        seen += len(labels)
        correct += int((logits.argmax(dim=1) == labels).sum())
        loss_sum += float(loss.detach()) * len(labels)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}",
                        lr=f"{run.scheduler.get_last_lr()[0]:.4f}")
    bar.close()
    return {"train_loss": loss_sum / seen, "train_accuracy": correct / seen}


def validate(run: Run) -> float:
    """PublicTest accuracy of the current weights (centre crop, no TTA): the selection criterion."""
    probabilities = predict_probabilities(run.model, run.val_images, run.prep)
    return float((probabilities.argmax(dim=1) == run.val_labels).float().mean())


def save_epoch(run: Run, epoch: int, record: dict) -> None:
    """Keep best.pt (highest PublicTest accuracy) and last.pt with everything --resume needs."""
    run.history.append(record)
    if record["public_test_accuracy"] > run.best_accuracy:
        run.best_accuracy = record["public_test_accuracy"]
        run.card.metrics = {"public_test_accuracy": run.best_accuracy, "selected_epoch": epoch + 1,
                            "train_seconds": record["elapsed_s"]}
        save_checkpoint(run.out_dir / "best.pt", run.model, run.card)
    save_checkpoint(run.out_dir / "last.pt", run.model, run.card, extra={
        "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
        "generator": run.generator.get_state(), "epoch": epoch, "best_accuracy": run.best_accuracy,
        "history": json.dumps(run.history)})
    (run.out_dir / "history.json").write_text(json.dumps(run.history, indent=2))


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Run training; return the path of the best checkpoint (chosen on PublicTest accuracy)."""
    run = build_run(config, resume)
    started = time.time()
    for epoch in range(run.start_epoch, config.epochs):
        record = {"epoch": epoch + 1, **train_epoch(run, epoch), "public_test_accuracy": validate(run),
                  "elapsed_s": round(time.time() - started, 1)}
        print(json.dumps(record), flush=True)
        save_epoch(run, epoch, record)
    print(f"best PublicTest accuracy {run.best_accuracy:.4f}; checkpoint {run.out_dir / 'best.pt'}")
    return run.out_dir / "best.pt"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exits 2 with a message when the data cannot be used."""
    config, resume = resolve_config(argv)
    try:
        train(config, resume)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


