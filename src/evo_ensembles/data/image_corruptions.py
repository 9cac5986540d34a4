"""Corruptions for 28×28 grayscale test sets (Fashion-MNIST-C, MNIST-C), 5 severities each.

The 15 ImageNet-C types (Hendrycks & Dietterich, 2019) adapted to 28×28 grayscale, plus
the shape corruptions of MNIST-C (Mu & Gilmer, 2019) that fit a 28×28 image. Generation,
the on-disk set and its loader are in :mod:`.corrupted`; this module holds the transforms.
The command that generates a set is :mod:`.corruptions`::

    python -m evo_ensembles.data.corruptions fashion-mnist [--root DIR] [--seed 0] [--n N]

Why our own generator: ``imagecorruptions`` 1.1.2 refuses images under 32 px and three
of its corruptions break with current scikit-image/numpy; ``corrupt-tta`` seeds through
global numpy state. Here everything is torch (``grid_sample``, ``conv2d``,
torchvision.transforms.v2 ``gaussian_blur``), numpy and Pillow (JPEG) only — no
scikit-image, OpenCV, Wand or scipy — vectorised over the batch, and every random draw
comes from the explicit ``numpy.random.Generator`` passed in (:func:`corruption_rng`
derives it from seed, corruption index, severity and chunk), never global state.

Departures from the originals, all deliberate:
- frost: ImageNet-C crops six photographed frost textures; we synthesise seeded textures
  (a plasma-fractal haze plus branching ice needles, 64×64) and crop one at random per image;
- motion blur (ImageMagick in ImageNet-C): a one-sided Gaussian-weighted sum of sub-pixel
  shifts along a random direction per image; snow's streaks use the same operator;
- glass blur: every pixel takes the value at a random sub-pixel offset (bilinear, all
  pixels at once, repeated); ImageNet-C's whole-pixel sequential swaps, whose chains carry
  pixels far, shatter a 28-px image already at severity 1;
- elastic: the smooth displacement field is scaled to a given std in pixels;
- canny: Gaussian + Sobel + non-maximum suppression + hysteresis by repeated 3×3 dilation,
  with thresholds relative to each image's largest gradient (0.1 and 0.25 of it) instead of
  scikit-image's absolute ones;
- geometric corruptions fill with 0 (the black background of both data sets); blurs
  repeat the border; outputs are rounded to uint8 (ImageNet-C truncates).

Severity parameters, severity 1 → 5 (``PARAMS``; ``MEANINGS`` says what each is; pixel
units are for the 28×28 image, intensities in [0, 1]; ranges ``a-b`` are drawn uniformly
per image). Severity 5 is hard but leaves the object visible; the mean absolute change
from clean grows with severity for every type but canny (an edge map at every severity):

=================  ===============================  ==========================================
type               parameter                        1 → 5
=================  ===============================  ==========================================
gaussian_noise     noise std                        .08 .12 .18 .26 .38
shot_noise         photons per unit intensity       60 25 12 5 3
impulse_noise      salt-and-pepper fraction         .03 .06 .09 .17 .27
defocus_blur       (disk radius, anti-alias σ)      (.6,.5) (1,.5) (1.5,.5) (2,.5) (2.6,.5)
glass_blur         (σ, max offset, iterations)      (.4,.5,1) (.5,.7,1) (.5,.9,2) (.6,1,2) (.7,1.2,3)
motion_blur        (length, σ)                      (3,1) (4,1.5) (5,2) (7,2.5) (9,3)
zoom_blur          (largest zoom, step)             (1.11,.01) (1.16,.01) (1.21,.02) (1.26,.02) (1.31,.03)
snow               (loc, scale, zoom, threshold,    (.1,.2,1,.6,4,1.5,.95) (.1,.2,1,.5,5,2,.9)
                   streak length, streak σ, blend)  (.15,.3,1.75,.55,5,2,.9) (.25,.3,2.25,.6,6,3,.85)
                                                    (.3,.3,1.25,.65,7,6,.8)
frost              (image weight, frost weight)     (1,.25) (.95,.35) (.9,.45) (.85,.5) (.75,.6)
fog                (fog weight, fractal decay)      (.4,3) (.7,2.6) (1,2.2) (1.4,1.9) (1.9,1.6)
brightness         added intensity                  .1 .2 .3 .4 .5
contrast           contrast factor                  .6 .45 .3 .2 .12
elastic_transform  (displacement std, smoothing σ,  (.5,3,.5) (.8,3,.8) (1.1,3,1.1) (1.5,3,1.4)
                   affine jitter)                   (1.9,3,1.8)
pixelate           resolution factor                .85 .7 .55 .45 .35
jpeg_compression   JPEG quality (Pillow)            20 14 10 7 5
rotate             degrees, random sign             5-15 15-25 25-35 35-50 50-70
shear              x-shear, random sign             .1-.2 .2-.35 .35-.5 .5-.7 .7-.9
scale              shrink factor                    .85-.95 .75-.85 .65-.75 .55-.65 .45-.55
translate          px per axis, random signs        1-2 2-3 3-4 4-5 5-7
stripe             (inverted stripes, width)        (1,2) (1,3) (2,3) (2,4) (3,4)
zigzag             (lines, width)                   (1,1) (1,1.5) (2,1.2) (2,1.5) (3,1.5)
dotted_line        (lines, dot spacing)             (1,3) (2,3) (3,3) (4,3) (6,3)
canny_edges        blur σ before edges              .6 .9 1.2 1.6 2
=================  ===============================  ==========================================

Examples:
    >>> import numpy as np
    >>> x = np.zeros((2, 28, 28), np.uint8)
    >>> y = corrupt(x, "brightness", 5, corruption_rng(0, "brightness", 5))
    >>> y.dtype, y.shape, int(y.max())
    (dtype('uint8'), (2, 28, 28), 128)
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.v2 import functional as TF

# Bump when any transform or parameter changes what it writes: a set generated by another
# version is then regenerated instead of being taken as complete.
GENERATOR_VERSION = 1
SEVERITIES = (1, 2, 3, 4, 5)

PARAMS: dict[str, tuple] = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    "shot_noise": (60, 25, 12, 5, 3),
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
    "defocus_blur": ((0.6, 0.5), (1.0, 0.5), (1.5, 0.5), (2.0, 0.5), (2.6, 0.5)),
    "glass_blur": ((0.4, 0.5, 1), (0.5, 0.7, 1), (0.5, 0.9, 2), (0.6, 1.0, 2), (0.7, 1.2, 3)),
    "motion_blur": ((3, 1.0), (4, 1.5), (5, 2.0), (7, 2.5), (9, 3.0)),
    "zoom_blur": ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)),
    "snow": ((0.1, 0.2, 1.0, 0.6, 4, 1.5, 0.95), (0.1, 0.2, 1.0, 0.5, 5, 2.0, 0.9),
             (0.15, 0.3, 1.75, 0.55, 5, 2.0, 0.9), (0.25, 0.3, 2.25, 0.6, 6, 3.0, 0.85),
             (0.3, 0.3, 1.25, 0.65, 7, 6.0, 0.8)),
    "frost": ((1.0, 0.25), (0.95, 0.35), (0.9, 0.45), (0.85, 0.5), (0.75, 0.6)),
    "fog": ((0.4, 3.0), (0.7, 2.6), (1.0, 2.2), (1.4, 1.9), (1.9, 1.6)),
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    "contrast": (0.6, 0.45, 0.3, 0.2, 0.12),
    "elastic_transform": ((0.5, 3.0, 0.5), (0.8, 3.0, 0.8), (1.1, 3.0, 1.1), (1.5, 3.0, 1.4),
                          (1.9, 3.0, 1.8)),
    "pixelate": (0.85, 0.7, 0.55, 0.45, 0.35),
    "jpeg_compression": (20, 14, 10, 7, 5),  # Pillow: quality 4 is milder than 5
    "rotate": ((5, 15), (15, 25), (25, 35), (35, 50), (50, 70)),
    "shear": ((0.1, 0.2), (0.2, 0.35), (0.35, 0.5), (0.5, 0.7), (0.7, 0.9)),
    "scale": ((0.85, 0.95), (0.75, 0.85), (0.65, 0.75), (0.55, 0.65), (0.45, 0.55)),
    "translate": ((1, 2), (2, 3), (3, 4), (4, 5), (5, 7)),
    "stripe": ((1, 2), (1, 3), (2, 3), (2, 4), (3, 4)),
    "zigzag": ((1, 1.0), (1, 1.5), (2, 1.2), (2, 1.5), (3, 1.5)),
    "dotted_line": ((1, 3), (2, 3), (3, 3), (4, 3), (6, 3)),
    "canny_edges": (0.6, 0.9, 1.2, 1.6, 2.0),
}
CORRUPTIONS: tuple[str, ...] = tuple(PARAMS)  # order fixes each type's seed index: append only
# What each type's parameters mean (recorded in a generated set's manifest).
MEANINGS: dict[str, str] = {
    "gaussian_noise": "noise std", "shot_noise": "photons per unit intensity",
    "impulse_noise": "fraction of salt-and-pepper pixels",
    "defocus_blur": "(disk radius px, anti-alias sigma px)",
    "glass_blur": "(sigma px, max offset px, iterations)",
    "motion_blur": "(length px, sigma px)", "zoom_blur": "(largest zoom, zoom step)",
    "snow": "(loc, scale, zoom, threshold, streak length px, streak sigma px, blend)",
    "frost": "(image weight, frost weight)", "fog": "(fog weight, fractal decay)",
    "brightness": "added intensity", "contrast": "contrast factor",
    "elastic_transform": "(displacement std px, smoothing sigma px, affine jitter px)",
    "pixelate": "resolution factor", "jpeg_compression": "JPEG quality (Pillow)",
    "rotate": "angle range in degrees, random sign", "shear": "x-shear range, random sign",
    "scale": "shrink factor range", "translate": "shift range per axis px, random signs",
    "stripe": "(inverted vertical stripes, width px)", "zigzag": "(zigzag lines, width px)",
    "dotted_line": "(dotted lines, dot spacing px)",
    "canny_edges": "Gaussian sigma px before edge detection",
}
GROUPS: dict[str, tuple[str, ...]] = {
    "noise": CORRUPTIONS[0:3], "blur": CORRUPTIONS[3:7], "weather": CORRUPTIONS[7:10],
    "digital": CORRUPTIONS[10:15], "shape": CORRUPTIONS[15:],
}

Tensor = torch.Tensor
Rng = np.random.Generator


def corruption_rng(seed: int, kind: str, severity: int, chunk: int = 0) -> Rng:
    """The generator for one (seed, corruption, severity, chunk of images); SeedSequence
    mixes the four so nearby values give unrelated streams.

    Examples:
        >>> a = corruption_rng(0, "snow", 3).random(); b = corruption_rng(0, "snow", 3).random()
        >>> a == b, a == corruption_rng(0, "snow", 4).random()
        (True, False)
    """
    index = CORRUPTIONS.index(kind)
    return np.random.default_rng(np.random.SeedSequence([int(seed), index, int(severity), int(chunk)]))


# ---------------------------------------------------------------- helpers (x: (N, 1, H, W) in [0, 1])
def _t(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _blur(x: Tensor, sigma: float) -> Tensor:
    if sigma <= 0:
        return x
    k = min(2 * math.ceil(3 * sigma) + 1, 2 * min(x.shape[-2:]) - 1)  # reflect pad < size
    return TF.gaussian_blur(x, [k, k], [sigma, sigma])


def _pixel_grid(h: int, w: int) -> Tensor:
    """(H, W, 2) pixel-centre coordinates (x, y)."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    return torch.stack([xs, ys], dim=-1)


def _sample(x: Tensor, src: Tensor, padding: str) -> Tensor:
    """Bilinear sample ``x`` at source pixel coordinates ``src`` (N, H, W, 2)."""
    h, w = x.shape[-2:]
    size = torch.tensor([w, h], dtype=torch.float32)
    grid = (2 * src + 1) / size - 1  # align_corners=False: pixel centres
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def _affine(x: Tensor, a: np.ndarray, t: np.ndarray | None = None, padding: str = "zeros") -> Tensor:
    """Output pixel p samples input ``c + A (p - c) + t`` (A: (N, 2, 2), t: (N, 2) px)."""
    h, w = x.shape[-2:]
    c = torch.tensor([(w - 1) / 2, (h - 1) / 2])
    src = torch.einsum("nij,hwj->nhwi", _t(a), _pixel_grid(h, w) - c) + c
    if t is not None:
        src = src + _t(t)[:, None, None, :]
    return _sample(x, src, padding)


def _eye(n: int, scale: np.ndarray | float = 1.0) -> np.ndarray:
    return np.eye(2)[None].repeat(n, 0) * np.reshape(scale, (-1, 1, 1))


def _signs(rng: Rng, n: int) -> np.ndarray:
    return rng.choice(np.array([-1.0, 1.0]), size=n)


def _shift_sum(x: Tensor, angle: np.ndarray, length: int, sigma: float) -> Tensor:
    """One-sided motion blur: Gaussian-weighted shifts 0..length px along ``angle`` (rad)."""
    steps = np.arange(length + 1, dtype=np.float64)
    weights = np.exp(-(steps**2) / (2 * sigma**2))
    weights /= weights.sum()
    direction = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    out = torch.zeros_like(x)
    for k, wk in zip(steps, weights):
        out += float(wk) * _affine(x, _eye(len(x)), -k * direction, padding="border")
    return out


def _plasma(rng: Rng, n: int, size: int, decay: float) -> np.ndarray:
    """ImageNet-C's diamond-square plasma fractal, (n, size, size) in [0, 1], size a power of 2."""
    m = np.zeros((n, size, size))
    step, wibble = size, 100.0

    def wibbled(a: np.ndarray) -> np.ndarray:
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        half = step // 2
        corners = m[:, 0:size:step, 0:size:step]
        sq = corners + np.roll(corners, -1, axis=1)
        sq = sq + np.roll(sq, -1, axis=2)
        m[:, half:size:step, half:size:step] = wibbled(sq)
        dr, ul = m[:, half:size:step, half:size:step], m[:, 0:size:step, 0:size:step]
        m[:, 0:size:step, half:size:step] = wibbled(dr + np.roll(dr, 1, 1) + ul + np.roll(ul, -1, 2))
        m[:, half:size:step, 0:size:step] = wibbled(dr + np.roll(dr, 1, 2) + ul + np.roll(ul, -1, 1))
        step, wibble = half, wibble / decay
    m -= m.min(axis=(1, 2), keepdims=True)
    return m / np.maximum(m.max(axis=(1, 2), keepdims=True), 1e-12)


def _draw(h: int, w: int, p0: np.ndarray, p1: np.ndarray, width: float | np.ndarray,
          value: np.ndarray | float = 1.0, spacing: float | None = None) -> Tensor:
    """Anti-aliased segments (or dots every ``spacing`` px along them), max-combined.

    ``p0``, ``p1``: (N, S, 2) end points (x, y) in px; returns (N, H, W) coverage in [0, 1].
    """
    grid = _pixel_grid(h, w)[None]  # (1, H, W, 2)
    a, b = _t(p0), _t(p1)
    vals = _t(np.broadcast_to(value, p0.shape[:2]))
    half = _t(np.broadcast_to(width, p0.shape[:2])) / 2
    out = torch.zeros(p0.shape[0], h, w)
    for s in range(p0.shape[1]):  # one segment at a time: memory stays (N, H, W)
        d = (b[:, s] - a[:, s])[:, None, None, :]
        length = d.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        u = d / length
        rel = grid - a[:, s][:, None, None, :]
        t = torch.minimum((rel * u).sum(-1, keepdim=True).clamp(min=0), length)
        if spacing is not None:  # the nearest dot centre along the segment
            t = torch.minimum(torch.round(t / spacing) * spacing, length)
        dist = (rel - t * u).norm(dim=-1)
        cover = (half[:, s, None, None] + 0.5 - dist).clamp(0, 1) * vals[:, s, None, None]
        out = torch.maximum(out, cover)
    return out


def _splat(size: int, p0: np.ndarray, p1: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Thin segments drawn by bilinear splats every 0.5 px, summed: (B, size, size).

    ``p0``, ``p1``: (B, S, 2) end points (x, y); ``value``: (B, S). Cheaper than
    :func:`_draw` for the hundreds of needles of a frost texture.
    """
    steps = int(np.ceil(np.linalg.norm(p1 - p0, axis=-1).max() * 2)) + 1
    f = np.linspace(0.0, 1.0, steps)[:, None]
    pts = p0[..., None, :] + f * (p1 - p0)[..., None, :]  # (B, S, steps, 2)
    spacing = np.linalg.norm(p1 - p0, axis=-1) / (steps - 1)  # each splat stands for this length
    per = np.broadcast_to((value * spacing)[..., None], pts.shape[:-1])
    b = np.broadcast_to(np.arange(len(p0))[:, None, None], pts.shape[:-1])
    out = np.zeros((len(p0), size, size))
    x0, y0 = np.floor(pts[..., 0]), np.floor(pts[..., 1])
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        wx = 1 - np.abs(pts[..., 0] - (x0 + dx))
        wy = 1 - np.abs(pts[..., 1] - (y0 + dy))
        xi, yi = (x0 + dx).astype(int) % size, (y0 + dy).astype(int) % size  # tiles wrap
        np.add.at(out, (b, yi, xi), per * wx * wy)
    return out


# ---------------------------------------------------------------- noise
def _gaussian_noise(x: Tensor, p: float, rng: Rng) -> Tensor:
    return x + _t(rng.normal(0.0, p, x.shape))


def _shot_noise(x: Tensor, p: float, rng: Rng) -> Tensor:
    return _t(rng.poisson(x.double().numpy() * p) / p)


def _impulse_noise(x: Tensor, p: float, rng: Rng) -> Tensor:
    hit = rng.random(x.shape) < p
    salt = rng.random(x.shape) < 0.5
    return torch.where(torch.from_numpy(hit), torch.from_numpy(salt).float(), x)


# ---------------------------------------------------------------- blur
def _defocus_blur(x: Tensor, p: tuple, rng: Rng) -> Tensor:
    radius, alias = p
    r = math.ceil(radius) + 2
    ax = torch.arange(-r, r + 1, dtype=torch.float32)
    disk = ((ax[:, None] ** 2 + ax[None, :] ** 2) <= radius**2).float()
    kernel = _blur(disk[None, None] / disk.sum(), alias)
    kernel = kernel / kernel.sum()
    return F.conv2d(F.pad(x, (r, r, r, r), mode="replicate"), kernel)


def _glass_blur(x: Tensor, p: tuple, rng: Rng) -> Tensor:
    sigma, delta, iterations = p
    y = _blur(x, sigma)
    n, _, h, w = y.shape
    grid = _pixel_grid(h, w)
    for _ in range(iterations):
        # Every pixel takes the value at a random sub-pixel offset (all at once, bilinear);
        # ImageNet-C's whole-pixel sequential swaps shatter a 28-px image even at severity 1.
        y = _sample(y, grid + _t(rng.uniform(-delta, delta, (n, h, w, 2))), "border")
    return _blur(y, sigma)


def _motion_blur(x: Tensor, p: tuple, rng: Rng) -> Tensor:
    length, sigma = p
    return _shift_sum(x, rng.uniform(-math.pi, math.pi, len(x)), length, sigma)


def _zoom_blur(x: Tensor, p: tuple, rng: Rng) -> Tensor:
    top, step = p
    zooms = np.arange(1.0, top, step)
    out = x.clone()
    for z in zooms:
        out += _affine(x, _eye(len(x), 1.0 / z), padding="border")
    return out / (len(zooms) + 1)


# ---------------------------------------------------------------- weather
def _snow(x: Tensor, p: tuple, rng: Rng) -> Tensor:
    loc, scale, zoom, threshold, length, sigma, blend = p
    n, _, h, w = x.shape
    layer = _affine(_t(rng.normal(loc, scale, (n, 1, h, w))), _eye(n, 1.0 / zoom), padding="border")
    layer = torch.where(layer < threshold, 0.0, layer).clamp(0, 1)
    # Streaks fall roughly downwards (ImageNet-C draws the angle from -135..-45 degrees).
    layer = _shift_sum(layer, np.deg2rad(rng.uniform(-135, -45, n)), length, sigma)
    x = blend * x + (1 - blend) * torch.maximum(x, x * 1.5 + 0.5)
    return x + layer + torch.rot90(layer, 2, dims=(-2, -1))


def _frost_textures(rng: Rng, count: int = 8, size: int = 64) -> Tensor:
    """Seeded frost-like textures (count, size, size): plasma haze plus branching needles."""
    haze = _plasma(rng, count, size, 1.8)
    trunks = 90
    start = rng.uniform(0, size, (count, trunks, 1, 2))
    angle = rng.uniform(0, 2 * math.pi, (count, trunks, 1))
    # Each trunk grows two side branches at ±60° from its midpoint (the ice-fern look).
    angles = np.concatenate([angle, angle + math.pi / 3, angle - math.pi / 3], axis=2)
    lengths = rng.uniform(3, 10, (count, trunks, 1)) * np.array([1.0, 0.5, 0.5])
    mid = start + 0.5 * lengths[..., :1, None] * np.stack([np.cos(angle), np.sin(angle)], -1)
    origin = np.concatenate([start, mid, mid], axis=2)
    end = origin + lengths[..., None] * np.stack([np.cos(angles), np.sin(angles)], -1)
    value = rng.uniform(0.4, 1.0, (count, trunks, 1)).repeat(3, axis=2)
    needles = _splat(size, origin.reshape(count, -1, 2), end.reshape(count, -1, 2),
                     value.reshape(count, -1))
    return _blur(_t(0.35 * haze + needles)[:, None], 0.6)[:, 0].clamp(0, 1)


def _frost(x: Tensor, p: tuple, rng: Rng) -> Tensor:
    image_weight, frost_weight = p
    n, _, h, w = x.shape
    tex = _frost_textures(rng)
    pick = torch.from_numpy(rng.integers(0, len(tex), n))
    oy, ox = (torch.from_numpy(rng.integers(0, tex.shape[-1] - s + 1, n)) for s in (h, w))
    rows = (oy[:, None] + torch.arange(h))[:, :, None]
    cols = (ox[:, None] + torch.arange(w))[:, None, :]
    crop = tex[pick[:, None, None], rows, cols]
    return image_weight * x + frost_weight * crop[:, None]


def _fog(x: Tensor, p: tuple, rng: Rng) -> Tensor:
    weight, decay = p
    n, _, h, w = x.shape
    size = 1 << (max(h, w) - 1).bit_length()  # the plasma needs a power of 2
    fog = _t(_plasma(rng, n, size, decay)[:, None, :h, :w])
    top = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x + weight * fog) * top / (top + weight)


# ---------------------------------------------------------------- digital
def _brightness(x: Tensor, p: float, rng: Rng) -> Tensor:
    return x + p  # the HSV value channel of a grayscale image is the image


def _contrast(x: Tensor, p: float, rng: Rng) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * p + mean


def _elastic(x: Tensor, p: tuple, rng: Rng) -> Tensor:
    alpha, sigma, jitter = p
    n, _, h, w = x.shape
    # Random affine (three anchor points jittered, as ImageNet-C), then a smooth field.
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    r = min(h, w) / 3
    anchors = np.array([[c[0] - r, c[1] - r], [c[0] + r, c[1] - r], [c[0] - r, c[1] + r]])
    moved = anchors + rng.uniform(-jitter, jitter, (n, 3, 2))
    homog = np.concatenate([anchors - c, np.ones((3, 1))], axis=1)  # (3, 3)
    sol = np.linalg.solve(homog[None].repeat(n, 0), moved - c)  # (n, 3, 2): [A^T; t + c]
    a, t = sol[:, :2].transpose(0, 2, 1), sol[:, 2]
    field = _blur(_t(rng.uniform(-1, 1, (n, 2, h, w))), sigma)
    field = field / field.flatten(1).std(dim=1).clamp_min(1e-6)[:, None, None, None] * alpha
    src = torch.einsum("nij,hwj->nhwi", _t(a), _pixel_grid(h, w) - _t(c)) + _t(t)[:, None, None]
    return _sample(x, src + _t(c) + field.permute(0, 2, 3, 1), "zeros")


def _pixelate(x: Tensor, p: float, rng: Rng) -> Tensor:
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(round(h * p), round(w * p)), mode="area")  # box filter
    return F.interpolate(small, size=(h, w), mode="nearest")


def _jpeg(x: Tensor, p: int, rng: Rng) -> Tensor:
    out = np.empty(x.shape[:1] + x.shape[2:], np.uint8)
    for i, img in enumerate(to_uint8(x)[:, 0]):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(p))
        out[i] = np.asarray(Image.open(buf))
    return _t(out[:, None] / 255.0)


# ---------------------------------------------------------------- shape (MNIST-C)
def _rotate(x: Tensor, p: tuple[float, float], rng: Rng) -> Tensor:
    n = len(x)
    angle = np.deg2rad(rng.uniform(*p, n)) * _signs(rng, n)
    cos, sin = np.cos(angle), np.sin(angle)
    return _affine(x, np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1))


def _shear(x: Tensor, p: tuple[float, float], rng: Rng) -> Tensor:
    n = len(x)
    a = _eye(n)
    a[:, 0, 1] = rng.uniform(*p, n) * _signs(rng, n)
    return _affine(x, a)


def _scale(x: Tensor, p: tuple[float, float], rng: Rng) -> Tensor:
    return _affine(x, _eye(len(x), 1.0 / rng.uniform(*p, len(x))))


def _translate(x: Tensor, p: tuple, rng: Rng) -> Tensor:
    n = len(x)
    shift = rng.integers(p[0], p[1] + 1, (n, 2)) * _signs(rng, 2 * n).reshape(n, 2)
    return _affine(x, _eye(n), -shift)  # whole pixels: bilinear sampling is exact


def _stripe(x: Tensor, p: tuple, rng: Rng) -> Tensor:
    count, width = p
    n, _, h, w = x.shape
    left = rng.integers(3, w - 3 - width + 1, (n, count))
    cols = np.arange(w)
    mask = ((cols >= left[..., None]) & (cols < left[..., None] + width)).any(axis=1)
    return torch.where(torch.from_numpy(mask)[:, None, None, :], 1 - x, x)


def _zigzag(x: Tensor, p: tuple, rng: Rng) -> Tensor:
    lines, width = p
    n, _, h, w = x.shape
    vertices = 7
    start = rng.uniform(4, w - 4, (n, lines, 1, 2))
    angle = rng.uniform(0, 2 * math.pi, (n, lines, 1))
    step = rng.uniform(3, 4.5, (n, lines, 1))
    amp = rng.uniform(1.5, 3, (n, lines, 1))
    k = np.arange(vertices) - (vertices - 1) / 2  # centred on the start point
    along = np.stack([np.cos(angle), np.sin(angle)], -1)
    across = np.stack([-np.sin(angle), np.cos(angle)], -1)
    pts = start + (step * k)[..., None] * along + (amp * np.where(k.astype(int) % 2, 1, -1))[..., None] * across
    p0, p1 = pts[:, :, :-1].reshape(n, -1, 2), pts[:, :, 1:].reshape(n, -1, 2)
    return torch.maximum(x, _draw(h, w, p0, p1, width)[:, None])


def _dotted_line(x: Tensor, p: tuple, rng: Rng) -> Tensor:
    lines, spacing = p
    n, _, h, w = x.shape
    # Long lines through the middle part, so that each one crosses much of the image.
    centre = rng.uniform(w / 4, 3 * w / 4, (n, lines, 2))
    angle = rng.uniform(0, math.pi, (n, lines, 1))
    half = rng.uniform(0.35 * w, 0.55 * w, (n, lines, 1)) * np.concatenate([np.cos(angle), np.sin(angle)], -1)
    p0, p1 = centre - half, centre + half
    return torch.maximum(x, _draw(h, w, p0, p1, 1.6, spacing=spacing)[:, None])


def _canny_edges(x: Tensor, p: float, rng: Rng) -> Tensor:
    g = F.pad(_blur(x, p), (1, 1, 1, 1), mode="replicate")
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    gx = F.conv2d(g, sobel[None, None])
    gy = F.conv2d(g, sobel.T.contiguous()[None, None])
    mag = torch.hypot(gx, gy)
    # Gradient direction in four bins; compare with the two neighbours along it.
    sector = torch.round(torch.atan2(gy, gx) / (math.pi / 4)).long() % 4
    padded = F.pad(mag, (1, 1, 1, 1))
    h, w = mag.shape[-2:]

    def nb(dy: int, dx: int) -> Tensor:
        return padded[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    keep = torch.zeros_like(mag, dtype=torch.bool)
    for s, (dy, dx) in enumerate([(0, 1), (1, 1), (1, 0), (1, -1)]):
        keep |= (sector == s) & (mag >= nb(dy, dx)) & (mag >= nb(-dy, -dx))
    keep &= mag > 0
    top = mag.amax(dim=(1, 2, 3), keepdim=True)
    weak = keep & (mag >= 0.1 * top)
    strong = keep & (mag >= 0.25 * top)
    while True:  # hysteresis: grow strong edges through connected weak ones
        grown = weak & (F.max_pool2d(strong.float(), 3, 1, 1) > 0)
        if torch.equal(grown, strong):
            return strong.float()
        strong = grown | strong


# The parameter's type depends on the corruption (a number or a tuple: see PARAMS).
_FUNCS: dict[str, Callable[[Tensor, Any, Rng], Tensor]] = {
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise, "impulse_noise": _impulse_noise,
    "defocus_blur": _defocus_blur, "glass_blur": _glass_blur, "motion_blur": _motion_blur,
    "zoom_blur": _zoom_blur, "snow": _snow, "frost": _frost, "fog": _fog,
    "brightness": _brightness, "contrast": _contrast, "elastic_transform": _elastic,
    "pixelate": _pixelate, "jpeg_compression": _jpeg, "rotate": _rotate, "shear": _shear, "scale": _scale,
    "translate": _translate, "stripe": _stripe, "zigzag": _zigzag, "dotted_line": _dotted_line,
    "canny_edges": _canny_edges,
}


def to_uint8(x: Tensor) -> np.ndarray:
    """[0, 1] floats to uint8, rounded to nearest (not truncated, unlike ImageNet-C)."""
    return np.clip(np.rint(x.numpy() * 255.0), 0, 255).astype(np.uint8)


def corrupt(images: np.ndarray, kind: str, severity: int, rng: Rng) -> np.ndarray:
    """Corrupt uint8 grayscale images (N, H, W) with ``kind`` at ``severity`` (1..5).

    All randomness comes from ``rng`` (see :func:`corruption_rng`); returns uint8 (N, H, W).

    Examples:
        >>> x = np.full((3, 28, 28), 100, np.uint8)
        >>> corrupt(x, "contrast", 1, corruption_rng(0, "contrast", 1)).tolist() == x.tolist()
        True
    """
    if kind not in _FUNCS:
        raise ValueError(f"unknown corruption {kind!r}; choose from {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    with torch.no_grad():
        out = _FUNCS[kind](x, PARAMS[kind][severity - 1], rng)
    return to_uint8(out)[:, 0]
