"""Video sources with lazy random access: video files, frame folders and DAVIS sequences.

Frames come back as RGB ``uint8`` arrays (H, W, 3) at the original resolution; `working_hw` and
`resize_frame` give the working resolution used for features; `hash_video` keys caches.

    with open_video("clip.mp4") as video:
        for frame in video.iter_frames():
            ...
"""

from __future__ import annotations

import os
from pathlib import Path

from annotator.core.errors import VideoError
from annotator.core.video._base import (
    DEFAULT_CACHE_BYTES,
    DEFAULT_FOLDER_FPS,
    FrameCache,
    VideoSource,
    check_readable,
)
from annotator.core.video._check import FirstFrames, FrameCheck, check_frames, scan_frames
from annotator.core.video._file import READ_AHEAD_FRAMES, VIDEO_EXTENSIONS, VideoFileSource, quiet_ffmpeg
from annotator.core.video._folder import IMAGE_EXTENSIONS, FrameFolderSource, natural_key
from annotator.core.video._util import DEFAULT_SHORT_SIDE, hash_video, resize_frame, working_hw

__all__ = [
    "DEFAULT_CACHE_BYTES", "DEFAULT_FOLDER_FPS", "DEFAULT_SHORT_SIDE", "IMAGE_EXTENSIONS", "READ_AHEAD_FRAMES", "VIDEO_EXTENSIONS",
    "FirstFrames", "FrameCache", "FrameCheck", "FrameFolderSource", "VideoFileSource", "VideoSource",
    "check_frames", "hash_video", "natural_key", "open_davis_sequence", "open_video", "quiet_ffmpeg", "resize_frame", "scan_frames", "working_hw",
]


def open_video(path: str | os.PathLike[str], *, cache_bytes: int = DEFAULT_CACHE_BYTES) -> VideoSource:
    """Open a video file or a folder of frames (a DAVIS ``JPEGImages/480p/<seq>`` folder is one).

    Raises `VideoError` with a one-line reason for anything that cannot be read as a video.
    """
    path = Path(path)
    check_readable(path)
    if path.is_dir():
        if (path / "JPEGImages").is_dir():
            raise VideoError(f"{path} is a DAVIS root, not a sequence: give "
                             f"{path / 'JPEGImages' / '480p' / '<sequence>'} or use open_davis_sequence")
        return FrameFolderSource(path, cache_bytes=cache_bytes)
    ext = path.suffix.lower()
    if ext in VIDEO_EXTENSIONS:
        return VideoFileSource(path, cache_bytes=cache_bytes)
    if ext in IMAGE_EXTENSIONS:
        raise VideoError(f"{path} is a single image: give the folder that holds the frames")
    raise VideoError(f"{path} has an unknown extension '{path.suffix}': expected a video file "
                     f"({' '.join(VIDEO_EXTENSIONS)}) or a folder of frames ({' '.join(IMAGE_EXTENSIONS)})")


def open_davis_sequence(root: str | os.PathLike[str], name: str, resolution: str = "480p", *,
                        cache_bytes: int = DEFAULT_CACHE_BYTES) -> FrameFolderSource:
    """The frames of DAVIS sequence ``name`` under ``root``: ``root/JPEGImages/<resolution>/<name>``."""
    root = Path(root)
    check_readable(root)
    res_dir = root / "JPEGImages" / resolution
    if not res_dir.is_dir():
        images = root / "JPEGImages"
        have = sorted(p.name for p in images.iterdir() if p.is_dir()) if images.is_dir() else []
        hint = f" (it has: {', '.join(have)})" if have else ""
        raise VideoError(f"{root} is not a DAVIS root with {resolution} frames: {res_dir} is missing{hint}")
    seq_dir = res_dir / name
    if not seq_dir.is_dir():
        have = sorted(p.name for p in res_dir.iterdir() if p.is_dir())
        shown = ", ".join(have[:10]) + (", ..." if len(have) > 10 else "")
        raise VideoError(f"DAVIS sequence '{name}' not found in {res_dir} (sequences: {shown or 'none'})")
    return FrameFolderSource(seq_dir, cache_bytes=cache_bytes)
