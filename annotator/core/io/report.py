"""Report files of an evaluation: per-frame metrics as CSV and a PNG plot of the J and F curves.

The PNG is drawn with Pillow and numpy only (no plotting library), so the command line can write
it on a machine without a display; the GUI writes the same files through these functions.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from annotator.core.io.atomic import atomic_write_bytes, atomic_write_text
from annotator.core.io.labels import DAVIS_PALETTE
from annotator.core.io.outputs import make_folder

__all__ = ["curves_png", "metrics_csv_text", "write_report"]

Curve = tuple[Sequence[float], Sequence[float]]


def metrics_csv_text(object_ids: Sequence[int], frames: Sequence[int], J: np.ndarray, F: np.ndarray) -> str:
    """CSV with one row per frame and object: ``frame,object,J,F,J&F``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["frame", "object", "J", "F", "J&F"])
    for col, frame in enumerate(frames):
        for row, obj in enumerate(object_ids):
            j, f = float(J[row, col]), float(F[row, col])
            writer.writerow([int(frame), int(obj), f"{j:.6f}", f"{f:.6f}", f"{(j + f) / 2:.6f}"])
    return out.getvalue()


def _colour(k: int) -> tuple[int, int, int]:
    r, g, b = DAVIS_PALETTE[k + 1]
    if max(r, g, b) < 100:  # lift the darkest palette entries off the white background
        r, g, b = min(255, r + 60), min(255, g + 60), min(255, b + 60)
    return int(r), int(g), int(b)


def curves_png(curves: Mapping[str, Curve], title: str = "", *, size_hw: tuple[int, int] = (360, 720),
               y_range: tuple[float, float] = (0.0, 1.0), dashed: Sequence[str] = ()) -> bytes:
    """PNG bytes of line plots ``{label: (x, y)}`` on shared axes, with a legend and a title.

    Curves named in ``dashed`` are drawn dashed (e.g. F beside the solid J of the same object).
    """
    h, w = size_hw
    image = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, right, top, bottom = 48, 16, 28, 34
    x0, x1, y0, y1 = left, w - right, top, h - bottom
    xs = [float(v) for c in curves.values() for v in c[0]]
    lo_x, hi_x = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if hi_x <= lo_x:
        hi_x = lo_x + 1
    lo_y, hi_y = y_range

    def px(x: float, y: float) -> tuple[float, float]:
        return (x0 + (x - lo_x) / (hi_x - lo_x) * (x1 - x0),
                y1 - (min(max(y, lo_y), hi_y) - lo_y) / (hi_y - lo_y) * (y1 - y0))

    for k in range(6):  # horizontal grid every 0.2
        y = lo_y + k * (hi_y - lo_y) / 5
        _, py = px(lo_x, y)
        draw.line([(x0, py), (x1, py)], fill=(225, 225, 225))
        draw.text((4, py - 6), f"{y:.1f}", fill=(60, 60, 60), font=font)
    step = max(1, int(10 ** math.floor(math.log10(max(hi_x - lo_x, 1)))))
    if (hi_x - lo_x) / step < 4:
        step = max(1, step // 2)
    for x in range(int(math.ceil(lo_x / step) * step), int(hi_x) + 1, step):
        px_x, _ = px(x, lo_y)
        draw.line([(px_x, y1), (px_x, y1 + 4)], fill=(60, 60, 60))
        draw.text((px_x - 6, y1 + 6), str(x), fill=(60, 60, 60), font=font)
    draw.rectangle([x0, y0, x1, y1], outline=(60, 60, 60))
    draw.text((x1 - 30, h - 14), "frame", fill=(60, 60, 60), font=font)
    if title:
        draw.text((x0, 8), title, fill=(0, 0, 0), font=font)
    legend_x = x0 + 8
    for k, (label, (cx, cy)) in enumerate(curves.items()):
        colour = _colour(k // 2 if dashed else k)
        points = [px(float(a), float(b)) for a, b in zip(cx, cy) if b == b]  # b == b: skip NaN
        if label in dashed:
            for a, b in zip(points[:-1], points[1:]):
                mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
                draw.line([a, mid], fill=colour, width=2)
        elif len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for p in points if len(points) < 60 else ():
            if label in dashed:  # hollow squares for the dashed curves, dots for the solid ones
                draw.rectangle([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], outline=colour)
            else:
                draw.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=colour)
        ly = y1 - 14 - 14 * k
        if label in dashed:
            draw.line([(legend_x, ly + 6), (legend_x + 6, ly + 6)], fill=colour, width=2)
            draw.line([(legend_x + 12, ly + 6), (legend_x + 18, ly + 6)], fill=colour, width=2)
        else:
            draw.line([(legend_x, ly + 6), (legend_x + 18, ly + 6)], fill=colour, width=2)
        draw.text((legend_x + 22, ly), label, fill=(0, 0, 0), font=font)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def write_report(folder: str | Path, name: str, object_ids: Sequence[int], frames: Sequence[int],
                 J: np.ndarray, F: np.ndarray) -> tuple[Path, Path]:
    """Write ``<folder>/<name>.csv`` (per-frame metrics) and ``<folder>/<name>.png`` (curves); returns both paths."""
    folder = Path(folder)
    make_folder(folder)
    csv_path, png_path = folder / f"{name}.csv", folder / f"{name}.png"
    atomic_write_text(csv_path, metrics_csv_text(object_ids, frames, J, F))
    curves: dict[str, Curve] = {}
    dashed = []
    for row, obj in enumerate(object_ids):
        curves[f"J object {obj}"] = (frames, J[row])
        curves[f"F object {obj}"] = (frames, F[row])
        dashed.append(f"F object {obj}")
    jf = (float(np.mean(J.mean(axis=1))) + float(np.mean(F.mean(axis=1)))) / 2 if J.size else float("nan")
    atomic_write_bytes(png_path, curves_png(curves, f"{name}: J&F {jf:.3f}", dashed=dashed))
    return csv_path, png_path
