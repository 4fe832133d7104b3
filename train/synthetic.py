"""The built-in synthetic few-shot dataset of the embedded default.

Each class is a procedural "object style": an outline (ellipse or a k-lobed blob of a given
depth and aspect), a texture inside it (stripes, checker, rings or dots at a class frequency and
orientation) and a two-colour palette. Every image draws its own pose (rotation within +-35
degrees, scale, position), colour jitter, a random two-colour background gradient, clutter
ellipses of random colours behind the object, brightness jitter and Gaussian noise. Classes are
split into disjoint base / val / novel sets; everything is a pure function of the seed and the
image size, rendered with vectorised numpy (no per-pixel Python loops), at any resolution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

GENERATOR_VERSION = 1
TEXTURES = ("stripes", "checker", "rings", "dots")
LOBES = (0, 2, 3, 4, 5, 6)
CHUNK = 512
MAX_TILT = np.deg2rad(35.0)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size of the synthetic dataset; classes are drawn in this order: base, val, novel."""

    base_classes: int = 64
    val_classes: int = 16
    novel_classes: int = 20
    base_images: int = 100
    base_test_images: int = 20
    val_images: int = 60
    novel_images: int = 60
    seed: int = 0

    @property
    def total_classes(self) -> int:
        return self.base_classes + self.val_classes + self.novel_classes

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ClassStyles:
    """Per-class drawing parameters, one row per class (arrays of length K)."""

    lobes: np.ndarray
    depth: np.ndarray
    aspect: np.ndarray
    texture: np.ndarray
    frequency: np.ndarray
    orientation: np.ndarray
    hues: np.ndarray  # (K, 2)
    saturation: np.ndarray  # (K, 2)
    value: np.ndarray  # (K, 2)

    def take(self, idx: np.ndarray) -> "ClassStyles":
        return ClassStyles(**{k: v[idx] for k, v in asdict(self).items()})


def class_styles(count: int, seed: int) -> ClassStyles:
    """Draw `count` distinct-looking class styles from `seed`."""
    rng = np.random.default_rng([seed, 1])
    lobes = rng.choice(LOBES, count)
    return ClassStyles(
        lobes=lobes,
        depth=np.where(lobes == 0, 0.0, rng.uniform(0.15, 0.4, count)),
        aspect=rng.uniform(0.55, 1.0, count),
        texture=rng.integers(0, len(TEXTURES), count),
        frequency=rng.uniform(1.2, 3.5, count),
        orientation=rng.uniform(0, np.pi, count),
        hues=rng.uniform(0, 1, (count, 2)),
        saturation=rng.uniform(0.45, 1.0, (count, 2)),
        value=rng.uniform(0.45, 1.0, (count, 2)),
    )


def class_names(config: SyntheticConfig) -> list[str]:
    """Readable names: `<texture>-<outline>-<index>`, e.g. `rings-4lobe-017`."""
    styles = class_styles(config.total_classes, config.seed)
    return [
        f"{TEXTURES[t]}-{'ellipse' if k == 0 else f'{k}lobe'}-{i:03d}"
        for i, (t, k) in enumerate(zip(styles.texture, styles.lobes))
    ]


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB; inputs of equal shape in [0, 1], output shape + (3,)."""
    h6 = (h % 1.0) * 6.0
    c = v * s
    x = c * (1 - np.abs(h6 % 2 - 1))
    zero = np.zeros_like(c)
    sector = np.floor(h6).astype(int) % 6
    table = np.stack(
        [
            np.stack([c, x, zero], -1),
            np.stack([x, c, zero], -1),
            np.stack([zero, c, x], -1),
            np.stack([zero, x, c], -1),
            np.stack([x, zero, c], -1),
            np.stack([c, zero, x], -1),
        ],
        0,
    )
    rgb = np.take_along_axis(table, sector[None, ..., None].repeat(3, -1), 0)[0]
    return rgb + (v - c)[..., None]


def _texture(kind: np.ndarray, u: np.ndarray, v: np.ndarray, freq: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Texture in [0, 1] for each image (kind, freq, angle are (N, 1, 1))."""
    tau = 2 * np.pi
    along = u * np.cos(angle) + v * np.sin(angle)
    across = -u * np.sin(angle) + v * np.cos(angle)
    stripes = 0.5 + 0.5 * np.tanh(3 * np.sin(tau * freq * along))
    checker = 0.5 + 0.5 * np.tanh(4 * np.sin(tau * freq * along) * np.sin(tau * freq * across))
    rings = 0.5 + 0.5 * np.tanh(3 * np.sin(tau * freq * np.sqrt(u * u + v * v)))
    dots = (np.cos(tau * freq * along) * np.cos(tau * freq * across) > 0.35).astype(np.float32)
    return np.choose(kind, [stripes, checker, rings, dots])


def _soft_inside(distance: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    """Anti-aliased inside mask from a signed distance (positive inside), in pixels."""
    return np.clip(distance / pixel + 0.5, 0.0, 1.0)


def render(styles: ClassStyles, labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Render one image per entry of `labels` (indices into `styles`): uint8 (N, 3, size, size)."""
    out = np.empty((len(labels), 3, size, size), np.uint8)
    for start in range(0, len(labels), CHUNK):
        out[start : start + CHUNK] = _render_chunk(styles.take(labels[start : start + CHUNK]), size, rng)
    return out


def _render_chunk(s: ClassStyles, size: int, rng: np.random.Generator) -> np.ndarray:
    n = len(s.lobes)
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(axis, axis, indexing="ij")
    col = lambda a: np.asarray(a, np.float32).reshape(n, 1, 1)  # noqa: E731 - reshape helper
    pixel = 2.0 / size

    # Background: a gradient between two random colours along a random direction.
    bg_rgb = hsv_to_rgb(rng.uniform(0, 1, (n, 2)), rng.uniform(0, 0.7, (n, 2)), rng.uniform(0.2, 0.95, (n, 2)))
    g_angle = col(rng.uniform(0, 2 * np.pi, n))
    t = 0.5 + 0.5 * (x * np.cos(g_angle) + y * np.sin(g_angle)) / np.sqrt(2)
    image = bg_rgb[:, 0, :, None, None] * (1 - t[:, None]) + bg_rgb[:, 1, :, None, None] * t[:, None]

    # Clutter: a few small ellipses of random colours behind the object.
    for _ in range(3):
        cx, cy = col(rng.uniform(-1, 1, n)), col(rng.uniform(-1, 1, n))
        rx, ry = col(rng.uniform(0.08, 0.3, n)), col(rng.uniform(0.08, 0.3, n))
        inside = _soft_inside((1 - np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)) * rx, pixel)
        inside *= col(rng.uniform(0, 1, n) < 0.7)
        rgb = hsv_to_rgb(rng.uniform(0, 1, n), rng.uniform(0.2, 1, n), rng.uniform(0.2, 1, n))
        image = image * (1 - inside[:, None]) + rgb[:, :, None, None] * inside[:, None]

    # The object in its own frame: tilt, scale, shift.
    tilt = col(rng.uniform(-MAX_TILT, MAX_TILT, n))
    scale = col(rng.uniform(0.5, 0.85, n))
    tx, ty = col(rng.uniform(-0.25, 0.25, n)), col(rng.uniform(-0.25, 0.25, n))
    u = (np.cos(tilt) * (x - tx) + np.sin(tilt) * (y - ty)) / scale
    v = (-np.sin(tilt) * (x - tx) + np.cos(tilt) * (y - ty)) / (scale * col(s.aspect))
    r, theta = np.sqrt(u * u + v * v), np.arctan2(v, u)
    outline = (1 + col(s.depth) * np.cos(col(s.lobes) * theta)) / (1 + col(s.depth))
    inside = _soft_inside((outline - r) * scale * col(s.aspect), pixel)

    tex = _texture(s.texture.reshape(n, 1, 1), u, v, col(s.frequency), col(s.orientation))
    jitter = rng.normal(0, 0.04, (n, 2))
    sat = np.clip(s.saturation * rng.uniform(0.8, 1.2, (n, 2)), 0, 1)
    val = np.clip(s.value * rng.uniform(0.8, 1.2, (n, 2)), 0, 1)
    fg = hsv_to_rgb(s.hues + jitter, sat, val)  # (n, 2, 3)
    obj = fg[:, 0, :, None, None] * tex[:, None] + fg[:, 1, :, None, None] * (1 - tex[:, None])
    image = image * (1 - inside[:, None]) + obj * inside[:, None]

    image = image * col(rng.uniform(0.75, 1.25, n))[:, None]
    image = image + rng.normal(0, 1, image.shape) * col(rng.uniform(0.01, 0.07, n))[:, None]
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


def render_split(config: SyntheticConfig, split: str, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images (N, 3, size, size) uint8, labels 0..K-1 within the split, and class names.

    `split` is one of base, base_test, val, novel; base and base_test share classes but use
    different random streams, so their images differ.
    """
    first, count, per_class = {
        "base": (0, config.base_classes, config.base_images),
        "base_test": (0, config.base_classes, config.base_test_images),
        "val": (config.base_classes, config.val_classes, config.val_images),
        "novel": (config.base_classes + config.val_classes, config.novel_classes, config.novel_images),
    }[split]
    styles = class_styles(config.total_classes, config.seed).take(np.arange(first, first + count))
    labels = np.repeat(np.arange(count), per_class)
    stream = ("base", "base_test", "val", "novel").index(split)
    images = render(styles, labels, size, np.random.default_rng([config.seed, 2, stream, size]))
    return images, labels.astype(np.int64), class_names(config)[first : first + count]
