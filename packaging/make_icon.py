"""Draw the app icon, annotator/resources/icon.png (256x256 RGBA), from code: no third-party artwork.

A dark rounded tile holding a strip of three video frames; the same two objects (a disc and a box,
in the first two DAVIS palette colours, like the bundled sample clip) are painted in each frame, the
masks carried from frame to frame. Regenerate with (the same bytes again with the same Pillow):

    python packaging/make_icon.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 256
OUT = Path(__file__).resolve().parent.parent / "annotator" / "resources" / "icon.png"


def draw(size: int = SIZE) -> Image.Image:
    s = size / 256
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((8 * s, 8 * s, 248 * s, 248 * s), radius=44 * s, fill=(38, 40, 46, 255))
    # three frames, back to front, each a little lower and to the right
    for i, (x, y) in enumerate(((30, 40), (62, 72), (94, 104))):
        box = (x * s, y * s, (x + 132) * s, (y + 100) * s)
        d.rounded_rectangle(box, radius=10 * s, fill=(70 + 18 * i, 74 + 18 * i, 84 + 18 * i, 255),
                            outline=(220, 220, 220, 255), width=max(1, round(4 * s)))
        cx, cy = x + 36 + 4 * i, y + 52
        d.ellipse(((cx - 20) * s, (cy - 20) * s, (cx + 20) * s, (cy + 20) * s), fill=(200, 40, 40, 255))
        bx, by = x + 72 + 2 * i, y + 32
        d.rectangle((bx * s, by * s, (bx + 34) * s, (by + 38) * s), fill=(40, 170, 60, 255))
    # a brush stroke across the front frame: the painted reference
    d.line(((112 * s, 226 * s), (232 * s, 226 * s)), fill=(52, 120, 200, 255), width=max(1, round(10 * s)))
    return img


def main() -> None:
    draw().save(OUT, optimize=True)
    print(OUT)


if __name__ == "__main__":
    main()
