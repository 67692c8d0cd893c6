"""A contact sheet of what the loader fed: per batch (one per size), a few samples with their D views.

Each row is one :class:`~mixsize_ray.data.loader.Batch`: a label ``S=.. b=.. D=..`` then, for the first
``samples`` samples, their D views side by side (a gap between samples). Every tile is shown at the same display
size with nearest-neighbour upscaling, so the pixel size of small inputs stays visible.

Example:
    >>> batches = [next(iter(loader)) for loader in loaders]  # doctest: +SKIP
    >>> save_contact_sheet(batches, "runs/contact_sheet.png")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from mixsize_ray.atomic import atomic_writer
from mixsize_ray.data.loader import Batch

_LABEL_W = 110
_GAP = 6


def _to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """Loader pixels ``[3, S, S]`` (uint8, or float in [0, 1]) -> ``[S, S, 3]`` uint8."""
    x = pixels.detach().cpu()
    if x.dtype != torch.uint8:
        x = (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return x.permute(1, 2, 0).contiguous().numpy()


def save_contact_sheet(
    batches: Sequence[Batch],
    path: str | Path,
    *,
    samples: int = 4,
    tile: int = 64,
) -> Path:
    """Write a PNG showing, for each batch, ``samples`` samples x D views, labelled with size, b and D.

    Args:
        batches: batches as yielded by the training loader (pixels ``images [b*D, 3, S, S]`` sample-major,
            shown as they are: the loader sends them before normalisation).
        path: output ``.png`` (parent folders are created; written atomically).
        samples: samples shown per batch. tile: display side of each view in pixels.

    Returns:
        The path written.
    """
    if not batches:
        raise ValueError("save_contact_sheet: no batches given")
    rows = []
    for b in batches:
        n = min(samples, b.batch_size)
        views = [
            _to_uint8(b.images[i * b.duplicates + v])
            for i in range(n)
            for v in range(b.duplicates)
        ]
        rows.append((b, n, views))
    width = _LABEL_W + max(n * (b.duplicates * tile + _GAP) for b, n, _ in rows)
    height = len(rows) * (tile + _GAP) + _GAP
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, (b, n, views) in enumerate(rows):
        y = _GAP + r * (tile + _GAP)
        draw.text((4, y + tile // 2 - 12), f"S={b.size} b={b.batch_size}\nD={b.duplicates}", fill=(0, 0, 0))
        for i in range(n):
            for v in range(b.duplicates):
                im = Image.fromarray(views[i * b.duplicates + v]).resize((tile, tile), Image.NEAREST)
                sheet.paste(im, (_LABEL_W + i * (b.duplicates * tile + _GAP) + v * tile, y))
    path = Path(path)
    with atomic_writer(path) as f:
        sheet.save(f, format="PNG")
    return path
