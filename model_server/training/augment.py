"""Batch augmentation for 48x48 faces, done on tensors so it runs on the GPU when training there."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _resample(images: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor, shift_x: torch.Tensor,
              shift_y: torch.Tensor, mirror: torch.Tensor | float, padding_mode: str) -> torch.Tensor:
    """One bilinear resampling of [N,1,H,W] images; angle in radians, shifts in [-1, 1] units."""
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([
        torch.stack([cos * mirror, -sin, shift_x], dim=1),
        torch.stack([sin * mirror, cos, shift_y], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def random_affine(images: torch.Tensor, generator: torch.Generator, max_shift: float, max_rotation_deg: float,
                  max_scale: float, flip: bool) -> torch.Tensor:
    """Shift, rotate, scale and mirror each image of an [N,1,H,W] batch in one resampling pass."""
    n, device = images.shape[0], images.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator, device=device) * (high - low) + low)

    angle = uniform(-max_rotation_deg, max_rotation_deg) * math.pi / 180
    scale = uniform(1 - max_scale, 1 + max_scale)
    mirror = torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -1.0, 1.0) if flip else 1.0
    # affine_grid works in [-1, 1] coordinates, so a shift of s pixels is 2s/W.
    shift_x = uniform(-max_shift, max_shift) * 2 / images.shape[-1]
    shift_y = uniform(-max_shift, max_shift) * 2 / images.shape[-2]
    return _resample(images, angle, scale, shift_x, shift_y, mirror, "border")


def reframe(images: torch.Tensor, framing: float = 1.0, rotation_deg: float = 0.0) -> torch.Tensor:
    """Re-crop [N,1,H,W] faces at ``framing`` times the original box (1.2 = looser) and rotate them.

    Pixels outside the original 48x48 crop are unknown; reflection fills them, unlike the edge
    replication used in training, so an evaluation does not reward the training artefact.
    """
    n, device = images.shape[0], images.device
    full = torch.ones(n, device=device)
    return _resample(images, full * math.radians(rotation_deg), full / framing, full * 0, full * 0, 1.0,
                     "reflection")


def random_photometric(images: torch.Tensor, generator: torch.Generator, brightness: float,
                       contrast: float) -> torch.Tensor:
    """Jitter brightness and contrast of [0,1] images: webcams differ far more than FER2013 does."""
    n, device = images.shape[0], images.device
    shape = (n, 1, 1, 1)
    gain = 1 + (torch.rand(shape, generator=generator, device=device) * 2 - 1) * contrast
    offset = (torch.rand(shape, generator=generator, device=device) * 2 - 1) * brightness
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return ((images - mean) * gain + mean + offset).clamp(0, 1)


def random_erase(images: torch.Tensor, generator: torch.Generator, probability: float,
                 max_area: float = 0.25, fill: float = 0.5) -> torch.Tensor:
    """Blank one random rectangle per chosen image, teaching the model to cope with occlusion."""
    n, _, height, width = images.shape
    device = images.device
    chosen = torch.rand(n, generator=generator, device=device) < probability
    area = torch.rand(n, generator=generator, device=device) * (max_area - 0.02) + 0.02
    aspect = torch.exp((torch.rand(n, generator=generator, device=device) - 0.5) * math.log(3))
    box_h = (torch.sqrt(area * aspect) * height).clamp(1, height)
    box_w = (torch.sqrt(area / aspect) * width).clamp(1, width)
    top = torch.rand(n, generator=generator, device=device) * (height - box_h)
    left = torch.rand(n, generator=generator, device=device) * (width - box_w)
    rows = torch.arange(height, device=device).view(1, height, 1)
    cols = torch.arange(width, device=device).view(1, 1, width)
    inside = ((rows >= top.view(-1, 1, 1)) & (rows < (top + box_h).view(-1, 1, 1))
              & (cols >= left.view(-1, 1, 1)) & (cols < (left + box_w).view(-1, 1, 1)))
    mask = (inside & chosen.view(-1, 1, 1)).unsqueeze(1)
    return images.masked_fill(mask, fill)


def mixup(images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator,
          alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend pairs of images and their soft targets with a Beta(alpha, alpha) weight."""
    weight = float(torch.distributions.Beta(alpha, alpha).sample())
    order = torch.randperm(images.shape[0], generator=generator, device="cpu").to(images.device)
    return weight * images + (1 - weight) * images[order], weight * targets + (1 - weight) * targets[order]
