"""Video sources: right frames in any access order, bounded cache, no needless seeks, clear errors."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from annotator.core.errors import UsageError, VideoError
from annotator.core.video import (
    FrameFolderSource,
    VideoFileSource,
    hash_video,
    open_davis_sequence,
    open_video,
    resize_frame,
    working_hw,
)
from annotator.core.video import _base

VIDEO_HW = (48, 128)
VIDEO_FRAMES = 80
VIDEO_FPS = 12.0
FOLDER_HW = (12, 16)


# ---- synthetic data ------------------------------------------------------------------------------

def video_frame_bgr(i: int) -> np.ndarray:
    """Frame ``i`` with its index written as 8 black/white 16x16 blocks (survives lossy codecs)."""
    f = np.zeros(VIDEO_HW + (3,), np.uint8)
    for b in range(8):
        if (i >> b) & 1:
            f[0:16, b * 16:(b + 1) * 16] = 255
    f[16:32, 0:32] = (0, 0, 255)  # red in BGR: checks the channel order of decoded frames
    f[32:48, :] = (i * 3) % 256
    return f


def decoded_index(rgb: np.ndarray) -> int:
    assert rgb.shape == VIDEO_HW + (3,) and rgb.dtype == np.uint8
    return sum(1 << b for b in range(8) if rgb[2:14, b * 16 + 3:(b + 1) * 16 - 3].mean() > 127)


def write_video(path: Path, fourcc: str, n: int = VIDEO_FRAMES) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), VIDEO_FPS, VIDEO_HW[::-1])
    if not writer.isOpened():
        pytest.skip(f"OpenCV cannot encode {fourcc} into {path.suffix} on this machine")
    for i in range(n):
        writer.write(video_frame_bgr(i))
    writer.release()
    return path


@pytest.fixture(scope="session", params=[("mp4", "mp4v"), ("avi", "MJPG")], ids=["mp4v", "mjpg"])
def video_path(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ext, fourcc = request.param
    return write_video(tmp_path_factory.mktemp("video") / f"clip.{ext}", fourcc)


@pytest.fixture(scope="session")
def avi_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("avi") / "clip.avi", "MJPG")


def folder_frame(i: int, hw: tuple[int, int] = FOLDER_HW) -> np.ndarray:
    """RGB frame whose pixels encode ``i`` exactly (PNG is lossless), different per channel."""
    f = np.empty(hw + (3,), np.uint8)
    f[..., 0] = i
    f[..., 1] = 255 - i
    f[..., 2] = np.arange(hw[1], dtype=np.uint8)[None, :]  # a ramp: catches flips and transposes
    return f


def write_folder(folder: Path, n: int, names: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names or [f"{i:05d}.png" for i in range(n)]):
        Image.fromarray(folder_frame(i)).save(folder / name)
    return folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "seq", 12)


def raw_frame_count(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


# ---- frame folders -------------------------------------------------------------------------------

def test_folder_frames_are_exact_in_any_order(folder: Path) -> None:
    with open_video(folder) as video:
        assert isinstance(video, FrameFolderSource)
        assert (len(video), video.num_frames, video.hw, video.name) == (12, 12, FOLDER_HW, "seq")
        assert video.fps == 24.0
        assert [p.name for p in video.frame_paths] == [f"{i:05d}.png" for i in range(12)]
        order = list(range(12)) + list(range(11, -1, -1)) + random.Random(0).sample(range(12), 12)
        for i in order:
            np.testing.assert_array_equal(video.frame(i), folder_frame(i))
        backward = list(video.iter_frames(step=-1))
        assert [int(f[0, 0, 0]) for f in backward] == list(range(11, -1, -1))
        assert [int(f[0, 0, 0]) for f in video.iter_frames(2, 9, 3)] == [2, 5, 8]
        assert [int(f[0, 0, 0]) for f in video.iter_frames(9, 2, -3)] == [9, 6, 3]


def test_folder_natural_sort_skips_hidden_and_non_images(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "f", 3, ["frame2.PNG", "frame10.png", "frame1.png"])
    (folder / "notes.txt").write_text("not a frame")
    (folder / "._frame0.png").write_bytes(b"macOS resource fork")
    with open_video(folder) as video:
        assert [p.name for p in video.frame_paths] == ["frame1.png", "frame2.PNG", "frame10.png"]
        # written in the order frame2 (0), frame10 (1), frame1 (2)
        assert [int(f[0, 0, 0]) for f in video.iter_frames()] == [2, 0, 1]


def test_frames_returned_are_the_callers_own(folder: Path) -> None:
    with open_video(folder) as video:
        first = video.frame(3)
        first[:] = 0
        np.testing.assert_array_equal(video.frame(3), folder_frame(3))
        assert video.frame(3).flags.writeable


def test_index_out_of_range_and_closed_source(folder: Path) -> None:
    video = open_video(folder)
    with pytest.raises(IndexError, match="frame 12"):
        video.frame(12)
    with pytest.raises(IndexError):
        video.frame(-1)
    video.close()
    with pytest.raises(ValueError, match="closed"):
        video.frame(0)


def test_fps_is_settable_and_checked(folder: Path) -> None:
    with FrameFolderSource(folder, fps=30) as video:
        assert video.fps == 30.0
        video.fps = 12.5
        assert video.fps == 12.5
        with pytest.raises(ValueError):
            video.fps = 0


def test_cache_stays_within_its_byte_budget(folder: Path) -> None:
    frame_bytes = FOLDER_HW[0] * FOLDER_HW[1] * 3
    budget = int(3.5 * frame_bytes)
    with open_video(folder, cache_bytes=budget) as video:
        for i in [5, 1, 7, 3, 9, 0, 11, 4, 7, 2]:
            video.frame(i)
            assert video.cache.nbytes <= budget
        assert video.cache.indices() == [4, 7, 2]  # least recently used first
    with open_video(folder, cache_bytes=0) as video:
        np.testing.assert_array_equal(video.frame(5), folder_frame(5))
        assert len(video.cache) == 0 and video.cache.nbytes == 0


def test_video_cache_stays_within_its_byte_budget(video_path: Path) -> None:
    budget = 5 * VIDEO_HW[0] * VIDEO_HW[1] * 3
    with open_video(video_path, cache_bytes=budget) as video:
        for i in random.Random(1).sample(range(VIDEO_FRAMES), 20):
            assert decoded_index(video.frame(i)) == i
            assert video.cache.nbytes <= budget and len(video.cache) <= 5


# ---- video files ---------------------------------------------------------------------------------

def test_video_properties(video_path: Path) -> None:
    with open_video(video_path) as video:
        assert isinstance(video, VideoFileSource)
        assert (video.num_frames, video.hw, video.name) == (VIDEO_FRAMES, VIDEO_HW, "clip")
        assert video.fps == pytest.approx(VIDEO_FPS)
        red = video.frame(0)[20:28, 8:24].reshape(-1, 3).mean(axis=0)
        assert red[0] > 200 and red[1] < 50 and red[2] < 50, red  # RGB, not BGR


def test_video_random_access_order(video_path: Path) -> None:
    with open_video(video_path, cache_bytes=0) as video:
        order = (list(range(VIDEO_FRAMES)) + list(range(VIDEO_FRAMES - 1, -1, -7))
                 + random.Random(2).sample(range(VIDEO_FRAMES), 25))
        assert [decoded_index(video.frame(i)) for i in order] == order


def test_sequential_forward_reading_never_seeks(video_path: Path) -> None:
    with open_video(video_path, cache_bytes=0) as video:
        assert [decoded_index(f) for f in video.iter_frames()] == list(range(VIDEO_FRAMES))
        assert video.seek_count == 0
    with open_video(video_path, cache_bytes=0) as video:
        assert [decoded_index(video.frame(i)) for i in range(VIDEO_FRAMES)] == list(range(VIDEO_FRAMES))
        assert video.seek_count == 0
    with open_video(video_path, cache_bytes=0) as video:
        assert [decoded_index(f) for f in video.iter_frames(3, 70, 4)] == list(range(3, 70, 4))
        assert video.seek_count == 0


def test_short_jump_reads_forward_and_caches_far_jump_seeks(video_path: Path) -> None:
    with open_video(video_path) as video:
        assert decoded_index(video.frame(10)) == 10
        assert video.seek_count == 0
        assert set(range(11)) <= set(video.cache.indices())
        assert decoded_index(video.frame(5)) == 5  # cached on the way: no seek back
        assert video.seek_count == 0
        assert decoded_index(video.frame(70)) == 70
        assert video.seek_count == 1
        assert decoded_index(video.frame(71)) == 71
        assert decoded_index(video.frame(30)) == 30  # backward jump, not cached
        assert video.seek_count == 2


def test_backward_iteration_reads_chunks_forward(video_path: Path) -> None:
    with open_video(video_path, cache_bytes=0) as video:
        video.backward_chunk_bytes = 10 * VIDEO_HW[0] * VIDEO_HW[1] * 3
        got = [decoded_index(f) for f in video.iter_frames(step=-1)]
        assert got == list(range(VIDEO_FRAMES - 1, -1, -1))
        assert video.seek_count <= VIDEO_FRAMES // 10 + 1
        seeks = video.seek_count
        got = [decoded_index(f) for f in video.iter_frames(start=50, stop=10, step=-3)]
        assert got == list(range(50, 10, -3))
        assert video.seek_count - seeks <= 5


class _LyingCapture:
    """Wraps a real capture: misreports the frame count and lands seeks a few frames early."""

    def __init__(self, cap: cv2.VideoCapture, frame_count: float | None, seek_error: int) -> None:
        self._cap, self._count, self._error = cap, frame_count, seek_error

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FRAME_COUNT and self._count is not None:
            return self._count
        return self._cap.get(prop)

    def set(self, prop: int, value: float) -> bool:
        if prop == cv2.CAP_PROP_POS_FRAMES:
            value = max(0, value - self._error)
        return self._cap.set(prop, value)

    def __getattr__(self, name: str):
        return getattr(self._cap, name)


def lying_source(path: Path, frame_count: float | None = None, seek_error: int = 0) -> VideoFileSource:
    class Lying(VideoFileSource):
        def _open_capture(self) -> None:
            super()._open_capture()
            self._cap = _LyingCapture(self._cap, frame_count, seek_error)

    return Lying(path, cache_bytes=0)


def test_inexact_seek_is_detected_and_corrected(avi_path: Path) -> None:
    with lying_source(avi_path, seek_error=3) as video:
        for i in [60, 20, 75, 5]:
            assert decoded_index(video.frame(i)) == i


def test_missing_header_count_is_scanned_and_low_count_grows(avi_path: Path) -> None:
    with lying_source(avi_path, frame_count=0) as video:
        assert video.frame_count_exact and video.num_frames == VIDEO_FRAMES
    with lying_source(avi_path, frame_count=50) as video:
        assert video.num_frames == 50
        assert video.count_frames_exactly() == VIDEO_FRAMES == video.num_frames
        assert decoded_index(video.frame(79)) == 79


@pytest.fixture
def truncated_avi(avi_path: Path, tmp_path: Path) -> tuple[Path, int]:
    data = avi_path.read_bytes()
    path = tmp_path / "cut.avi"
    path.write_bytes(data[: int(len(data) * 0.6)])
    true_count = raw_frame_count(path)
    assert 0 < true_count < VIDEO_FRAMES
    return path, true_count


def test_truncated_video_reading_forward(truncated_avi: tuple[Path, int]) -> None:
    path, n = truncated_avi
    with open_video(path) as video:
        assert video.num_frames == video.header_frame_count == VIDEO_FRAMES
        assert not video.frame_count_exact
        frames = list(video.iter_frames())  # stop=None: ends quietly at the true end
        assert [decoded_index(f) for f in frames[:-1]] == list(range(n - 1))  # last may be partial
        assert video.num_frames == len(video) == n and video.frame_count_exact
        message = rf"cut\.avi ends after frame {n - 1} .*header says {VIDEO_FRAMES}: frame {n + 2} "
        with pytest.raises(VideoError, match=message):
            video.frame(n + 2)
        with pytest.raises(VideoError, match="header says"):
            list(video.iter_frames(0, VIDEO_FRAMES))
        with pytest.raises(IndexError):
            video.frame(VIDEO_FRAMES)


def test_truncated_video_far_jump_and_exact_count(truncated_avi: tuple[Path, int]) -> None:
    path, n = truncated_avi
    with open_video(path) as video:
        with pytest.raises(VideoError, match=f"ends after frame {n - 1} "):
            video.frame(n + 5)  # a seek past the true end
        assert video.num_frames == n
        assert decoded_index(video.frame(n // 2)) == n // 2
    with open_video(path) as video:
        assert video.count_frames_exactly() == n == video.num_frames
        video.validate()


# ---- bad input -----------------------------------------------------------------------------------

def test_missing_path(tmp_path: Path) -> None:
    for make in (open_video, FrameFolderSource, VideoFileSource, hash_video):
        with pytest.raises(VideoError, match=r"nope\.mp4 does not exist"):
            make(tmp_path / "nope.mp4")


def test_path_without_read_permission(folder: Path, avi_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_base, "is_readable", lambda path: False)  # root may read anything
    for path in (folder, avi_path):
        with pytest.raises(VideoError, match="cannot be read: permission denied"):
            open_video(path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores file permissions")
def test_path_without_read_permission_for_real(avi_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "locked.avi"
    shutil.copy(avi_path, path)
    path.chmod(0)
    with pytest.raises(VideoError, match="permission denied"):
        open_video(path)


def test_corrupt_empty_and_truncated_video_files(avi_path: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match=r"junk\.mp4 cannot be opened as a video"):
        open_video(junk)
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match=r"empty\.mov is an empty file"):
        open_video(empty)
    mp4 = write_video(tmp_path / "whole.mp4", "mp4v")
    half = tmp_path / "half.mp4"  # mp4v writes its index (moov) last: a cut file cannot be opened
    half.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    with pytest.raises(VideoError, match=r"half\.mp4 cannot be opened"):
        open_video(half)
    data = avi_path.read_bytes()
    headless = tmp_path / "noframes.avi"  # header intact, cut right where the frames begin
    headless.write_bytes(data[: data.find(b"movi") + 100])
    with pytest.raises(VideoError, match=r"noframes\.avi cannot be decoded: its first frame is unreadable"):
        open_video(headless)


def test_bad_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="empty"):
        open_video(tmp_path / "empty")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("hello")
    with pytest.raises(VideoError, match=r"docs has no image files \(\.jpg \.jpeg \.png \.bmp\)"):
        open_video(tmp_path / "docs")
    fake_first = write_folder(tmp_path / "fake_first", 3)
    (fake_first / "00000.png").write_text("not a png")
    with pytest.raises(VideoError, match=r"00000\.png cannot be decoded as an image"):
        open_video(fake_first)


def test_undecodable_frame_is_found_lazily_and_by_validate(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "seq", 5)
    (folder / "00002.png").write_bytes(b"\x89PNG garbage")
    with open_video(folder) as video:
        np.testing.assert_array_equal(video.frame(1), folder_frame(1))
        with pytest.raises(VideoError, match=r"00002\.png cannot be decoded"):
            video.frame(2)
        with pytest.raises(VideoError, match=r"00002\.png is not a readable image"):
            video.validate()


def test_frames_of_different_sizes(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "seq", 6)
    Image.fromarray(folder_frame(3, (20, 30))).save(folder / "00003.png")
    Image.fromarray(folder_frame(5, (20, 30))).save(folder / "00005.png")
    message = r"frames differ in size in .*seq: 00003\.png is 30x20 but 00000\.png is 16x12"
    with open_video(folder) as video:
        with pytest.raises(VideoError, match=message):
            video.validate()
        assert video.cache.indices() == [0]  # validate decoded nothing
        np.testing.assert_array_equal(video.frame(2), folder_frame(2))
        with pytest.raises(VideoError, match=message):
            video.frame(3)


def test_unknown_extension_and_single_image(tmp_path: Path, folder: Path) -> None:
    text = tmp_path / "clip.txt"
    text.write_text("x")
    with pytest.raises(VideoError, match=r"clip\.txt has an unknown extension '\.txt'"):
        open_video(text)
    with pytest.raises(VideoError, match="single image"):
        open_video(folder / "00000.png")


def test_davis_sequences(tmp_path: Path) -> None:
    root = tmp_path / "DAVIS"
    write_folder(root / "JPEGImages" / "480p" / "bear", 4)
    write_folder(root / "JPEGImages" / "480p" / "boat", 2)
    with open_davis_sequence(root, "bear") as video:
        assert (video.name, video.num_frames) == ("bear", 4)
        np.testing.assert_array_equal(video.frame(3), folder_frame(3))
    with open_video(root / "JPEGImages" / "480p" / "boat") as video:
        assert (video.name, video.num_frames) == ("boat", 2)
    with pytest.raises(VideoError, match=r"sequence 'cat' not found .*\(sequences: bear, boat\)"):
        open_davis_sequence(root, "cat")
    with pytest.raises(VideoError, match=r"not a DAVIS root with 1080p frames.*\(it has: 480p\)"):
        open_davis_sequence(root, "bear", "1080p")
    with pytest.raises(VideoError, match="is a DAVIS root, not a sequence"):
        open_video(root)


# ---- working resolution --------------------------------------------------------------------------

@pytest.mark.parametrize("original, short, expected", [
    ((480, 854), 480, (480, 854)),
    ((1080, 1920), 480, (480, 853)),    # 853.33 rounds to nearest
    ((1920, 1080), 480, (853, 480)),    # portrait
    ((240, 320), 480, (480, 640)),      # enlarged
    ((500, 500), 480, (480, 480)),
    ((2, 3), 1, (1, 2)),                # 1.5: halves round up
    ((1080, 1920), None, (1080, 1920)),
    ((1080, 1920), 0, (1080, 1920)),
])
def test_working_hw(original: tuple[int, int], short: int | None, expected: tuple[int, int]) -> None:
    assert working_hw(original, short) == expected


def test_working_hw_rejects_negative_short_side() -> None:
    with pytest.raises(UsageError, match="-5"):
        working_hw((480, 854), -5)


def test_resize_frame_interpolation() -> None:
    frame = np.random.default_rng(3).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    assert resize_frame(frame, (40, 60)) is frame
    small = resize_frame(frame, (20, 30))
    np.testing.assert_array_equal(small, cv2.resize(frame, (30, 20), interpolation=cv2.INTER_AREA))
    big = resize_frame(frame, (80, 120))
    np.testing.assert_array_equal(big, cv2.resize(frame, (120, 80), interpolation=cv2.INTER_LINEAR))
    assert resize_frame(frame[..., 0], (20, 30)).shape == (20, 30)


# ---- content hash --------------------------------------------------------------------------------

def test_hash_of_folders(folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(folder, copy)
    with open_video(folder) as video:
        h = hash_video(video)
        assert len(h) == 64 and h == hash_video(folder) == hash_video(copy)
    Image.fromarray(folder_frame(99)).save(copy / "00004.png")
    assert hash_video(copy) != h
    shutil.copytree(folder, tmp_path / "renamed")
    (tmp_path / "renamed" / "00011.png").rename(tmp_path / "renamed" / "00012.png")
    assert hash_video(tmp_path / "renamed") != h


def test_hash_of_files(avi_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "copy.avi"
    shutil.copy(avi_path, copy)
    with open_video(avi_path) as video:
        assert hash_video(video) == hash_video(avi_path) == hash_video(copy)
    from annotator.core.video import _util
    monkeypatch.setattr(_util, "HASH_FILE_EDGE_BYTES", 1024)  # the file is larger than both ends
    before = hash_video(copy)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert hash_video(copy) != before
    copy.write_bytes(bytes(data) + b"\0")
    assert hash_video(copy) != before


def test_check_frames_counts_the_readable_start_and_first_frames_keeps_it(tmp_path):
    from annotator.core.video import FirstFrames, check_frames
    from tests.synthetic import write_frames

    frames = [np.full((12, 16, 3), 40 * i, np.uint8) for i in range(5)]
    folder = write_frames(tmp_path / "seq", frames)
    assert check_frames(folder) == check_frames(folder) and check_frames(folder).complete
    (folder / "00002.png").write_bytes(b"not an image")
    check = check_frames(folder)
    assert (check.readable, check.total) == (2, 5) and "00002.png" in check.problem and not check.complete
    with FirstFrames(open_video(folder), check.readable) as cut:
        assert len(cut) == 2 and cut.hw == (12, 16) and np.array_equal(cut.frame(1), frames[1])
        with pytest.raises(IndexError):
            cut.frame(2)
