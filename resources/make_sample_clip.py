"""Generate the bundled sample clip: textured shapes moving over a textured background.

    python resources/make_sample_clip.py          # writes annotator/resources/sample/

Writes ``sample.mp4`` (40 frames, 640x360, 12 fps, OpenCV 'mp4v') and ``masks/00000.png`` (the
DAVIS-palette label map of frame 0: 1 = the disc, 2 = the box), so that a new user can press
"propagate" right away. Everything is drawn procedurally from a fixed seed: the clip contains no
third-party material and is licensed like the project (Apache-2.0).
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


def make_clip(out_dir: Path, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    bg = _background(rng)
    disc_tex = _texture(rng, (H, W), (214, 92, 48), 6)
    box_tex = _texture(rng, (H, W), (62, 84, 200), 10)
    out_dir.mkdir(parents=True, exist_ok=True)
    video_path = out_dir / "sample.mp4"
    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    if not writer.isOpened():
        raise SystemExit(f"cannot write {video_path}")
    first_labels = None
    for t in range(FRAMES):
        disc, box = _shapes(t)
        frame = bg.copy()
        # textures move with their shapes: shift by the motion so the pattern is carried along
        frame[disc] = np.roll(disc_tex, (int(55 * np.sin(t / 7.0)), int(9.0 * t)), axis=(0, 1))[disc]
        frame[box] = np.roll(box_tex, (int(2.5 * t), int(-6.5 * t)), axis=(0, 1))[box]  # box in front
        if t == 0:
            first_labels = np.zeros((H, W), np.uint8)
            first_labels[disc] = 1
            first_labels[box] = 2
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    from annotator.core.labels import write_mask  # the project's own DAVIS PNG writer

    (out_dir / "masks").mkdir(exist_ok=True)
    write_mask(out_dir / "masks" / "00000.png", first_labels)


def main() -> None:
    default = Path(__file__).resolve().parent.parent / "annotator" / "resources" / "sample"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=default, help="output folder (default %(default)s)")
    make_clip(parser.parse_args().out)


if __name__ == "__main__":
    main()
