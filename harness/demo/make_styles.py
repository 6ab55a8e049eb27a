"""Generate the demo style images shipped in ``harness/demo/style/`` (the project's own work, CC0).

    python -m harness.demo.make_styles

Deterministic (fixed seeds); the committed PNGs are this script's output. Four painterly textures at 384×384:
a stained-glass mosaic, ukiyo-e-like waves, brush strokes and pointillist dots.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 384
OUT = Path(__file__).with_name("style")


def mosaic(rng: np.random.Generator) -> Image.Image:
    """Voronoi tiles in a warm palette with dark leading between them."""
    palette = np.array([[178, 34, 34], [218, 165, 32], [25, 25, 112], [34, 139, 34], [255, 140, 0], [72, 61, 139],
                        [205, 92, 92], [240, 230, 140]], dtype=np.float32)
    seeds = rng.uniform(0, SIZE, size=(90, 2))
    colours = palette[rng.integers(0, len(palette), len(seeds))] * rng.uniform(0.8, 1.1, (len(seeds), 1))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    order = np.sort(d, axis=-1)
    image = colours[np.argmin(d, axis=-1)]
    border = (np.sqrt(order[..., 1]) - np.sqrt(order[..., 0])) < 2.5
    image[border] = (20, 20, 20)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def waves(rng: np.random.Generator) -> Image.Image:
    """Layered sinusoidal bands in indigo and foam white."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    field = np.zeros_like(xx)
    for k in range(1, 6):
        phase, amp = rng.uniform(0, 2 * np.pi), rng.uniform(0.02, 0.08) / k
        field += np.sin(2 * np.pi * (k * 1.5 * xx + phase)) * amp
    bands = np.mod((yy + field) * 14, 1.0)
    deep, mid, foam = np.array([16, 42, 92]), np.array([52, 110, 170]), np.array([236, 240, 230])
    t = bands[..., None]
    image = np.where(t < 0.55, deep + (mid - deep) * (t / 0.55), mid + (foam - mid) * ((t - 0.55) / 0.45) ** 2)
    return Image.fromarray(image.astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.8))


def strokes(rng: np.random.Generator) -> Image.Image:
    """Thick directional brush strokes over an ochre ground."""
    image = Image.new("RGB", (SIZE, SIZE), (196, 160, 98))
    draw = ImageDraw.Draw(image)
    palette = [(122, 63, 30), (230, 200, 120), (70, 90, 60), (160, 40, 30), (40, 60, 110), (250, 236, 200)]
    for _ in range(700):
        x, y = rng.uniform(-20, SIZE + 20, 2)
        angle = 0.6 * np.sin(y / 40.0) + rng.normal(0, 0.25)
        length = rng.uniform(15, 45)
        dx, dy = np.cos(angle) * length, np.sin(angle) * length
        colour = palette[rng.integers(len(palette))]
        draw.line([(x, y), (x + dx, y + dy)], fill=colour, width=int(rng.integers(3, 9)))
    return image.filter(ImageFilter.SMOOTH)


def dots(rng: np.random.Generator) -> Image.Image:
    """Pointillist dots whose colour follows a soft landscape gradient."""
    image = Image.new("RGB", (SIZE, SIZE), (245, 240, 225))
    draw = ImageDraw.Draw(image)
    for _ in range(6000):
        x, y = rng.uniform(0, SIZE, 2)
        sky = y < SIZE * 0.45
        base = np.array([90, 150, 220]) if sky else np.array([70, 140, 60])
        base = base + rng.normal(0, 35, 3) + (np.array([80, 40, -40]) if rng.random() < 0.15 else 0)
        r = rng.uniform(2, 4.5)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in np.clip(base, 0, 255)))
    return image


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for seed, make in enumerate((mosaic, waves, strokes, dots)):
        make(np.random.default_rng(1000 + seed)).save(OUT / f"{make.__name__}.png", optimize=True)
        print(OUT / f"{make.__name__}.png")


if __name__ == "__main__":
    main()
