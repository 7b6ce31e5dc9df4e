"""Generate the bundled sample clip: textured shapes moving over a textured background.

    python resources/make_sample_clip.py          # writes annotator/resources/sample/

Writes ``sample.mp4`` (40 frames, 640x360, 12 fps, OpenCV 'mp4v'), ``masks/00000.png`` (the
DAVIS-palette label map of frame 0: 1 = the disc, 2 = the box), so that a new user can press
"propagate" right away, and ``groundtruth/NNNNN.png``, the true label map of every frame (the
shapes as drawn, before video compression), which ``annotator demo`` scores against. Everything is
drawn procedurally from a fixed seed, so a rerun rewrites the same bytes (with the same OpenCV): the
clip contains no third-party material and is licensed like the project (Apache-2.0).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

H, W, FRAMES, FPS = 360, 640, 40, 12.0


def _texture(rng: np.random.Generator, hw: tuple[int, int], base: tuple[int, int, int], scale: int) -> np.ndarray:
    """Smooth coloured noise around ``base`` (RGB uint8 (h, w, 3))."""
    h, w = hw
    # mostly brightness variation, a little colour: looks like a surface, not confetti
    noise = rng.normal(0, 1, (h // scale + 2, w // scale + 2, 4)).astype(np.float32)
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    luminance, chroma = noise[..., :1], noise[..., 1:]
    fine = rng.normal(0, 1, (h, w, 1)).astype(np.float32)
    tex = np.asarray(base, np.float32) + 34 * luminance + 8 * chroma + 6 * fine
    return np.clip(tex, 0, 255).astype(np.uint8)


def _background(rng: np.random.Generator) -> np.ndarray:
    bg = _texture(rng, (H, W), (96, 122, 88), 24)
    yy, xx = np.mgrid[:H, :W]
    stripes = (np.sin(xx / 23.0 + yy / 41.0) * 18).astype(np.float32)
    return np.clip(bg.astype(np.float32) + stripes[..., None], 0, 255).astype(np.uint8)


def _shapes(t: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the disc and the box at frame t (they move, the box turns)."""
    disc = np.zeros((H, W), np.uint8)
    cx = int(130 + 9.0 * t)
    cy = int(190 + 55 * np.sin(t / 7.0))
    cv2.ellipse(disc, (cx, cy), (62, 50), t * 2.0, 0, 360, 1, -1)
    box = np.zeros((H, W), np.uint8)
    centre = (float(520 - 6.5 * t), float(120 + 2.5 * t))
    corners = cv2.boxPoints((centre, (120.0, 80.0), 12.0 + 3.0 * t)).astype(np.int32)
    cv2.fillPoly(box, [corners], 1)
    return disc.astype(bool), box.astype(bool)


def _labels(disc: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The label map of a frame: 1 = the disc, 2 = the box, drawn in front of the disc."""
    labels = np.zeros((H, W), np.uint8)
    labels[disc] = 1
    labels[box] = 2
    return labels


def make_clip(out_dir: Path, seed: int = 7) -> None:
    """Write the clip, its first-frame mask and its ground truth under ``out_dir``."""
    from annotator.core.io.labels import write_mask_folder  # the project's own DAVIS PNG writer

    rng = np.random.default_rng(seed)
    bg = _background(rng)
    disc_tex = _texture(rng, (H, W), (214, 92, 48), 6)
    box_tex = _texture(rng, (H, W), (62, 84, 200), 10)
    out_dir.mkdir(parents=True, exist_ok=True)
    video_path = out_dir / "sample.mp4"
    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    if not writer.isOpened():
        raise SystemExit(f"cannot write {video_path}")
    truth: dict[int, np.ndarray] = {}
    for t in range(FRAMES):
        disc, box = _shapes(t)
        frame = bg.copy()
        # textures move with their shapes: shift by the motion so the pattern is carried along
        frame[disc] = np.roll(disc_tex, (int(55 * np.sin(t / 7.0)), int(9.0 * t)), axis=(0, 1))[disc]
        frame[box] = np.roll(box_tex, (int(2.5 * t), int(-6.5 * t)), axis=(0, 1))[box]  # box in front
        truth[t] = _labels(disc, box)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    write_mask_folder(out_dir / "masks", {0: truth[0]})
    write_mask_folder(out_dir / "groundtruth", truth)


def main() -> None:
    from annotator.core.runs.sample import SAMPLE_DIR

    default = SAMPLE_DIR
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default, help="output folder (default %(default)s)")
    make_clip(parser.parse_args().out)


if __name__ == "__main__":
    main()
