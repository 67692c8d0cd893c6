"""DataPreset: the data side of a run (style, native side, normalisation) and the three loaders it builds."""

from __future__ import annotations

import pytest
import torch

from mixsize_ray.core.calibration import resize_batches
from mixsize_ray.data.loader import CalibrationDraw, LoaderWorkers, MixSizeBatchSampler, build_loader
from mixsize_ray.data.presets import CalibrationSource, DataPreset
from mixsize_ray.data.shapes import ShapesDataset
from tests.unit.data.steps import Step


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return ShapesDataset(tmp_path_factory.mktemp("shapes"), "train", size=40, seed=0)


PRESET = DataPreset.for_dataset("shapes")


class Counting(torch.utils.data.Dataset):
    """Counts the images decoded from ``base``."""

    def __init__(self, base):
        self.base, self.calls = base, 0

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        self.calls += 1
        return self.base[i]


def test_preset_of_each_dataset():
    assert PRESET == DataPreset("cifar", 64, (0.5, 0.5, 0.5), (0.22, 0.22, 0.22))
    assert DataPreset.for_dataset("cifar100") == DataPreset(
        "cifar", 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
    assert DataPreset.for_dataset("imagefolder") == DataPreset(
        "imagenet", None, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert DataPreset("cifar", 32, [0, 0, 0], [1, 1, 1]).mean == (0.0, 0.0, 0.0)  # lists become tuples


def test_train_loader_is_build_loader_with_the_train_transforms(shapes):
    steps = [Step(24, 4, 2, [0, 5, 9, 3], 0), Step(40, 2, 1, [7, 8], 1)]
    a = list(PRESET.train_loader(shapes, lambda: steps, workers=LoaderWorkers(0), seed=4))
    b = list(build_loader(shapes, PRESET.transforms(train=True), MixSizeBatchSampler(lambda: steps, seed=4)))
    assert [x.images.shape for x in a] == [(8, 3, 24, 24), (2, 3, 40, 40)]
    assert all(torch.equal(x.images, y.images) and torch.equal(x.targets, y.targets) for x, y in zip(a, b, strict=True))


def test_cifar_calibration_source_augments_once_at_the_native_side(shapes):
    counting = Counting(shapes)
    draw = CalibrationDraw(batch_size=6, num_batches=3, seed=7)
    source = PRESET.calibration_source(counting, draw)
    assert isinstance(source, CalibrationSource)
    at_16, at_40 = list(source(16)), list(source(40))
    assert counting.calls == 18  # 3 batches of 6 decoded once, for every size
    native = list(PRESET.calibration_batches(shapes, 64, draw))
    for got, want in ((at_16, resize_batches(native, 16)), (at_40, resize_batches(native, 40))):
        assert all(torch.equal(x, y) for x, y in zip(got, want, strict=True)) and len(got) == 3
    assert at_16[0].shape == (6, 3, 16, 16) and list(source(64))[0].shape == (6, 3, 64, 64)


def test_imagenet_calibration_source_loads_each_size(shapes):
    preset = DataPreset("imagenet")
    counting = Counting(shapes)
    draw = CalibrationDraw(4, 2, seed=1)
    source = preset.calibration_source(counting, draw)
    a = list(source(24))
    assert counting.calls == 8 and [x.shape for x in a] == [(4, 3, 24, 24)] * 2
    want = list(preset.calibration_batches(shapes, 24, draw))  # RandomResizedCrop(24), not a resize
    assert all(torch.equal(x, y) for x, y in zip(a, want, strict=True))
    list(source(24))
    assert counting.calls == 16


@pytest.mark.parametrize("style", ["cifar", "imagenet"])
def test_together_decodes_once_and_equals_each_size_alone(shapes, style):
    preset = PRESET if style == "cifar" else DataPreset("imagenet")
    counting = Counting(shapes)
    draw = CalibrationDraw(4, 3, seed=5)
    source = preset.calibration_source(counting, draw)
    sizes = [16, 24, 40]
    together = list(source.together(sizes))
    assert counting.calls == 12  # 3 batches of 4, decoded once for all three sizes
    assert [sorted(item) for item in together] == [sizes] * 3
    for s in sizes:  # each size's batches are what calibrating that size alone forwards, bit for bit
        alone = list(preset.calibration_source(shapes, draw)(s))
        assert all(torch.equal(item[s], x) for item, x in zip(together, alone, strict=True))
