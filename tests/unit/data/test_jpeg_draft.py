"""Reduced-scale JPEG decoding: where it applies, the geometry and RNG it keeps, the pixels it changes (bounded),
the images it leaves alone (bit for bit), and the file handles it does not keep.

Measured on the photo-like JPEGs of :func:`natural_image` (500x375, 333x501, 1200x900, 2000x1500, quality
90; 40 seeds per training size 32..224, evaluation at 32..224): where a reduced
decode is used, the output differs from the full decode's by a mean absolute 0.74-0.94 / 255 (median over
crops; worst crop 2.3 / 255) and at most 18 / 255 in any one value; the bounds asserted are 3 / 255 and 24 / 255.
"""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from torchvision.transforms import InterpolationMode, v2

from mixsize_ray.data.datasets import CorruptImageError, build_dataset
from mixsize_ray.data.jpeg_draft import (
    DraftRandomResizedCrop,
    coarsest_scale,
    decode,
    decoded_scales,
    is_lazy_jpeg,
    open_image,
    resized_region,
    resized_short_side,
)
from mixsize_ray.data.loader import LoaderWorkers
from mixsize_ray.data.presets import DataPreset
from mixsize_ray.data.transforms import (
    EvalViews,
    SharedCrop,
    eval_resize_side,
    pixel_transform,
    size_transform,
)

MEAN_ABS_BOUND = 3 / 255  # per output, where a reduced decode is used
MAX_ABS_BOUND = 24 / 255
IDENT = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}  # outputs in [0, 1]


def natural_image(width, height, seed):
    """A photo-like ``[height, width, 3]`` uint8 image: sinusoidal colour fields, eight rectangles with sharp
    edges (what misaligned geometry shows) and noise at 1, 2 and 4 px (sigma 8): about 80 KB at 500x375,
    quality 90. White noise would be no photo (all entropy decoding)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    img = np.full((height, width, 3), 128.0)
    for c in range(3):
        for _ in range(4):
            fx, fy = rng.uniform(0.5, 6, 2)
            img[..., c] += rng.uniform(15, 40) * np.sin(2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 2 * np.pi))
    for _ in range(8):
        top, left = rng.integers(0, height), rng.integers(0, width)
        img[top:top + rng.integers(height // 10 + 1, height // 2 + 2),
            left:left + rng.integers(width // 10 + 1, width // 2 + 2)] += rng.uniform(-60, 60, 3)
    for k in (1, 2, 4):
        img += rng.normal(0, 8, (height // k + 1, width // k + 1, 1)).repeat(k, 0).repeat(k, 1)[:height, :width]
    return np.clip(img, 0, 255).astype(np.uint8)


def natural_jpeg(path, width, height, seed):
    Image.fromarray(natural_image(width, height, seed)).save(path, "JPEG", quality=90)
    return path


def _today(size, train):
    """The ImageNet-style transform before reduced decoding (on a decoded image), outputs in [0, 1]."""
    ops = ([v2.RandomResizedCrop(size, interpolation=InterpolationMode.BILINEAR, antialias=True),
            v2.RandomHorizontalFlip()] if train else
           [v2.Resize(eval_resize_side(size), interpolation=InterpolationMode.BILINEAR, antialias=True),
            v2.CenterCrop(size)])
    return v2.Compose([*ops, v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    root = tmp_path_factory.mktemp("jpegs")
    return {(w, h): natural_jpeg(root / f"{w}x{h}.JPEG", w, h, seed=i)
            for i, (w, h) in enumerate([(500, 375), (333, 501), (2000, 1500)])}


def _folder(root, images):
    """``root/val/c0/<name>`` of ``{name: PIL image}`` (JPEG quality 90 or PNG by the name)."""
    (root / "val" / "c0").mkdir(parents=True)
    for name, img in images.items():
        img.save(root / "val" / "c0" / name, quality=90)
    return build_dataset("imagefolder", root, "val")


def test_eval_at_224_of_a_2000x1500_jpeg_decodes_at_a_quarter(tmp_path, monkeypatch):
    """Public API only: the ImageFolder item through the 224 px evaluation transform decodes 500x375 pixels
    (short side 375 >= 256 = int(8/7*224); at 1/8 it would be 187), not 2000x1500."""
    ds = _folder(tmp_path, {"big.JPEG": Image.fromarray(natural_image(2000, 1500, seed=0))})
    decoded = []
    real_load = ImageFile.ImageFile.load

    def spy(self):
        if self.tile:
            decoded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    x = size_transform("imagenet", 224, train=False)(ds[0][0])
    assert x.shape == (3, 224, 224) and decoded == [(500, 375)]


@pytest.mark.parametrize(("region", "out", "scale"), [
    ((2000, 1500), (341, 256), 4), ((2000, 1500), (256, 256), 4), ((500, 375), (292, 219), 1),
    ((500, 375), (243, 182), 2), ((256, 300), (128, 128), 2), ((255, 300), (128, 128), 1),
    ((1024, 1024), (128, 128), 8), ((1023, 1024), (128, 128), 4)])
def test_coarsest_scale_keeps_the_output_pixels(region, out, scale):
    assert coarsest_scale(region, out) == scale
    assert region[0] / scale >= out[0] and region[1] / scale >= out[1]


@pytest.mark.parametrize(("wh", "side"), [((500, 375), 256), ((333, 501), 182), ((375, 500), 36), ((64, 64), 32),
                                          ((2000, 1500), 146)])
def test_resized_short_side_is_torchvision_resize(wh, side):
    out = v2.Resize(side, interpolation=InterpolationMode.BILINEAR, antialias=True)(Image.new("RGB", wh))
    assert resized_short_side(*wh, side) == out.size


def test_open_image_is_lazy_for_rgb_jpegs_only(tmp_path):
    rgb = natural_image(60, 40, seed=1)
    files = {"rgb.JPEG": Image.fromarray(rgb), "png.png": Image.fromarray(rgb),
             "grey.JPEG": Image.fromarray(rgb).convert("L"), "cmyk.JPEG": Image.fromarray(rgb).convert("CMYK")}
    for name, img in files.items():
        img.save(tmp_path / name, quality=90)
    for name in files:
        img = open_image(tmp_path / name)
        want = Image.open(tmp_path / name).convert("RGB")
        assert img.mode == "RGB" and img.size == (60, 40) and is_lazy_jpeg(img) == (name == "rgb.JPEG"), name
        assert np.array_equal(np.asarray(img), np.asarray(want)), name  # any PIL use decodes it in full
    assert not is_lazy_jpeg(open_image(tmp_path / "rgb.JPEG", lazy=False))


def test_crop_box_and_random_draws_are_todays(jpegs):
    """Same seed: the same crop box (drawn on the header size, in original coordinates) and the same torch RNG
    state after the transform as the full-decode transform; flips follow (the outputs stay close)."""
    full = open_image(jpegs[500, 375], lazy=False)
    for size in (64, 128, 224):
        for seed in range(20):
            lazy = open_image(jpegs[500, 375])
            torch.manual_seed(seed)
            box = DraftRandomResizedCrop(size).make_params([lazy])
            torch.manual_seed(seed)
            assert box == v2.RandomResizedCrop(size).make_params([full])
            torch.manual_seed(seed)
            a = size_transform("imagenet", size, train=True, **IDENT)(lazy)
            after = torch.get_rng_state()
            torch.manual_seed(seed)
            b = _today(size, True)(full)
            assert torch.equal(after, torch.get_rng_state())
            assert (a - b).abs().mean() <= MEAN_ABS_BOUND, (size, seed)
            assert lazy.size == (500, 375) and is_lazy_jpeg(lazy)  # the item itself is never decoded in place


@pytest.mark.parametrize("wh", [(500, 375), (333, 501), (2000, 1500)])
@pytest.mark.parametrize("train", [True, False])
def test_pixel_difference_to_the_full_decode_is_bounded(jpegs, wh, train):
    """Full-scale crops are bit-identical to today's; reduced ones within the stated bounds."""
    full = open_image(jpegs[wh], lazy=False)
    reduced = 0
    for size in (32, 96, 128, 160, 224):
        new, ref = size_transform("imagenet", size, train=train, **IDENT), _today(size, train)
        for seed in range(12 if train else 1):
            lazy = open_image(jpegs[wh])
            torch.manual_seed(seed)
            a = new(lazy)
            torch.manual_seed(seed)
            b = ref(full)
            if max(decoded_scales(lazy)) == 1:
                assert torch.equal(a, b)
            else:
                reduced += 1
                diff = (a - b).abs()
                assert diff.mean() <= MEAN_ABS_BOUND and diff.max() <= MAX_ABS_BOUND, (size, seed, diff.max() * 255)
    assert reduced > 0


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_reduced_pixel_is_the_mean_of_its_original_block(jpegs, scale):
    """Geometry: pixel k of the 1/s decode is the mean of original pixels [s*k, s*k + s) (so the box / s of
    :func:`resized_region` is the same region): the mean absolute difference is under 1 / 255 there and at
    least twice as large when the block grid is moved by ONE original pixel in any direction."""
    for wh in ((500, 375), (333, 501)):
        full = np.asarray(open_image(jpegs[wh], lazy=False), dtype=float)
        small = np.asarray(decode(open_image(jpegs[wh]), scale), dtype=float)
        assert small.shape[:2] == (-(-wh[1] // scale), -(-wh[0] // scale))
        h, w = wh[1] // scale - 2, wh[0] // scale - 2
        err = {}
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                grid = full[scale + dy:scale + dy + h * scale, scale + dx:scale + dx + w * scale]
                err[dy, dx] = np.abs(grid.reshape(h, scale, w, scale, 3).mean((1, 3)) - small[1:h + 1, 1:w + 1]).mean()
        assert err[0, 0] < 1.0 and all(e >= 2 * err[0, 0] for k, e in err.items() if k != (0, 0)), err


def test_resized_region_maps_the_box_into_reduced_coordinates(jpegs):
    """The region of a box at scale s equals PIL's resize of the 1/s decode over box / s, and at scale 1
    torchvision's resized_crop of the full decode."""
    lazy = open_image(jpegs[2000, 1500])
    box = (101, 203, 101 + 777, 203 + 555)
    at4 = resized_region(lazy, box, (128, 128), scale=4)
    want = decode(lazy, 4).resize((128, 128), Image.Resampling.BILINEAR, box=(101 / 4, 203 / 4, 878 / 4, 758 / 4))
    assert np.array_equal(np.asarray(at4), np.asarray(want))
    at1 = resized_region(lazy, box, (128, 128), scale=1)
    ref = v2.functional.resized_crop(open_image(jpegs[2000, 1500], lazy=False), 203, 101, 555, 777, [128, 128],
                                     interpolation=InterpolationMode.BILINEAR, antialias=True)
    assert np.array_equal(np.asarray(at1), np.asarray(ref))
    assert resized_region(lazy, box, (128, 128)).size == (128, 128) and sorted(decoded_scales(lazy)) == [1, 4]


@pytest.mark.parametrize("train", [True, False])
def test_non_jpeg_and_decoded_images_are_todays_bit_for_bit(tmp_path, train):
    rgb = Image.fromarray(natural_image(333, 501, seed=3))
    ds = _folder(tmp_path, {"a.png": rgb, "b.JPEG": rgb.convert("L")})
    decoded_jpeg = open_image(tmp_path / "val" / "c0" / "b.JPEG", lazy=False)
    for img in (ds[0][0], ds[1][0], decoded_jpeg):
        assert not is_lazy_jpeg(img)
        for seed in range(4):
            torch.manual_seed(seed)
            a = size_transform("imagenet", 128, train=train, **IDENT)(img)
            torch.manual_seed(seed)
            assert torch.equal(a, _today(128, train)(img))


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_greyscale_and_cmyk_jpegs_come_out_rgb_also_when_lazy(tmp_path, mode):
    path = tmp_path / f"{mode}.JPEG"
    Image.fromarray(natural_image(500, 375, seed=4)).convert(mode).save(path, quality=90)
    lazy = Image.open(path)  # opened by hand: lazy whatever its mode
    assert is_lazy_jpeg(lazy) and lazy.mode == mode
    assert size_transform("imagenet", 96, train=False)(lazy).shape == (3, 96, 96)
    assert decode(lazy, 2).mode == "RGB" and decode(lazy, 2).size == (250, 188)
    lazy.close()


def test_shared_crop_decodes_once_at_the_largest_sizes_scale(jpegs):
    sizes = [32, 64, 128]
    for seed in range(10):
        lazy = open_image(jpegs[2000, 1500])
        torch.manual_seed(seed)
        views = SharedCrop(sizes, **IDENT)(lazy)
        after = torch.get_rng_state()
        assert len(decoded_scales(lazy)) == 1  # one decode for all sizes
        torch.manual_seed(seed)
        assert torch.equal(views[-1], size_transform("imagenet", 128, train=True, **IDENT)(open_image(jpegs[2000, 1500])))
        assert torch.equal(after, torch.get_rng_state())
        torch.manual_seed(seed)
        small = size_transform("imagenet", 32, train=True, **IDENT)(open_image(jpegs[2000, 1500]))
        assert (views[0] - small).abs().mean() <= MEAN_ABS_BOUND


def test_eval_views_stay_bit_identical_and_decode_once_per_scale(jpegs):
    sizes = [32, 64, 96, 128, 160, 224]
    lazy = open_image(jpegs[2000, 1500])
    views = EvalViews("imagenet", sizes)(lazy)
    for s, x in zip(sizes, views, strict=True):
        assert torch.equal(x, pixel_transform("imagenet", s, train=False)(open_image(jpegs[2000, 1500])))
    want = {coarsest_scale((2000, 1500), resized_short_side(2000, 1500, eval_resize_side(s))) for s in sizes}
    assert set(decoded_scales(lazy)) == want == {4, 8}


def test_no_file_handle_is_held(jpegs, tmp_path):
    def fds():
        return len(os.listdir("/proc/self/fd"))

    before = fds()
    items = [open_image(jpegs[500, 375]) for _ in range(200)]  # lazy, undecoded, all alive
    assert fds() == before
    for img in items[:20]:
        size_transform("imagenet", 128, train=True)(img)
    by_path = [Image.open(jpegs[500, 375]) for _ in range(5)]  # PIL's own file handles: decode opens its own
    for img in by_path:
        decode(img, 2)
        img.close()
    assert fds() == before


def test_lazy_images_pickle_and_cross_loader_workers(tmp_path):
    ds = _folder(tmp_path, {f"{i}.JPEG": Image.fromarray(natural_image(500, 375, seed=i)) for i in range(4)})
    back = pickle.loads(pickle.dumps(ds[0][0]))  # pickling decodes in full
    assert np.array_equal(np.asarray(back), np.asarray(open_image(ds.samples[0][0], lazy=False)))
    preset = DataPreset.for_dataset("imagefolder")
    (here,) = preset.eval_loader(ds, 128, batch_size=4)
    (there,) = preset.eval_loader(ds, 128, batch_size=4, workers=LoaderWorkers(1))
    assert torch.equal(here[0], there[0]) and torch.equal(here[1], there[1])


def test_truncated_jpeg_body_names_the_file_when_decoded(tmp_path):
    good = io.BytesIO()
    Image.fromarray(natural_image(500, 375, seed=5)).save(good, "JPEG", quality=90)
    path = tmp_path / "cut.JPEG"
    path.write_bytes(good.getvalue()[:4000])
    lazy = open_image(path)  # the header is fine
    with pytest.raises(CorruptImageError, match="cut.JPEG"):
        size_transform("imagenet", 64, train=False)(lazy)
    with pytest.raises(CorruptImageError, match="cut.JPEG"):
        open_image(path, lazy=False)
