"""Emotion classifier architectures, registered by name and built with create_model."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a model constructor to the registry under ``name``."""

    def add(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = builder
        return builder

    return add


def available_models() -> list[str]:
    """Names of every registered architecture."""
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered architecture by name with its keyword arguments."""
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available_models())}") from None
    return builder(**kwargs)


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class VGGNet(nn.Module):
    """VGG-style stack of 3x3 conv stages, each followed by 2x2 max pooling, then global pooling."""

    def __init__(self, widths=(32, 64, 128, 256), convs_per_stage=(1, 2, 2, 2),
                 num_classes: int = 7, in_channels: int = 1, dropout: float = 0.3):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for width, depth in zip(widths, convs_per_stage):
            for _ in range(depth):
                layers.append(_conv_bn_relu(channels, width))
                channels = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        # Global average pooling keeps the head small and lets the same weights
        # accept 40x40 or 48x48 crops.
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch of normalised grayscale faces."""
        return self.head(self.features(x))


class _BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet-18-style network sized for 40x40/48x48 grayscale crops (no early 7x7 stride)."""

    def __init__(self, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), num_classes: int = 7,
                 in_channels: int = 1, dropout: float = 0.3):
        super().__init__()
        # A 3x3 stem at full resolution: a 48x48 face has no pixels to spare for
        # ImageNet's 7x7/stride-2 stem plus max pooling.
        self.stem = _conv_bn_relu(in_channels, widths[0])
        stages: list[nn.Module] = []
        channels = widths[0]
        for index, (width, count) in enumerate(zip(widths, blocks)):
            for block in range(count):
                stride = 2 if block == 0 and index > 0 else 1
                stages.append(_BasicBlock(channels, width, stride))
                channels = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch of normalised grayscale faces."""
        return self.head(self.stages(self.stem(x)))


@register("vgg_tiny")
def vgg_tiny(**kwargs) -> nn.Module:
    """Compact VGG (~0.6M parameters) that trains on a 2-core CPU and runs in ~1 ms per face."""
    kwargs.setdefault("widths", (24, 48, 96, 192))
    kwargs.setdefault("convs_per_stage", (1, 2, 2, 2))
    return VGGNet(**kwargs)


@register("vgg13")
def vgg13(**kwargs) -> nn.Module:
    """Wider VGG with two convs per stage, for training on an accelerator."""
    kwargs.setdefault("widths", (64, 128, 256, 512))
    kwargs.setdefault("convs_per_stage", (2, 2, 2, 2))
    return VGGNet(**kwargs)


@register("resnet18")
def resnet18(**kwargs) -> nn.Module:
    """ResNet-18 layout adapted to small face crops."""
    return ResNet(**kwargs)


class Ensemble(nn.Module):
    """Several registered networks on the same input; outputs the log of their mean probabilities.

    Returning log-probabilities keeps the contract of every other network (softmax of the output is
    the prediction), so test-time augmentation, temperature scaling and evaluation work unchanged.
    """

    def __init__(self, members: list[dict] | None = None, num_classes: int = 7):
        super().__init__()
        # Two default members only so the registry's generic tests can build one without arguments.
        members = members if members is not None else [{"architecture": "vgg_tiny"}] * 2
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(
            create_model(spec["architecture"], num_classes=num_classes, **spec.get("architecture_kwargs", {}))
            for spec in members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log of the members' averaged softmax probabilities, [N, classes]."""
        log_probs = torch.stack([member(x).float().log_softmax(dim=1) for member in self.members])
        return torch.logsumexp(log_probs, dim=0) - torch.log(torch.tensor(float(len(self.members))))


@register("ensemble")
def ensemble(**kwargs) -> nn.Module:
    """Probability-averaging ensemble; ``members`` lists each member's architecture and arguments."""
    return Ensemble(**kwargs)
