"""Tiny synthetic detection scenes for the vision tests: crisp coloured shapes on plain or gradient backgrounds."""

from __future__ import annotations

import math

import torch
from torch import Tensor

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring")


def _mask(shape: str, xs: Tensor, ys: Tensor, cx: float, cy: float, r: float) -> Tensor:
    """Boolean (H, W) mask of a shape of 'radius' r centred at (cx, cy)."""
    dx, dy = xs - cx, ys - cy
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "square":
        return (dx.abs() <= r) & (dy.abs() <= r)
    if shape == "triangle":  # apex up, base at cy + r
        return (dy <= r) & (dy >= -r) & (dx.abs() <= (dy + r) / 2)
    if shape == "ring":
        d2 = dx**2 + dy**2
        return (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)
    if shape == "cross":
        arm = 0.35 * r
        return ((dx.abs() <= r) & (dy.abs() <= arm)) | ((dx.abs() <= arm) & (dy.abs() <= r))
    if shape == "star":  # five points: radius oscillates between 0.45 r and r with the angle
        angle = torch.atan2(dy, dx) + math.pi / 2
        bound = r * (0.45 + 0.55 * (torch.cos(5 * angle) + 1) / 2)
        return dx**2 + dy**2 <= bound**2
    raise ValueError(shape)


def _background(size: int, generator: torch.Generator) -> Tensor:
    low, high = torch.rand(3, generator=generator) * 255, torch.rand(3, generator=generator) * 255
    ramp = torch.linspace(0, 1, size).view(1, 1, size) if torch.rand((), generator=generator) < 0.5 else 0.0
    image = low.view(3, 1, 1) + (high - low).view(3, 1, 1) * ramp + torch.zeros(3, size, size)
    return image


def make_scene(size: int, generator: torch.Generator, num_classes: int = len(SHAPES)) -> tuple[Tensor, Tensor, Tensor]:
    """One scene: (3, size, size) uint8, boxes (n, 4) xyxy (the shape's tight box), labels (n,) in 0..num_classes-1."""
    image = _background(size, generator)
    ys, xs = torch.meshgrid(torch.arange(size).float() + 0.5, torch.arange(size).float() + 0.5, indexing="ij")
    count = int(torch.randint(1, 5, (), generator=generator))
    boxes, labels = [], []
    for _ in range(count):
        label = int(torch.randint(num_classes, (), generator=generator))
        r = float(size * (0.07 + 0.13 * torch.rand((), generator=generator)))
        cx, cy = (r + (size - 2 * r) * torch.rand(2, generator=generator)).tolist()
        mask = _mask(SHAPES[label], xs, ys, cx, cy, r)
        colour = torch.rand(3, generator=generator) * 255
        image[:, mask] = colour.view(3, 1)
        rows, cols = mask.any(dim=1).nonzero(), mask.any(dim=0).nonzero()
        boxes.append([float(cols.min()), float(rows.min()), float(cols.max()) + 1, float(rows.max()) + 1])
        labels.append(label)
    return image.round().clamp(0, 255).to(torch.uint8), torch.tensor(boxes), torch.tensor(labels, dtype=torch.long)


def make_scenes(
    count: int, size: int, seed: int, num_classes: int = len(SHAPES)
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """`count` scenes from a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    return [make_scene(size, generator, num_classes) for _ in range(count)]
