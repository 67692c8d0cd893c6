"""The contact sheet of loader batches is a valid PNG with one row per batch and D views per sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mixsize_ray.data.contact_sheet import save_contact_sheet
from mixsize_ray.data.loader import Batch
from mixsize_ray.data.presets import DataPreset
from mixsize_ray.data.shapes import ShapesDataset
from tests.unit.data.steps import Step


def test_contact_sheet_from_loader_batches(tmp_path):
    ds = ShapesDataset(tmp_path / "data", "train", size=20)
    steps = [
        Step(16, 6, 2, list(range(6)), 0),
        Step(32, 3, 2, list(range(6, 9)), 1),
        Step(48, 2, 1, [9, 10], 2),
    ]
    batches = list(DataPreset.for_dataset("shapes").train_loader(ds, lambda: steps))
    out = save_contact_sheet(batches, tmp_path / "sheets" / "sheet.png", samples=4, tile=32)
    assert out == tmp_path / "sheets" / "sheet.png"
    assert [p.name for p in out.parent.iterdir()] == ["sheet.png"]  # no temporary file left
    with Image.open(out) as im:
        im.verify()
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        w, h = im.size
        sheet = np.asarray(im)
    assert h == 3 * (32 + 6) + 6  # one row per batch
    assert w >= 4 * 2 * 32  # 4 samples x 2 views in the widest row
    # the first tile is the first view of the first batch: its pixels (the loader sends them unnormalised),
    # upscaled (nearest)
    first = batches[0].images[0]
    expected = (first.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    tile = sheet[6 : 6 + 32, 110 : 110 + 32]
    assert np.abs(tile[::2, ::2].astype(int) - expected.astype(int)).max() <= 1


def test_contact_sheet_of_uint8_pixels_and_empty(tmp_path):
    pixels = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    b = Batch(pixels, torch.zeros(4, dtype=torch.int64), 8, 2)
    path = save_contact_sheet([b], tmp_path / "s.png", tile=8)
    with Image.open(path) as im:
        tile = np.asarray(im)[6 : 6 + 8, 110 : 110 + 8]
    assert np.array_equal(tile, pixels[0].permute(1, 2, 0).numpy())  # ImageNet-style pixels shown exactly
    with pytest.raises(ValueError):
        save_contact_sheet([], tmp_path / "e.png")
