"""Small synthetic clips with known ground truth, shared by the unit and GUI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def texture(h: int, w: int, seed: int, scale: int = 6) -> np.ndarray:
    """A coloured random texture (h, w, 3) uint8 with blobs about ``scale`` pixels wide."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(h // scale + 2, w // scale + 2, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(small).resize((w + 2 * scale, h + 2 * scale), Image.BICUBIC))
    return np.ascontiguousarray(big[scale: scale + h, scale: scale + w])


def object_texture(size: int, seed: int) -> np.ndarray:
    """A patterned patch: stripes of two random colours with fine noise, unlike the blobby background."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, size=(2, 3))
    yy, xx = np.mgrid[0:size, 0:size]
    period = int(rng.integers(6, 12))
    stripes = ((xx + yy * (seed % 3 - 1)) // (period // 2)) % 2
    patch = colours[stripes].astype(np.int16) + rng.integers(-20, 21, size=(size, size, 3))
    return np.clip(patch, 0, 255).astype(np.uint8)


def moving_objects_clip(n_frames: int = 8, hw: tuple[int, int] = (128, 192), n_objects: int = 1,
                        step: int = 6, size: int = 44, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Textured squares moving right (object j also moves down) over a textured background.

    Returns the RGB frames and their true label maps (object ids 1..n_objects).
    """
    h, w = hw
    background = texture(h, w, seed, scale=16)
    patches = [object_texture(size, seed + 100 + j) for j in range(n_objects)]
    frames, labels = [], []
    for t in range(n_frames):
        frame = background.copy()
        lab = np.zeros((h, w), np.uint8)
        for j, patch in enumerate(patches):
            y = 10 + j * (size + 8) + (j * t * step) // 3
            x = 8 + t * step
            frame[y: y + size, x: x + size] = patch
            lab[y: y + size, x: x + size] = j + 1
        frames.append(frame)
        labels.append(lab)
    return frames, labels


def write_frames(folder: Path, frames: list[np.ndarray]) -> Path:
    """Save frames as lossless PNGs 00000.png, 00001.png, ... and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:05d}.png")
    return folder
