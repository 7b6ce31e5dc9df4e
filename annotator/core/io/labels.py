"""Label maps and their files: the DAVIS palette, reading and writing mask PNGs.

A label map is an HxW ``uint8`` array: 0 = background, 1..254 = object id, 255 = void.
On disk it is a single-channel indexed ("P") PNG carrying the full 768-byte DAVIS
(PASCAL-VOC) palette, written exactly as the DAVIS annotations are: reading an official
DAVIS PNG and writing it back gives the same bytes.

``read_mask`` also accepts what people actually have lying around (see its docstring)
and refuses, with a one-line ``MaskError``, anything it would have to guess about.
"""

from __future__ import annotations

import io
import os
import re
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from annotator.core.io.atomic import atomic_write_bytes
from annotator.core.errors import MaskError, SaveError, read_bytes, size_text
from annotator.core.io.outputs import make_folder
from annotator.core.video import IMAGE_EXTENSIONS

__all__ = [
    "DAVIS_PALETTE",
    "MAX_OBJECT_ID",
    "VOID",
    "encode_mask_png",
    "labels_from_rgb",
    "labels_to_rgb",
    "object_ids",
    "read_mask",
    "read_mask_folder",
    "resize_labels",
    "write_mask",
    "write_mask_folder",
]

VOID = 255
MAX_OBJECT_ID = 254

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FRAME_NAME = re.compile(r"^(\d+)\.png$", re.IGNORECASE)
# The only values of a binary DAVIS-2016 mask (255 = the object).
_BINARY_VALUES = frozenset((0, 255))


def _voc_palette() -> np.ndarray:
    """The PASCAL-VOC colour map: the bits of the index, interleaved r, g, b from the top bit."""
    index = np.arange(256)
    palette = np.zeros((256, 3), dtype=np.uint8)
    for bit in range(8):
        for channel in range(3):
            source_bit = (index >> (3 * bit + channel)) & 1
            palette[:, channel] |= (source_bit << (7 - bit)).astype(np.uint8)
    palette.setflags(write=False)
    return palette


# (256, 3) uint8; byte-identical to the PLTE chunk of the official DAVIS annotation PNGs.
DAVIS_PALETTE: np.ndarray = _voc_palette()
_PALETTE_BYTES = DAVIS_PALETTE.tobytes()
_PALETTE_KEYS = (
    DAVIS_PALETTE[:, 0].astype(np.int64) << 16
    | DAVIS_PALETTE[:, 1].astype(np.int64) << 8
    | DAVIS_PALETTE[:, 2].astype(np.int64)
)
_PALETTE_ORDER = np.argsort(_PALETTE_KEYS)
_PALETTE_SORTED_KEYS = _PALETTE_KEYS[_PALETTE_ORDER]
# Palette entries that are greys (ids 0, 7, 56, 63): an all-grey RGB mask made of them could
# be palette colours or grey ids, so it is refused rather than guessed.
_GREY_ENTRY_IDS = {
    int(DAVIS_PALETTE[i, 0]): int(i)
    for i in range(256)
    if DAVIS_PALETTE[i, 0] == DAVIS_PALETTE[i, 1] == DAVIS_PALETTE[i, 2]
}


# --------------------------------------------------------------------------- writing


def encode_mask_png(labels: np.ndarray) -> bytes:
    """PNG bytes of a label map: 8-bit indexed, DAVIS palette, as Pillow writes it by default."""
    array = _check_labels(labels)
    image = Image.fromarray(array)  # mode "L"
    image.putpalette(_PALETTE_BYTES)  # turns it into mode "P" with all 256 entries
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_mask(path: str | os.PathLike[str], labels: np.ndarray) -> None:
    """Write a label map as a DAVIS PNG, atomically (``SaveError`` if the disk refuses)."""
    atomic_write_bytes(path, encode_mask_png(labels))


def write_mask_folder(folder: str | os.PathLike[str], masks: Mapping[int, np.ndarray]) -> None:
    """Write ``{frame index: label map}`` as ``folder/00000.png``, ... (folder created if needed)."""
    for index in masks:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise ValueError(f"frame index must be a non-negative int, got {index!r}")
    folder = make_folder(folder)
    for index in sorted(masks):
        write_mask(folder / f"{int(index):05d}.png", masks[index])


# --------------------------------------------------------------------------- reading


def read_mask(
    path: str | os.PathLike[str],
    *,
    expected_hw: tuple[int, int] | None = None,
    max_id: int | None = None,
) -> np.ndarray:
    """Read a mask image into a label map (HxW uint8, C-contiguous, writable).

    Accepted inputs:

    - indexed ("P") images: the palette indices are the ids, whatever the palette says;
    - 8-bit greyscale: grey values are ids, except a mask whose only values are 0 and 255,
      the binary format of the original DAVIS-2016 release, where 255 means object 1 (not void);
    - 1-bit images: 0 background, 1 object 1;
    - RGB/RGBA colour masks in DAVIS palette colours (``labels_from_rgb``); fully transparent
      pixels are background. An all-grey RGB image with only black and white is read like a
      binary greyscale mask.

    ``MaskError`` for a missing, unreadable or truncated file, 16-bit images, colours outside
    the palette, colour masks that read two ways, semi-transparent pixels, a size other than
    ``expected_hw`` and object ids above ``max_id`` (void, 255, is always allowed).
    """
    where = os.fspath(path)
    data = read_bytes(where, MaskError, "mask file")
    if _png_bit_depth(data) == 16:
        raise MaskError(f"{where}: 16-bit PNG not supported, save as 8-bit indexed")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError:
        raise MaskError(f"{where}: not an image file") from None
    except (OSError, SyntaxError, ValueError, zlib.error, Image.DecompressionBombError) as exc:
        raise MaskError(f"{where}: corrupt or truncated image ({exc})") from None
    labels = _labels_from_image(image, where)
    _check_size(labels, expected_hw, where)
    if max_id is not None:
        _check_max_id(labels, max_id, where)
    return labels


def mask_index(name: str) -> int | None:
    """The frame index of a mask file name (``00012.png`` -> 12), None for any other name."""
    match = _FRAME_NAME.match(name)
    return int(match.group(1)) if match is not None else None


def mask_files(folder: str | os.PathLike[str]) -> dict[int, Path]:
    """``{frame index: path}`` of the ``NNNNN.png`` masks of a folder, checked as :func:`read_mask_folder`
    does (nothing is read: a caller that needs one mask reads only that one)."""
    root = Path(folder)
    if not root.is_dir():
        raise MaskError(f"mask folder not found: {root}")
    found: dict[int, Path] = {}
    subfolders: list[str] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            subfolders.append(entry.name)
            continue
        if entry.suffix.lower() not in IMAGE_EXTENSIONS:
            continue  # Thumbs.db, desktop.ini, notes.txt, 00000.png.bak: skipped, as frame folders skip them
        index = mask_index(entry.name)
        if index is None:  # an image, but not a mask named by its frame: a mistake worth a word
            raise MaskError(
                f"{entry}: mask files must be PNGs named by frame number like 00000.png"
            )
        if index in found:
            raise MaskError(f"{entry}: frame {index} already read from {found[index].name}")
        found[index] = entry
    if not found:
        hint = f" (it has subfolders such as {subfolders[0]!r}: pick one)" if subfolders else ""
        raise MaskError(f"no mask PNGs in {root}{hint}")
    return found


def read_mask_folder(
    folder: str | os.PathLike[str],
    *,
    expected_hw: tuple[int, int] | None = None,
    max_id: int | None = None,
) -> dict[int, np.ndarray]:
    """Read every ``NNNNN.png`` of a folder into ``{frame index: label map}``.

    The frame index is the number in the file name (``00005.png`` is frame 5). Hidden files
    (names starting with "."), files that are not images and subfolders are skipped; an image that
    is not a PNG named by its frame number is an error, as is a folder without masks, two names for one frame, or
    masks of different sizes.
    """
    found = mask_files(folder)
    masks: dict[int, np.ndarray] = {}
    for index in sorted(found):
        labels = read_mask(found[index], expected_hw=expected_hw, max_id=max_id)
        if masks:
            first = min(masks)
            if labels.shape != masks[first].shape:
                raise MaskError(f"{found[index]}: mask is {size_text(labels.shape)} but {found[first].name} "
                                f"is {size_text(masks[first].shape)}")
        masks[index] = labels
    return masks


# --------------------------------------------------------------------------- conversions


def labels_from_rgb(rgb: np.ndarray) -> np.ndarray:
    """Map an HxWx3 image in DAVIS palette colours to ids; ``MaskError`` names an unknown colour."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 array, got {rgb.shape} {rgb.dtype}")
    keys = (
        rgb[..., 0].astype(np.int64) << 16
        | rgb[..., 1].astype(np.int64) << 8
        | rgb[..., 2].astype(np.int64)
    )
    colours, inverse, counts = np.unique(keys.ravel(), return_inverse=True, return_counts=True)
    slot = np.searchsorted(_PALETTE_SORTED_KEYS, colours).clip(max=255)
    known = _PALETTE_SORTED_KEYS[slot] == colours
    if not known.all():
        unknown = np.flatnonzero(~known)
        worst = unknown[np.argmax(counts[unknown])]
        key = int(colours[worst])
        raise MaskError(
            f"colour {(key >> 16, (key >> 8) & 255, key & 255)} ({int(counts[worst])} pixels) "
            f"is not a DAVIS palette colour; {len(unknown)} of {len(colours)} colours are "
            "unknown (anti-aliased or JPEG-compressed masks cannot be read: paint with exact "
            "palette colours or save an indexed PNG)"
        )
    ids = _PALETTE_ORDER[slot].astype(np.uint8)
    return ids[inverse].reshape(keys.shape)


def labels_to_rgb(labels: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 image of the label map in DAVIS palette colours."""
    return DAVIS_PALETTE[_check_labels(labels)]


def resize_labels(labels: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize to ``hw`` that keeps ids exact (pixel centres, like Pillow)."""
    array = _check_labels(labels)
    out_h, out_w = int(hw[0]), int(hw[1])
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"target size must be positive, got {hw}")
    in_h, in_w = array.shape
    # Source pixel whose centre is nearest to each target pixel centre.
    rows = np.minimum(((np.arange(out_h) + 0.5) * in_h / out_h).astype(np.intp), in_h - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * in_w / out_w).astype(np.intp), in_w - 1)
    return np.ascontiguousarray(array[rows[:, None], cols[None, :]])


def object_ids(labels: np.ndarray) -> list[int]:
    """Sorted object ids present in the label map (background 0 and void 255 excluded)."""
    counts = np.bincount(_check_labels(labels).ravel(), minlength=256)
    return [int(i) for i in np.flatnonzero(counts[1:VOID]) + 1]


# --------------------------------------------------------------------------- helpers


def _check_labels(labels: np.ndarray) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 2:
        raise ValueError(f"a label map is 2-D (HxW), got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"a label map holds integer ids, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"label ids must lie in 0..255, got {array.min()}..{array.max()}")
    return array.astype(np.uint8)


def _png_bit_depth(data: bytes) -> int | None:
    # Pillow silently reduces 16-bit RGB PNGs to 8 bits, so the header is checked directly.
    if data[:8] != _PNG_SIGNATURE or len(data) < 25 or data[12:16] != b"IHDR":
        return None
    return data[24]


def _labels_from_image(image: Image.Image, where: str) -> np.ndarray:
    mode = image.mode
    if mode == "P":
        return np.array(image, dtype=np.uint8)
    if mode == "1":
        return np.array(image, dtype=np.uint8)
    if mode == "L":
        return _grey_to_labels(np.array(image, dtype=np.uint8))
    if mode in ("RGB", "RGBA", "LA", "PA"):
        return _colour_to_labels(image, where)
    if mode.startswith("I;16") or mode in ("I", "F"):
        raise MaskError(f"{where}: {mode} image not supported (16-bit?), save as 8-bit indexed")
    raise MaskError(f"{where}: {mode} images cannot be masks, save as 8-bit indexed PNG")


def _grey_to_labels(grey: np.ndarray) -> np.ndarray:
    present = np.flatnonzero(np.bincount(grey.ravel(), minlength=256))
    if present[-1] == 255 and set(present.tolist()) <= _BINARY_VALUES:
        return (grey == 255).astype(np.uint8)  # DAVIS-2016 binary mask: 255 is the object
    return grey


def _colour_to_labels(image: Image.Image, where: str) -> np.ndarray:
    has_alpha = image.mode in ("RGBA", "LA", "PA")
    pixels = np.array(image.convert("RGBA") if has_alpha else image.convert("RGB"))
    transparent = None
    if has_alpha:
        alpha = pixels[..., 3]
        partial = (alpha != 0) & (alpha != 255)
        if partial.any():
            raise MaskError(
                f"{where}: {int(partial.sum())} semi-transparent pixels; a mask needs "
                "fully opaque colours (or fully transparent background)"
            )
        transparent = alpha == 0
        pixels = np.ascontiguousarray(pixels[..., :3])
        pixels[transparent] = 0
    if image.mode in ("LA", "PA"):
        # Grey or indexed values under the alpha: read them like their plain modes.
        plain = np.array(image.getchannel(0), dtype=np.uint8)
        labels = plain if image.mode == "PA" else _grey_to_labels(plain)
        if transparent is not None:
            labels = labels.copy()
            labels[transparent] = 0
        return labels
    grey = (pixels[..., 0] == pixels[..., 1]) & (pixels[..., 1] == pixels[..., 2])
    if grey.all():
        levels = set(np.unique(pixels[..., 0]).tolist())
        if 255 in levels and levels <= _BINARY_VALUES:
            return (pixels[..., 0] == 255).astype(np.uint8)
        if levels <= _GREY_ENTRY_IDS.keys() and levels != {0}:
            level = max(levels)
            index = _GREY_ENTRY_IDS[level]
            raise MaskError(
                f"{where}: ambiguous colour mask: grey ({level},{level},{level}) could be "
                f"palette id {index} or grey id {level}; save it as an indexed (P) PNG"
            )
    try:
        return labels_from_rgb(pixels)
    except MaskError as exc:
        hint = " (JPEG is lossy)" if image.format == "JPEG" else ""
        raise MaskError(f"{where}: {exc}{hint}") from None


def _check_size(labels: np.ndarray, expected_hw: tuple[int, int] | None, where: str) -> None:
    if expected_hw is None:
        return
    if labels.shape != (int(expected_hw[0]), int(expected_hw[1])):
        raise MaskError(f"{where}: mask is {size_text(labels.shape)} but the video is {size_text(expected_hw)}")


def _check_max_id(labels: np.ndarray, max_id: int, where: str) -> None:
    ids = object_ids(labels)
    if ids and ids[-1] > max_id:
        noun = "object" if max_id == 1 else "objects"
        raise MaskError(
            f"{where}: mask has object id {ids[-1]} but the project has {max_id} {noun}"
        )
