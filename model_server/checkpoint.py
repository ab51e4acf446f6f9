"""Self-describing checkpoints: weights plus the metadata needed to rebuild and use the model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .labels import EMOTIONS
from .networks import create_model
from .preprocessing import Preprocessing, calibrate

FORMAT_VERSION = 1
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "emotion_default.pt"
# Live video gets one distilled network: the ensemble's accuracy at a fraction of its cost per frame.
LIVE_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "emotion_live.pt"


class CheckpointError(ValueError):
    """A checkpoint file that is missing, corrupt or not one of ours."""


@dataclass
class ModelCard:
    """Everything a checkpoint says about its model besides the weights."""

    architecture: str
    architecture_kwargs: dict[str, Any]
    labels: list[str] = field(default_factory=lambda: list(EMOTIONS))
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    version: str = "unversioned"
    training_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str = ""
    # Temperature scaling fitted on PublicTest: served probabilities are softmax(log p / temperature),
    # so a bar at 80% is right about 80% of the time. 1.0 means uncalibrated.
    temperature: float = 1.0
    # Per-class log-probability shifts chosen on PublicTest (empty = none): -tau * log(training prior)
    # gives rare classes such as disgust the margin plain cross-entropy takes from them.
    class_bias: list[float] = field(default_factory=list)

    def to_json(self) -> str:
        """Serialise to JSON text (stored as a string so weights_only loading stays possible)."""
        return json.dumps({"format_version": FORMAT_VERSION, **asdict(self)}, sort_keys=True)

    def calibrate(self, probabilities: torch.Tensor) -> torch.Tensor:
        """The probabilities this model serves: averaged TTA probabilities with its class bias and temperature."""
        return calibrate(probabilities, self.temperature, self.class_bias)

    @classmethod
    def from_json(cls, text: str) -> "ModelCard":
        """Parse metadata written by to_json."""
        payload = json.loads(text)
        payload.pop("format_version", None)
        payload["preprocessing"] = Preprocessing(**payload.get("preprocessing", {}))
        return cls(**payload)


def save_checkpoint(path: str | Path, model: nn.Module, card: ModelCard, extra: dict[str, Any] | None = None,
                    half: bool = False) -> None:
    """Write weights and card atomically; ``extra`` carries resume state, ``half`` stores float16 weights."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    if half:
        # Shipped files only: float16 halves the size, and load_state_dict casts back to float32.
        state = {name: value.half() if value.is_floating_point() else value for name, value in state.items()}
    payload = {"state_dict": state, "card": card.to_json(), **(extra or {})}
    # Write then rename, so a crash mid-save never leaves a truncated checkpoint behind.
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, temporary)
    temporary.replace(path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint's raw payload safely (weights_only), with a clear error if unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt files; all mean the same to a user.
        raise CheckpointError(f"checkpoint {path} is corrupt or not a PyTorch file: {error}") from error
    if not isinstance(payload, dict) or "state_dict" not in payload or "card" not in payload:
        raise CheckpointError(f"checkpoint {path} has no weights and model card")
    return payload


def load_model(path: str | Path = DEFAULT_CHECKPOINT) -> tuple[nn.Module, ModelCard]:
    """Rebuild the model described by a checkpoint and load its weights, in eval mode on the CPU."""
    payload = read_checkpoint(path)
    try:
        card = ModelCard.from_json(payload["card"])
        model = create_model(card.architecture, num_classes=len(card.labels), **card.architecture_kwargs)
        model.load_state_dict(payload["state_dict"])
    except (ValueError, TypeError, KeyError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint {path} does not match its model card: {error}") from error
    return model.eval(), card


def load_member(spec: str | Path) -> tuple[nn.Module, ModelCard]:
    """A network from a checkpoint file, or ``FILE#N`` for member N of an ensemble checkpoint.

    ``FILE#N`` lets a new ensemble, or a warm restart, reuse the members of a shipped one whose own run
    folders are gone.
    """
    path, _, index = str(spec).partition("#")
    model, card = load_model(path)
    if not index:
        return model, card
    if card.architecture != "ensemble" or not index.isdigit() or int(index) >= len(model.members):
        raise CheckpointError(f"{spec}: {path} has no member {index} (it is a {card.architecture})")
    story = card.training_config["members"][int(index)]
    member_card = replace(
        card, architecture=story["architecture"], architecture_kwargs=story["architecture_kwargs"],
        version=story.get("version", f"{card.version}#{index}"), training_config=story["training_config"],
        metrics=story["metrics"], temperature=1.0, class_bias=[])
    return model.members[int(index)], member_card
