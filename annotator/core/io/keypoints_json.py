"""The keypoints JSON: reference points in (``annotator keypoints --points``), every frame's points out.

In: ``{"FRAME": {"NAME": [x, y], ...}, ...}``, pixels of the original video. Out (the one writer of
the format, for ``annotator keypoints``, ``annotator export --keypoints`` and the app's export):
``{"image_size": [w, h], "points": [NAME, ...], "frames": {FRAME: {NAME: {"x", "y", "confidence",
"reference"}}}}``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from annotator.core.errors import UsageError
from annotator.core.model.points import Keypoints, Point

__all__ = ["PropagatedFrame", "keypoints_json_text", "read_keypoints_json"]


def read_keypoints_json(path: str | Path) -> tuple[list[str], dict[int, dict[int, Point]]]:
    """Reference keypoints from JSON ``{"FRAME": {"NAME": [x, y], ...}, ...}``; names -> ids 1..N in order seen.

    Returns the names (id j+1 is ``names[j]``) and frame -> id -> (x, y). Raises UsageError with
    the file and the offending entry on anything malformed.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read keypoints {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(data, dict) or not data:
        raise UsageError(f'{path}: expected {{"FRAME": {{"NAME": [x, y], ...}}}} with at least one frame')
    names: list[str] = []
    out: dict[int, dict[int, Point]] = {}
    for frame_text, points in data.items():
        try:
            frame = int(frame_text)
        except ValueError:
            raise UsageError(f"{path}: frame {frame_text!r} is not a frame number") from None
        if not isinstance(points, dict) or not points:
            raise UsageError(f"{path}: frame {frame}: expected a non-empty object of NAME: [x, y]")
        out[frame] = {}
        for name, xy in points.items():
            if (not isinstance(xy, (list, tuple)) or len(xy) != 2
                    or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in xy)):
                raise UsageError(f"{path}: frame {frame}, point {name!r}: expected [x, y] numbers, got {xy!r}")
            if name not in names:
                names.append(str(name))
            out[frame][names.index(str(name)) + 1] = (float(xy[0]), float(xy[1]))
    return names, out


class PropagatedFrame(Protocol):
    """What the JSON export needs of a propagated frame: a :class:`KeypointResult`, or points a project kept."""

    @property
    def index(self) -> int: ...

    @property
    def points(self) -> Mapping[int, Point]: ...

    @property
    def confidence(self) -> Mapping[int, float]: ...


def keypoints_json_text(names: Sequence[str], references: Mapping[int, Keypoints],
                        results: Iterable[PropagatedFrame], image_hw: tuple[int, int]) -> str:
    """Every frame's points as JSON: ``{"image_size": [w, h], "points": names, "frames": {FRAME: {NAME:
    {"x", "y", "confidence", "reference"}}}}`` (references have confidence 1). Point id j is ``names[j - 1]``."""
    frames: dict[int, dict[str, dict]] = {}
    for frame, points in references.items():
        frames[frame] = {names[pid - 1]: {"x": round(x, 2), "y": round(y, 2), "confidence": 1.0, "reference": True}
                         for pid, (x, y) in points.items()}
    for r in results:
        frames[r.index] = {names[pid - 1]: {"x": round(x, 2), "y": round(y, 2),
                                            "confidence": round(r.confidence[pid], 4), "reference": False}
                           for pid, (x, y) in r.points.items()}
    return json.dumps({"image_size": [image_hw[1], image_hw[0]], "points": list(names),
                       "frames": {str(k): frames[k] for k in sorted(frames)}}, indent=1)
