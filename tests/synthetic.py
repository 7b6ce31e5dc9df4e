"""Small synthetic clips with known ground truth, shared by the unit and GUI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image



def texture(h: int, w: int, seed: int, scale: int = 6) -> np.ndarray:
    """A coloured random texture (h, w, 3) uint8 with blobs about ``scale`` pixels wide."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(h // scale + 2, w // scale + 2, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(small).resize((w + 2 * scale, h + 2 * scale), Image.BICUBIC))
    return np.ascontiguousarray(big[scale: scale + h, scale: scale + w])


def ground_texture(h: int, w: int, seed: int) -> np.ndarray:
    """A homogeneous natural-looking background (grass/gravel-like): fine noise in a few earthy colours.

    Homogeneous on purpose: background uncovered behind a moving object looks like the rest of
    the background, as in real scenes, so it can be recognised as background.
    """
    grain = texture(h, w, seed, scale=3).astype(np.float32).mean(axis=2, keepdims=True) / 255.0
    dark, light = np.array([40, 70, 30], np.float32), np.array([150, 170, 90], np.float32)
    return (dark + grain * (light - dark)).astype(np.uint8)


def object_texture(size: int, seed: int) -> np.ndarray:
    """A patch unlike the background: blobs of vivid random colours, distinctive in every direction
    (stripes would be ambiguous along their direction, the aperture problem)."""
    blobs = texture(size, size, seed, scale=5).astype(np.float32) / 255.0
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2, size=3) * 200 + 30
    return np.clip(base * 0.4 + blobs * 255 * 0.6, 0, 255).astype(np.uint8)


def moving_objects_clip(n_frames: int = 8, hw: tuple[int, int] = (128, 192), n_objects: int = 1,
                        step: int = 6, size: int = 44, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Textured squares moving right (object j also moves down) over a textured background.

    Returns the RGB frames and their true label maps (object ids 1..n_objects).
    """
    h, w = hw
    background = ground_texture(h, w, seed)
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


def tracking_clip(n_frames: int = 8, hw: tuple[int, int] = (192, 288), size: int = 56,
                  motions: tuple[tuple[int, int], ...] = ((0, 6), (-6, 0)), seed: int = 0
                  ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Objects moving (dy, dx) pixels per frame in different directions, kept away from the frame border.

    Object j starts at its own place in a grid across the frame; features near the border differ
    from those inside (padding), so uncovered background there is harder for any backbone.
    """
    h, w = hw
    background = ground_texture(h, w, seed)
    frames, labels = [], []
    starts = [(size // 2 + (j % 2) * (h // 2 - size // 4), size // 2 + j * (w // len(motions)))
              for j in range(len(motions))]
    patches = [object_texture(size, seed + 100 + j) for j in range(len(motions))]
    for t in range(n_frames):
        frame, lab = background.copy(), np.zeros((h, w), np.uint8)
        for j, ((y0, x0), (dy, dx), patch) in enumerate(zip(starts, motions, patches)):
            y, x = y0 + dy * t, x0 + dx * t
            if not (0 <= y and y + size <= h and 0 <= x and x + size <= w):
                raise ValueError(f"object {j + 1} leaves the {w}x{h} frame at frame {t}")
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


def make_davis_root(root: Path, names: tuple[str, ...] = ("alpha", "beta"), n_frames: int = 5,
                    seed: int = 0) -> dict[str, list[np.ndarray]]:
    """A tiny DAVIS root: JPEGImages/480p/<name> and a mask of every frame in Annotations/480p/<name>
    (a square moving over texture, 96x64, seed ``seed + k`` for the k-th name); the true label maps by name."""
    from annotator.core.io.labels import write_mask_folder

    truths = {}
    for k, name in enumerate(names):
        frames, truth = moving_objects_clip(n_frames=n_frames, hw=(64, 96), size=24, step=4, seed=seed + k)
        write_frames(root / "JPEGImages" / "480p" / name, frames)
        write_mask_folder(root / "Annotations" / "480p" / name, dict(enumerate(truth)))
        truths[name] = truth
    return truths


def clip_on_disk(folder: Path, n_frames: int = 4) -> tuple[Path, Path, list[np.ndarray]]:
    """A square moving over texture (96x64) as a frame folder ``folder/frames``, its first mask as
    ``folder/first.png``, and the true label maps."""
    from annotator.core.io.labels import write_mask

    frames, truth = moving_objects_clip(n_frames=n_frames, hw=(64, 96), size=24, step=4)
    mask = folder / "first.png"
    write_mask(mask, truth[0])
    return write_frames(folder / "frames", frames), mask, truth


def unit_features(n: int, channels: int, h: int, w: int, seed: int) -> torch.Tensor:
    """(n, channels, h, w) random feature maps, L2-normalised over the channels (as a backbone's)."""
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, channels, h, w, generator=gen), dim=1)
