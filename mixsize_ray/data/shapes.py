"""The embedded generated dataset: 10 classes of anti-aliased geometric shapes at a FIXED object scale.

Each image is ``resolution x resolution`` RGB uint8 (default 64x64): a linear-gradient background, a few tiny
clutter dots and strokes, one shape of radius ``resolution / 4`` (about half the half-frame, 16 px at 64) with a
small random offset, a random rotation and a random colour contrasting with the background, and mild Gaussian
noise. The object's scale never varies, so a network trained at one input size learns one apparent object
size: this is what makes the data scale-sensitive and lets MixSize show its effect on a CPU (README.md,
"Reproduce at small scale", gives the accuracy by evaluation size this leads to; random object scales would
teach scale invariance by themselves and hide the effect).

Rendering is vectorised with numpy signed-distance functions (SDFs) in pixel units and an analytic one-pixel
smooth edge (coverage = clip(0.5 - sdf, 0, 1)), which anti-aliases like box supersampling. Output is a pure
function of ``(n, seed, resolution)``: the same arguments give byte-identical arrays.

Example:
    >>> images, labels = generate_shapes(20, seed=0)
    >>> images.shape, images.dtype, labels.shape, labels.dtype
    ((20, 64, 64, 3), dtype('uint8'), (20,), dtype('int64'))
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from mixsize_ray.atomic import atomic_writer
from mixsize_ray.errors import ConfigError

SHAPE_CLASSES: tuple[str, ...] = (
    "disc",
    "square",
    "triangle",
    "flower",
    "plus",
    "ring",
    "crescent",
    "bar",
    "half-disc",
    "two-discs",
)
"""Class names; the label of an image is its index in this tuple."""

GENERATOR_VERSION = 1
"""Bumped whenever rendering changes, so stale cache files are not reused."""

SPLITS: tuple[str, ...] = ("train", "test")
_SPLIT_CODE = {"train": 0, "test": 1}
_CHUNK = 256  # images rendered at once; fixed so the noise stream (and the bytes) never depend on memory
_N_CLUTTER = 4


# --- signed-distance functions in the object's frame (units of the object radius, so the radius is 1) ---------
# u, v: arrays [n, H, W] of rotated, radius-normalised coordinates. Each returns an approximate signed distance
# (negative inside) with unit gradient near the boundary, so multiplying by the radius gives pixels.


def _box(u: np.ndarray, v: np.ndarray, hu: float, hv: float) -> np.ndarray:
    qu, qv = np.abs(u) - hu, np.abs(v) - hv
    outside = np.hypot(np.maximum(qu, 0), np.maximum(qv, 0))
    return outside + np.minimum(np.maximum(qu, qv), 0)


def _disc(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.hypot(u, v) - 1.0


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return _box(u, v, 0.8, 0.8)


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # equilateral, circumradius 1.05 (inradius 0.525): max over the three edge half-planes
    d = None
    for ang in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
        e = -(u * np.cos(ang) + v * np.sin(ang)) - 0.525
        d = e if d is None else np.maximum(d, e)
    return d


def _flower(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r = np.hypot(u, v)
    phi = np.arctan2(v, u)
    f = 0.72 + 0.28 * np.cos(5 * phi)
    df = -1.4 * np.sin(5 * phi)
    return (r - f) / np.sqrt(1.0 + (df / np.maximum(r, 1e-3)) ** 2)


def _plus(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.minimum(_box(u, v, 0.95, 0.3), _box(u, v, 0.3, 0.95))


def _ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.abs(np.hypot(u, v) - 0.75) - 0.25


def _crescent(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.hypot(u, v) - 1.0, 0.8 - np.hypot(u - 0.5, v))


def _bar(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return _box(u, v, 1.0, 0.28)


def _half_disc(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    v = v + 0.42  # centre the half-disc's bounding box on the object centre
    return np.maximum(np.hypot(u, v) - 1.0, -v)


def _two_discs(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.minimum(np.hypot(u + 0.52, v) - 0.46, np.hypot(u - 0.52, v) - 0.46)


_SDFS: tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], ...] = (
    _disc,
    _square,
    _triangle,
    _flower,
    _plus,
    _ring,
    _crescent,
    _bar,
    _half_disc,
    _two_discs,
)


def _segment(px: np.ndarray, py: np.ndarray, ax, ay, bx, by) -> np.ndarray:
    """Distance from points ``(px, py)`` [n, K, H, W] to segments a-b ([n, K, 1, 1] each)."""
    dx, dy = bx - ax, by - ay
    t = ((px - ax) * dx + (py - ay) * dy) / np.maximum(dx * dx + dy * dy, 1e-6)
    t = np.clip(t, 0.0, 1.0)
    return np.hypot(px - ax - t * dx, py - ay - t * dy)


def generate_shapes(n: int, seed: int, resolution: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` shape images, deterministically from ``seed``.

    Args:
        n: number of images (>= 1). Classes are balanced: every class gets ``n // 10`` or ``n // 10 + 1``.
        seed: any non-negative int; equal ``(n, seed, resolution)`` give byte-identical outputs.
        resolution: image side in pixels (>= 16). The object radius is ``resolution / 4``.

    Returns:
        ``(images, labels)``: ``images`` uint8 ``[n, resolution, resolution, 3]`` (HWC, RGB) and
        ``labels`` int64 ``[n]`` with values in ``range(10)`` (see :data:`SHAPE_CLASSES`), in shuffled order.
    """
    if not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError("data.size", "an int >= 1", n)
    if not isinstance(resolution, int | np.integer) or resolution < 16:
        raise ConfigError("data.resolution", "an int >= 16", resolution)
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError("seed", "an int >= 0", seed)
    n, res = int(n), int(resolution)
    rng = np.random.default_rng(seed)
    k = len(SHAPE_CLASSES)
    labels = rng.permutation(np.arange(n, dtype=np.int64) % k)

    # every per-image parameter is drawn up front, in a fixed order
    radius = res / 4.0
    max_off = res / 8.0
    cx = res / 2.0 + rng.uniform(-max_off, max_off, n)
    cy = res / 2.0 + rng.uniform(-max_off, max_off, n)
    theta = rng.uniform(0.0, 2 * np.pi, n)
    bg_mean = rng.uniform(0.15, 0.85, (n, 3))
    bg_delta = rng.uniform(-0.15, 0.15, (n, 3))
    bg_angle = rng.uniform(0.0, 2 * np.pi, n)
    # foreground: per channel, pushed 0.3..0.6 away from the background towards the farther end
    fg_step = rng.uniform(0.3, 0.6, (n, 3))
    fg = np.clip(bg_mean + np.where(bg_mean < 0.5, fg_step, -fg_step), 0.0, 1.0)
    # clutter: K tiny dots or short strokes per image, each with its own colour
    cl_is_line = rng.random((n, _N_CLUTTER)) < 0.5
    cl_x = rng.uniform(0, res, (n, _N_CLUTTER))
    cl_y = rng.uniform(0, res, (n, _N_CLUTTER))
    cl_len = rng.uniform(0.05, 0.1, (n, _N_CLUTTER)) * res
    cl_ang = rng.uniform(0.0, np.pi, (n, _N_CLUTTER))
    cl_rad = rng.uniform(0.012, 0.025, (n, _N_CLUTTER)) * res
    cl_col = rng.uniform(0.0, 1.0, (n, _N_CLUTTER, 3))
    noise_rng = np.random.default_rng(rng.integers(0, 2**63))
    f32 = np.float32
    cx, cy, theta, bg_mean, bg_delta, bg_angle, fg = (
        a.astype(f32) for a in (cx, cy, theta, bg_mean, bg_delta, bg_angle, fg)
    )
    half = np.where(cl_is_line, cl_len / 2, 0.0)
    cl_ax, cl_ay = cl_x - half * np.cos(cl_ang), cl_y - half * np.sin(cl_ang)
    cl_bx, cl_by = cl_x + half * np.cos(cl_ang), cl_y + half * np.sin(cl_ang)
    cl_thick = np.where(cl_is_line, 0.5 * res / 64, cl_rad)  # strokes are one pixel wide at 64 px
    cl_ax, cl_ay, cl_bx, cl_by, cl_thick, cl_col = (
        a.astype(f32) for a in (cl_ax, cl_ay, cl_bx, cl_by, cl_thick, cl_col)
    )
    w = 2 * int(np.ceil(0.075 * res + 1.5)) + 1  # window side covering the largest clutter element
    win = np.arange(w)
    cl_x0 = np.clip(np.floor(cl_x).astype(np.int64) - w // 2, 0, res - w)  # [n, K] window corners
    cl_y0 = np.clip(np.floor(cl_y).astype(np.int64) - w // 2, 0, res - w)
    # every shape lies within 1.15 radii of its centre: render it in a window of that size (plus the edge)
    wo = min(res, 2 * int(np.ceil(1.15 * radius + 1.5)) + 1)
    ob_win = np.arange(wo)
    ob_x0 = np.clip(np.floor(cx).astype(np.int64) - wo // 2, 0, res - wo)
    ob_y0 = np.clip(np.floor(cy).astype(np.int64) - wo // 2, 0, res - wo)

    images = np.empty((n, res, res, 3), dtype=np.uint8)
    coords = np.arange(res, dtype=np.float32) + 0.5
    gy, gx = np.meshgrid(coords, coords, indexing="ij")  # [H, W]
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        m = sl.stop - sl.start
        x, y = gx[None], gy[None]  # [1, H, W]

        # background gradient [m, H, W, 3]
        t = (
            (x - res / 2) * np.cos(bg_angle[sl])[:, None, None]
            + (y - res / 2) * np.sin(bg_angle[sl])[:, None, None]
        ) / res
        img = bg_mean[sl][:, None, None, :] + 2.0 * t[..., None] * bg_delta[sl][:, None, None, :]

        # clutter: each element is a capsule (segment a-b, thickness r); a dot is a zero-length capsule.
        # Rendered in a small w x w window around it, so the cost does not grow with the frame.
        for j in range(_N_CLUTTER):
            rows = cl_y0[sl, j, None] + win  # [m, w]
            cols = cl_x0[sl, j, None] + win
            py = rows[:, :, None].astype(f32) + 0.5  # [m, w, 1]
            px = cols[:, None, :].astype(f32) + 0.5  # [m, 1, w]
            a_x, a_y = (q[sl, j, None, None] for q in (cl_ax, cl_ay))
            b_x, b_y = (q[sl, j, None, None] for q in (cl_bx, cl_by))
            d = _segment(px, py, a_x, a_y, b_x, b_y) - cl_thick[sl, j, None, None]
            cov = np.clip(0.5 - d, 0.0, 1.0)[..., None]  # [m, w, w, 1]
            idx = (np.arange(m)[:, None, None], rows[:, :, None], cols[:, None, :])
            patch = img[idx]
            img[idx] = patch + cov * (cl_col[sl, j, None, None, :] - patch)

        # the object, in a window around it, in its rotated radius-normalised frame; sdf * radius is pixels
        rows = ob_y0[sl, None] + ob_win  # [m, wo]
        cols = ob_x0[sl, None] + ob_win
        dy = rows[:, :, None].astype(f32) + 0.5 - cy[sl, None, None]  # [m, wo, 1]
        dx = cols[:, None, :].astype(f32) + 0.5 - cx[sl, None, None]  # [m, 1, wo]
        c, s = np.cos(theta[sl])[:, None, None], np.sin(theta[sl])[:, None, None]
        u = (c * dx + s * dy) / radius  # [m, wo, wo]
        v = (c * dy - s * dx) / radius
        sdf = np.empty(u.shape, dtype=f32)
        lab = labels[sl]
        for cls in range(k):
            sel = lab == cls
            if sel.any():
                sdf[sel] = _SDFS[cls](u[sel], v[sel])
        cov = np.clip(0.5 - sdf * radius, 0.0, 1.0)[..., None]  # [m, wo, wo, 1]
        idx = (np.arange(m)[:, None, None], rows[:, :, None], cols[:, None, :])
        patch = img[idx]
        img[idx] = patch + cov * (fg[sl, None, None, :] - patch)

        # mild sensor noise, one draw per pixel shared by the channels; then round to uint8 in place
        img += 0.03 * noise_rng.standard_normal((m, res, res, 1), dtype=f32)
        np.clip(img, 0.0, 1.0, out=img)
        img *= 255.0
        img += 0.5
        images[sl] = img.astype(np.uint8)
    return images, labels


def default_root() -> Path:
    """``$MIXSIZE_RAY_DATA_DIR/shapes`` if that variable is set, else ``~/.cache/mixsize_ray/shapes``."""
    env = os.environ.get("MIXSIZE_RAY_DATA_DIR")
    return Path(env) / "shapes" if env else Path.home() / ".cache" / "mixsize_ray" / "shapes"


def split_seed(seed: int, split: str) -> int:
    """The generator seed of ``split``: derived from ``(seed, split)`` so train and test never share images."""
    if split not in _SPLIT_CODE:
        raise ConfigError("data.split", f"one of {list(SPLITS)}", split)
    return int(
        np.random.SeedSequence([int(seed), _SPLIT_CODE[split], 0x5A4E]).generate_state(1, np.uint64)[0] >> 1
    )


def cache_path(root: str | Path, split: str, size: int, seed: int, resolution: int) -> Path:
    """The ``.npz`` file caching one ``(split, size, seed, resolution)`` under ``root``."""
    return Path(root) / f"shapes-v{GENERATOR_VERSION}_{split}_n{size}_seed{seed}_r{resolution}.npz"


def _write_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    with atomic_writer(path) as f:
        np.savez(f, **arrays)


def load_or_generate(
    root: str | Path | None, split: str, size: int, seed: int = 0, resolution: int = 64
) -> tuple[np.ndarray, np.ndarray, Path]:
    """Load the cached arrays of a split, generating and caching them (atomically) on a miss.

    Returns:
        ``(images uint8 [size, R, R, 3], labels int64 [size], path of the cache file)``.
    """
    path = cache_path(default_root() if root is None else root, split, size, seed, resolution)
    if path.is_file():
        try:
            with np.load(path) as z:
                images, labels = z["images"], z["labels"]
            if images.shape == (size, resolution, resolution, 3) and labels.shape == (size,):
                return images, labels, path
        except (OSError, ValueError, KeyError):
            pass  # unreadable or truncated by something else: regenerate and overwrite
    images, labels = generate_shapes(size, split_seed(seed, split), resolution)
    _write_npz_atomic(path, images=images, labels=labels)
    return images, labels, path


class ShapesDataset(Dataset):
    """The generated shapes as a torch Dataset of ``(PIL.Image RGB resolution x resolution, int label)``.

    Torchvision transforms therefore apply exactly as to CIFAR or ImageFolder. The arrays are generated once per
    ``(split, size, seed, resolution)`` and cached as ``.npz`` under ``root``.

    Args:
        root: cache folder; ``None`` means :func:`default_root`.
        split: ``"train"`` or ``"test"`` (different derived seeds, so disjoint random draws).
        size: number of images.
        seed: dataset seed (not the training seed).
        resolution: image side in pixels.

    Attributes:
        classes: list of the 10 class names. targets: list of int labels (like torchvision's CIFAR10).
        data: uint8 array ``[size, R, R, 3]``. cache_file: the ``.npz`` path.

    Example:
        >>> ds = ShapesDataset("/tmp/shapes", "train", size=100)
        >>> img, label = ds[0]
        >>> img.size, len(ds.classes), label == ds.targets[0]
        ((64, 64), 10, True)
    """

    def __init__(
        self, root: str | Path | None, split: str, size: int, seed: int = 0, resolution: int = 64
    ) -> None:
        if split not in SPLITS:
            raise ConfigError("data.split", f"one of {list(SPLITS)}", split)
        self.split = split
        self.resolution = int(resolution)
        self.data, labels, self.cache_file = load_or_generate(root, split, size, seed, resolution)
        self.targets: list[int] = labels.tolist()
        self.classes: list[str] = list(SHAPE_CLASSES)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.data[index]), self.targets[index]
