"""Label maps on disk: DAVIS palette, byte-exact PNGs, tolerant but never guessing reads."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from annotator.core.errors import MaskError, SaveError
from annotator.core.io.labels import (
    DAVIS_PALETTE,
    MAX_OBJECT_ID,
    VOID,
    encode_mask_png,
    labels_from_rgb,
    labels_to_rgb,
    object_ids,
    read_mask,
    read_mask_folder,
    resize_labels,
    write_mask,
    write_mask_folder,
)

# sha256 of the 768-byte PLTE chunk of the official DAVIS annotation PNGs.
DAVIS_PLTE_SHA256 = "ec76f86cfddd0f4c0768796cda862d8f5099af416b298a406db7e84b55136fc9"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes, plte: bytes | None) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    body = _chunk(b"IHDR", ihdr)
    if plte is not None:
        body += _chunk(b"PLTE", plte)
    return b"\x89PNG\r\n\x1a\n" + body + _chunk(b"IDAT", zlib.compress(rows, 6)) + _chunk(b"IEND", b"")


def _davis_style_png(labels: np.ndarray) -> bytes:
    """An indexed PNG laid out as the DAVIS files are: IHDR, full PLTE, one IDAT, no row filters."""
    rows = b"".join(b"\x00" + row.tobytes() for row in labels.astype(np.uint8))
    return _png(labels.shape[1], labels.shape[0], 8, 3, rows, DAVIS_PALETTE.tobytes())


def _save(tmp_path, image: Image.Image, name: str = "m.png", **kwargs) -> str:
    path = tmp_path / name
    image.save(path, **kwargs)
    return str(path)


SAMPLE = np.array(
    [[0, 0, 1, 1, 2], [0, 3, 1, 255, 2], [7, 7, 0, 0, 2], [0, 0, 0, 0, 0]], dtype=np.uint8
)


# --------------------------------------------------------------------------- palette


def test_palette_matches_davis_files():
    assert DAVIS_PALETTE.shape == (256, 3) and DAVIS_PALETTE.dtype == np.uint8
    assert hashlib.sha256(DAVIS_PALETTE.tobytes()).hexdigest() == DAVIS_PLTE_SHA256
    # PASCAL-VOC colours: background, aeroplane, bicycle, bird, boat, tvmonitor, void.
    expected = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0),
                4: (0, 0, 128), 20: (0, 64, 128), 255: (224, 224, 192)}
    for index, colour in expected.items():
        assert tuple(DAVIS_PALETTE[index]) == colour
    assert len({tuple(c) for c in DAVIS_PALETTE}) == 256
    assert (VOID, MAX_OBJECT_ID) == (255, 254)


# --------------------------------------------------------------------------- byte-exact PNGs


def test_davis_png_read_write_round_trip_is_byte_identical(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.choice(np.array([0, 1, 2, 3, 255], dtype=np.uint8), size=(24, 37))
    original = _davis_style_png(labels)
    source = tmp_path / "00000.png"
    source.write_bytes(original)

    read = read_mask(source)
    assert read.dtype == np.uint8 and np.array_equal(read, labels)
    assert encode_mask_png(read) == original
    write_mask(tmp_path / "copy.png", read)
    assert (tmp_path / "copy.png").read_bytes() == original


def test_written_png_is_indexed_with_full_palette():
    labels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    image = Image.open(io.BytesIO(encode_mask_png(labels)))
    assert image.mode == "P" and image.format == "PNG"
    assert bytes(image.getpalette()) == DAVIS_PALETTE.tobytes()
    assert np.array_equal(np.array(image), labels)


def test_encode_accepts_bool_and_wide_ints_but_not_out_of_range():
    assert encode_mask_png(SAMPLE.astype(np.int64)) == encode_mask_png(SAMPLE)
    assert encode_mask_png(SAMPLE > 0) == encode_mask_png((SAMPLE > 0).astype(np.uint8))
    with pytest.raises(ValueError):
        encode_mask_png(np.array([[0, 256]]))
    with pytest.raises(ValueError):
        encode_mask_png(np.zeros((2, 2, 3), np.uint8))


def test_write_mask_failure_keeps_previous_file(tmp_path, monkeypatch):
    import os

    target = tmp_path / "00001.png"
    write_mask(target, SAMPLE)
    before = target.read_bytes()

    def full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(SaveError, match="No space left on device"):
        write_mask(target, np.zeros_like(SAMPLE))
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["00001.png"]


# --------------------------------------------------------------------------- accepted inputs


def test_greyscale_values_are_ids(tmp_path):
    path = _save(tmp_path, Image.fromarray(SAMPLE))  # mode L, 255 stays void
    assert np.array_equal(read_mask(path), SAMPLE)


def test_binary_0_255_greyscale_is_object_1(tmp_path):
    binary = np.where(SAMPLE > 0, 255, 0).astype(np.uint8)
    labels = read_mask(_save(tmp_path, Image.fromarray(binary)))
    assert np.array_equal(labels, (SAMPLE > 0).astype(np.uint8))


def test_all_background_greyscale_stays_background(tmp_path):
    labels = read_mask(_save(tmp_path, Image.fromarray(np.zeros((3, 4), np.uint8))))
    assert labels.shape == (3, 4) and not labels.any()


def test_one_bit_mask(tmp_path):
    bits = Image.fromarray(SAMPLE > 0).convert("1")
    labels = read_mask(_save(tmp_path, bits))
    assert np.array_equal(labels, (SAMPLE > 0).astype(np.uint8))


def test_rgb_palette_colours_map_to_ids(tmp_path):
    path = _save(tmp_path, Image.fromarray(labels_to_rgb(SAMPLE)))
    assert np.array_equal(read_mask(path), SAMPLE)


def test_rgba_transparent_is_background_and_partial_alpha_refused(tmp_path):
    rgba = np.dstack([labels_to_rgb(SAMPLE), np.full(SAMPLE.shape, 255, np.uint8)])
    rgba[0, 2] = (10, 20, 30, 0)  # any colour, fully transparent
    expected = SAMPLE.copy()
    expected[0, 2] = 0
    assert np.array_equal(read_mask(_save(tmp_path, Image.fromarray(rgba))), expected)

    rgba[1, 1, 3] = 128
    with pytest.raises(MaskError, match="semi-transparent"):
        read_mask(_save(tmp_path, Image.fromarray(rgba), "b.png"))


def test_white_on_black_rgb_reads_as_binary(tmp_path):
    grey = np.where(SAMPLE > 0, 255, 0).astype(np.uint8)
    path = _save(tmp_path, Image.fromarray(np.dstack([grey] * 3)))
    assert np.array_equal(read_mask(path), (SAMPLE > 0).astype(np.uint8))


# --------------------------------------------------------------------------- refused inputs


def test_unknown_colour_is_named_with_its_pixel_count(tmp_path):
    rgb = labels_to_rgb(np.zeros((4, 5), np.uint8)).copy()
    rgb[0, :] = (1, 2, 3)  # 5 pixels
    rgb[1, :2] = (9, 9, 8)  # 2 pixels
    rgb[2, 0] = DAVIS_PALETTE[1]
    path = _save(tmp_path, Image.fromarray(rgb))
    with pytest.raises(MaskError) as info:
        read_mask(path)
    message = str(info.value)
    assert path in message
    assert "(1, 2, 3) (5 pixels)" in message
    assert "2 of 4 colours" in message


def test_colours_that_read_two_ways_are_refused(tmp_path):
    # (128,128,128) is palette id 7 and also grey value 128: refuse instead of guessing.
    grey = np.where(SAMPLE > 0, 128, 0).astype(np.uint8)
    with pytest.raises(MaskError, match="ambiguous.*id 7"):
        read_mask(_save(tmp_path, Image.fromarray(np.dstack([grey] * 3))))


def test_sixteen_bit_png_refused(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(SAMPLE.astype(np.uint16)).save(path)  # 16-bit greyscale
    with pytest.raises(MaskError, match="16-bit PNG not supported, save as 8-bit indexed"):
        read_mask(path)
    # 16-bit RGB, which Pillow would otherwise silently reduce to 8 bits.
    rows = b"".join(b"\x00" + b"\x00\x00" * 3 * 2 for _ in range(2))
    (tmp_path / "rgb16.png").write_bytes(_png(2, 2, 16, 2, rows, None))
    with pytest.raises(MaskError, match="16-bit PNG"):
        read_mask(tmp_path / "rgb16.png")


def test_missing_corrupt_and_truncated_files(tmp_path):
    with pytest.raises(MaskError, match="not found"):
        read_mask(tmp_path / "absent.png")
    with pytest.raises(MaskError, match="folder"):
        read_mask(tmp_path)
    (tmp_path / "text.png").write_text("hello, not a picture")
    with pytest.raises(MaskError, match="not an image"):
        read_mask(tmp_path / "text.png")
    whole = _davis_style_png(np.random.default_rng(0).integers(0, 3, (40, 40), dtype=np.uint8))
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) - 40])
    with pytest.raises(MaskError, match="corrupt or truncated"):
        read_mask(tmp_path / "cut.png")


def test_size_must_match_video(tmp_path):
    path = _save(tmp_path, Image.fromarray(SAMPLE))
    assert read_mask(path, expected_hw=(4, 5)).shape == (4, 5)
    with pytest.raises(MaskError, match="mask is 5x4 but the video is 854x480"):
        read_mask(path, expected_hw=(480, 854))


def test_ids_above_project_objects_refused(tmp_path):
    path = tmp_path / "m.png"
    write_mask(path, SAMPLE)
    assert read_mask(path, max_id=7).max() == 255  # void is always allowed
    with pytest.raises(MaskError, match="mask has object id 7 but the project has 3 objects"):
        read_mask(path, max_id=3)


# --------------------------------------------------------------------------- conversions


def test_rgb_conversions_round_trip_every_id():
    labels = np.arange(256, dtype=np.uint8).reshape(8, 32)
    rgb = labels_to_rgb(labels)
    assert rgb.shape == (8, 32, 3) and tuple(rgb[0, 1]) == (128, 0, 0)
    assert np.array_equal(labels_from_rgb(rgb), labels)
    with pytest.raises(MaskError, match=r"\(1, 1, 1\)"):
        labels_from_rgb(np.ones((2, 2, 3), np.uint8))


def test_resize_labels_is_exact_nearest_neighbour():
    up = resize_labels(SAMPLE, (8, 10))
    assert np.array_equal(up, np.repeat(np.repeat(SAMPLE, 2, axis=0), 2, axis=1))
    assert up.dtype == np.uint8
    big = np.random.default_rng(3).integers(0, 255, (12, 15), dtype=np.uint8)
    assert np.array_equal(resize_labels(big, (4, 5)), big[1::3, 1::3])  # 3x3 block centres
    odd = resize_labels(SAMPLE, (7, 3))
    assert odd.shape == (7, 3) and set(np.unique(odd)) <= set(np.unique(SAMPLE))
    with pytest.raises(ValueError):
        resize_labels(SAMPLE, (0, 3))


def test_object_ids_skip_background_and_void():
    assert object_ids(SAMPLE) == [1, 2, 3, 7]
    assert object_ids(np.full((2, 2), 255, np.uint8)) == []


# --------------------------------------------------------------------------- folders


def test_mask_folder_round_trip(tmp_path):
    masks = {0: SAMPLE, 5: np.zeros_like(SAMPLE), 12: np.full_like(SAMPLE, 2)}
    write_mask_folder(tmp_path / "out", masks)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["00000.png", "00005.png", "00012.png"]
    (tmp_path / "out" / ".DS_Store").write_bytes(b"junk")
    (tmp_path / "out" / "sub").mkdir()
    read = read_mask_folder(tmp_path / "out")
    assert sorted(read) == [0, 5, 12]
    for index, labels in masks.items():
        assert np.array_equal(read[index], labels)


def test_mask_folder_skips_files_that_are_not_images_as_frame_folders_do(tmp_path):
    write_mask(tmp_path / "00000.png", SAMPLE)
    for name in ("Thumbs.db", "desktop.ini", "notes.txt", "00000.png.bak", "README"):
        (tmp_path / name).write_bytes(b"not a mask")
    read = read_mask_folder(tmp_path)
    assert list(read) == [0] and np.array_equal(read[0], SAMPLE)


@pytest.mark.parametrize("name", ["frame.png", "00001.jpg"])
def test_mask_folder_rejects_other_files(tmp_path, name):
    write_mask(tmp_path / "00000.png", SAMPLE)
    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(MaskError, match=name.replace(".", r"\.")):
        read_mask_folder(tmp_path)


def test_mask_folder_errors(tmp_path):
    with pytest.raises(MaskError, match="not found"):
        read_mask_folder(tmp_path / "absent")
    (tmp_path / "bear").mkdir()
    with pytest.raises(MaskError, match="no mask PNGs.*'bear'"):
        read_mask_folder(tmp_path)
    write_mask(tmp_path / "5.png", SAMPLE)
    write_mask(tmp_path / "00005.png", SAMPLE)
    with pytest.raises(MaskError, match="frame 5"):
        read_mask_folder(tmp_path)
    (tmp_path / "5.png").unlink()
    write_mask(tmp_path / "00006.png", np.zeros((3, 3), np.uint8))
    with pytest.raises(MaskError, match="mask is 3x3 but 00005.png is 5x4"):
        read_mask_folder(tmp_path)
    with pytest.raises(MaskError, match="mask is 5x4 but the video is 3x3"):
        read_mask_folder(tmp_path, expected_hw=(3, 3))
