"""The ``project.json`` format: its dataclasses, validation, migration from older versions, and writing.

Everything a project's index holds is validated here field by field, so a damaged or hand-edited
file gives a one-line `ProjectError` naming the field, never another exception (the tests fuzz
it). :func:`migrate` brings older versions to the current one. Qt-free; the folder layout and
the saving protocol live in :mod:`annotator.core.project`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from annotator.core.model.annotation import (MAX_KEYPOINT_ID, AnnotationModel, FramePoints, FrameState, KeypointInfo,
                                       ObjectInfo, keypoint_color, palette_color)
from annotator.core.errors import ProjectError, size_text
from annotator.core.io.labels import MAX_OBJECT_ID
from annotator.core.model.points import point_inside

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "PROJECT_FILE", "ProjectData", "VideoRecord", "migrate",
           "parse_project", "project_json_text"]

FORMAT_NAME = "annotator-project"
FORMAT_VERSION = 2
"""1: masks, objects, frame states. 2: also keypoints (names) and the points of each frame.

Optional keys readers of the same version ignore are no new version: ``frames.two_keyframes``
(propagated frames fused from both ends of a span; absent = every propagated frame came from one)
loads as nothing in an older annotator, which loses only the timeline's shade; ``grown`` (per frame, the
pixels the colour grow added, which an accepted frame does not teach: ``AnnotationModel.grown_pixels``)
loads as nothing there too, and the frame then teaches what it shows."""
PROJECT_FILE = "project.json"


@dataclass(frozen=True)
class VideoRecord:
    """Where a project's video was and what it looked like when the project was saved."""

    path: str
    """Relative to the project folder (POSIX separators) when it can be, else absolute."""
    absolute: str
    kind: str  # "file" or "folder"
    hw: tuple[int, int]
    frames: int
    hash: str | None


@dataclass(frozen=True)
class ProjectData:
    """The validated content of a ``project.json`` (always the current format version)."""

    video: VideoRecord
    objects: tuple[ObjectInfo, ...]
    states: dict[int, FrameState]
    """Every stored frame and its state; EMPTY means labelled but neither reference nor propagated."""
    propagation: dict[str, Any] | None = None
    created: str | None = None
    modified: str | None = None
    generation: int = 0
    pending: tuple[int, ...] = ()
    version: int = FORMAT_VERSION
    keypoints: tuple[KeypointInfo, ...] = ()
    points: dict[int, FramePoints] = field(default_factory=dict)
    """Every frame with keypoints: reference points, or propagated points with their confidence."""
    two_keyframes: frozenset[int] = frozenset()
    """Propagated frames whose labels were fused from both ends of a span (the others came from one)."""
    grown: dict[int, tuple[tuple[int, int, int, int], np.ndarray]] = field(default_factory=dict)
    """Frame -> (box (y0, x0, y1, x1), bool mask in it) of the pixels the colour grow added to the frame's
    masks (``AnnotationModel.grown_pixels``)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------- json


def migrate(data: dict[str, Any], where: str = PROJECT_FILE) -> dict[str, Any]:
    """Bring a decoded ``project.json`` of any known version to the current one (returns a new dict).

    Version 0 is the unversioned layout of the first prototype: ``{"video": "<absolute path>",
    "size": [width, height], "num_frames": n, "objects": {"1": {"name": ..., "color": "#rrggbb"}},
    "references": [...], "propagated": [...]}`` with the same ``masks/`` folder and no hash.
    """
    if not isinstance(data, dict):
        raise ProjectError(f"{where}: not a project file (expected a JSON object)")
    version = data.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ProjectError(f"{where}: invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ProjectError(f"{where}: made by a newer annotator (format {version}, this one reads up to "
                           f"{FORMAT_VERSION}); update annotator")
    if version == 0:
        data = _migrate_v0(data, where)
    if data.get("version") == 1:
        data = _migrate_v1(data)
    return data


def _migrate_v1(old: dict[str, Any]) -> dict[str, Any]:
    """Version 1 had no keypoints: a project without any."""
    return {**old, "version": 2, "keypoints": [], "points": {"reference": {}, "propagated": {}}}


def _migrate_v0(old: dict[str, Any], where: str) -> dict[str, Any]:
    video, size = old.get("video"), old.get("size")
    if not isinstance(video, str) or not isinstance(size, list) or len(size) != 2:
        raise ProjectError(f"{where}: not a project file (no video or size)")
    objects = []
    raw_objects = old.get("objects", {})
    if not isinstance(raw_objects, dict):
        raise ProjectError(f"{where}: 'objects' must be a mapping in a version 0 project")
    for key, value in raw_objects.items():
        if not isinstance(value, dict) or not str(key).isdigit():
            raise ProjectError(f"{where}: bad object entry {key!r}")
        colour = value.get("color")
        if isinstance(colour, str) and len(colour) == 7 and colour.startswith("#"):
            try:
                colour = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
            except ValueError:
                raise ProjectError(f"{where}: bad colour {value.get('color')!r} of object {key}") from None
        objects.append({"id": int(key), "name": value.get("name", f"object {key}"), "color": colour,
                        "visible": True})
    return {
        "format": FORMAT_NAME, "version": 1, "created": None, "modified": None, "generation": 0,
        "video": {"path": video, "absolute": video, "kind": "folder" if not Path(video).suffix else "file",
                  "hw": [size[1], size[0]] if all(isinstance(v, int) for v in size) else size,
                  "frames": old.get("num_frames"), "hash": None},
        "objects": objects,
        "frames": {"reference": old.get("references", []), "propagated": old.get("propagated", []),
                   "unmarked": []},
        "propagation": None, "pending": [],
    }


def _int(value: Any, what: str, where: str, lo: int = 0, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        bounds = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ProjectError(f"{where}: {what} must be an integer {bounds}, got {_short(value)}")
    return value


def _str(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str):
        raise ProjectError(f"{where}: {what} must be a string, got {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _frame_list(value: Any, what: str, where: str, num_frames: int) -> list[int]:
    if not isinstance(value, list):
        raise ProjectError(f"{where}: {what} must be a list of frame indices")
    return [_int(v, f"a frame in {what}", where, 0, num_frames - 1) for v in value]


def parse_project(raw: bytes, where: str = PROJECT_FILE) -> ProjectData:
    """Decode, migrate and validate ``project.json`` bytes; `ProjectError` on anything wrong."""
    try:
        decoded = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProjectError(f"{where}: not a project file (not UTF-8 text)") from None
    except (ValueError, RecursionError) as exc:
        raise ProjectError(f"{where}: corrupt project file ({str(exc).splitlines()[0][:80]})") from None
    data = migrate(decoded, where)
    if data.get("format", FORMAT_NAME) != FORMAT_NAME:
        raise ProjectError(f"{where}: not an annotator project (format {_short(data.get('format'))})")
    v = data.get("video")
    if not isinstance(v, dict):
        raise ProjectError(f"{where}: 'video' must be an object")
    hw = v.get("hw")
    if not isinstance(hw, list) or len(hw) != 2:
        raise ProjectError(f"{where}: video hw must be [height, width], got {_short(hw)}")
    h, w = (_int(x, "video height/width", where, 1, 1 << 20) for x in hw)
    frames = _int(v.get("frames"), "video frame count", where, 1, 1 << 31)
    digest = v.get("hash")
    if digest is not None and not isinstance(digest, str):
        raise ProjectError(f"{where}: video hash must be a string, got {_short(digest)}")
    kind = v.get("kind", "file")
    if kind not in ("file", "folder"):
        raise ProjectError(f"{where}: video kind must be 'file' or 'folder', got {_short(kind)}")
    video = VideoRecord(_str(v.get("path"), "video path", where), _str(v.get("absolute"), "video absolute path", where),
                        kind, (h, w), frames, digest)
    objects = _parse_objects(data.get("objects", []), where)
    fr = data.get("frames", {})
    if not isinstance(fr, dict):
        raise ProjectError(f"{where}: 'frames' must be an object")
    states: dict[int, FrameState] = {}
    for key, state in (("reference", FrameState.REFERENCE), ("propagated", FrameState.PROPAGATED),
                       ("unmarked", FrameState.EMPTY)):
        for i in _frame_list(fr.get(key, []), f"frames.{key}", where, frames):
            if i in states:
                raise ProjectError(f"{where}: frame {i} is listed twice in 'frames'")
            states[i] = state
    two_keyframes = frozenset(_frame_list(fr.get("two_keyframes", []), "frames.two_keyframes", where, frames))
    for i in sorted(two_keyframes):
        if states.get(i) is not FrameState.PROPAGATED:
            raise ProjectError(f"{where}: frame {i} is in frames.two_keyframes but not in frames.propagated")
    propagation = data.get("propagation")
    if propagation is not None and not isinstance(propagation, dict):
        raise ProjectError(f"{where}: 'propagation' must be an object or null")
    pending = _frame_list(data.get("pending", []), "pending", where, frames)
    created, modified = data.get("created"), data.get("modified")
    for name, stamp in (("created", created), ("modified", modified)):
        if stamp is not None and not isinstance(stamp, str):
            raise ProjectError(f"{where}: '{name}' must be a string or null")
    generation = _int(data.get("generation", 0), "generation", where)
    keypoints = _parse_keypoints(data.get("keypoints", []), where)
    points = _parse_points(data.get("points", {}), {k.id for k in keypoints}, (h, w), frames, where)
    grown = _parse_grown(data.get("grown", {}), states, (h, w), where)
    return ProjectData(video, objects, states, propagation, created, modified, generation, tuple(pending),
                       keypoints=keypoints, points=points, two_keyframes=two_keyframes, grown=grown)


# The text of each grown entry the last save wrote, by (box, packed bits). Autosave writes project.json
# every few seconds on the GUI thread, with an entry for every propagated frame (about 0.8 KB each on
# DAVIS boat), and an entry changes only when its frame's pixels do: deflating them all again each time
# took 2.5 ms a frame at level 9 (7 s for 3,000 frames, with two other jobs on the 2 cores; session 54);
# packing and looking up takes microseconds (83 ms for the 3,000 on a save that finds them all).
_encoded_grown: dict[tuple[tuple[int, ...], bytes], str] = {}


def _grown_json(grown: Mapping[int, tuple[tuple[int, int, int, int], np.ndarray]]) -> dict[str, dict]:
    # a bool mask as packed bits, deflated: the band a grow adds along an outline is a few hundred bytes
    global _encoded_grown
    out, used = {}, {}
    for frame, (box, added) in sorted(grown.items()):
        key = (tuple(box), np.packbits(added).tobytes())
        text = _encoded_grown.get(key)
        if text is None:
            # zlib's default level: 7x faster than level 9 on these masks, 4% larger
            text = base64.b64encode(zlib.compress(key[1], 6)).decode("ascii")
        used[key] = text
        out[str(frame)] = {"box": list(box), "added": text}
    _encoded_grown = used  # only what this save wrote: the memo never outgrows one project
    return out


def _parse_grown(raw: Any, states: Mapping[int, FrameState], hw: tuple[int, int], where: str
                 ) -> dict[int, tuple[tuple[int, int, int, int], np.ndarray]]:
    """``{FRAME: {"box": [y0, x0, y1, x1], "added": base64 of the deflated packed bits of the mask}}``."""
    if not isinstance(raw, dict):
        raise ProjectError(f"{where}: 'grown' must be an object of frames")
    out = {}
    for key, entry in raw.items():
        if not str(key).isdigit() or int(key) not in states:
            raise ProjectError(f"{where}: grown: {_short(key)} is not a stored frame")
        frame = int(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("box"), list) or len(entry["box"]) != 4:
            raise ProjectError(f"{where}: grown.{frame} must be {{\"box\": [y0, x0, y1, x1], \"added\": ...}}")
        y0, x0, y1, x1 = (_int(v, f"a corner of grown.{frame}.box", where, 0, max(hw)) for v in entry["box"])
        if not (y0 < y1 <= hw[0] and x0 < x1 <= hw[1]):
            raise ProjectError(f"{where}: grown.{frame}.box {[y0, x0, y1, x1]} is not a box inside the "
                               f"{size_text(hw)} frame")
        n = (y1 - y0) * (x1 - x0)
        try:
            bits = np.frombuffer(zlib.decompress(base64.b64decode(_str(entry.get("added"), f"grown.{frame}.added",
                                                                          where), validate=True)), np.uint8)
        except (binascii.Error, zlib.error, ValueError):
            raise ProjectError(f"{where}: grown.{frame}.added is not a packed mask") from None
        if len(bits) != (n + 7) // 8:
            raise ProjectError(f"{where}: grown.{frame}.added does not fit its box")
        out[frame] = ((y0, x0, y1, x1), np.unpackbits(bits, count=n).astype(bool).reshape(y1 - y0, x1 - x0))
    return dict(sorted(out.items()))


def _rgb(value: Any, what: str, where: str) -> tuple[int, int, int]:
    """An ``[r, g, b]`` list of 0..255 ints (object and keypoint colours)."""
    if not isinstance(value, list) or len(value) != 3:
        raise ProjectError(f"{where}: {what} must be [r, g, b], got {_short(value)}")
    return tuple(_int(c, what, where, 0, 255) for c in value)  # type: ignore[return-value]


def _entries_by_id(raw: Any, where: str, field: str, kind: str, article: str, max_id: int
                   ) -> Iterator[tuple[int, dict]]:
    """The entries of list ``field`` (objects or keypoints), each a dict with a new id in 1..max_id."""
    if not isinstance(raw, list):
        raise ProjectError(f"{where}: '{field}' must be a list")
    seen: set[int] = set()
    for entry in raw:
        if not isinstance(entry, dict):
            raise ProjectError(f"{where}: {article} {kind} entry must be an object, got {_short(entry)}")
        i = _int(entry.get("id"), f"{kind} id", where, 1, max_id)
        if i in seen:
            raise ProjectError(f"{where}: {kind} id {i} is listed twice")
        seen.add(i)
        yield i, entry


def _parse_keypoints(raw: Any, where: str) -> tuple[KeypointInfo, ...]:
    keypoints: dict[int, KeypointInfo] = {}
    for i, entry in _entries_by_id(raw, where, "keypoints", "keypoint", "a", MAX_KEYPOINT_ID):
        name = _str(entry.get("name"), f"name of keypoint {i}", where)
        if not name.strip() or any(k.name == name for k in keypoints.values()):
            raise ProjectError(f"{where}: keypoint {i} needs a name of its own, got {_short(name)}")
        rgb = _rgb(entry.get("color", list(keypoint_color(i))), f"colour of keypoint {i}", where)
        keypoints[i] = KeypointInfo(i, name, rgb)  # type: ignore[arg-type]
    return tuple(keypoints[i] for i in sorted(keypoints))


def _number(value: Any, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        raise ProjectError(f"{where}: {what} must be a finite number, got {_short(value)}")
    return float(value)


def _parse_points(raw: Any, keypoint_ids: set[int], hw: tuple[int, int], num_frames: int,
                  where: str) -> dict[int, FramePoints]:
    """``{"reference": {FRAME: {ID: [x, y]}}, "propagated": {FRAME: {ID: [x, y, confidence]}}}``."""
    if not isinstance(raw, dict):
        raise ProjectError(f"{where}: 'points' must be an object")
    out: dict[int, FramePoints] = {}
    for kind, reference in (("reference", True), ("propagated", False)):
        frames = raw.get(kind, {})
        if not isinstance(frames, dict):
            raise ProjectError(f"{where}: points.{kind} must be an object of frames")
        for frame_key, entries in frames.items():
            if not str(frame_key).isdigit():
                raise ProjectError(f"{where}: points.{kind}: {_short(frame_key)} is not a frame index")
            frame = _int(int(frame_key), f"a frame in points.{kind}", where, 0, num_frames - 1)
            if frame in out:
                raise ProjectError(f"{where}: frame {frame} is listed twice in 'points'")
            if not isinstance(entries, dict) or not entries:
                raise ProjectError(f"{where}: points.{kind}.{frame} must be a non-empty object of points")
            points, confidence = {}, {}
            for key, value in entries.items():
                what = f"point {key} of frame {frame}"
                if not str(key).isdigit() or int(key) not in keypoint_ids:
                    raise ProjectError(f"{where}: {what} is no keypoint listed in 'keypoints'")
                size = 2 if reference else 3
                if not isinstance(value, list) or len(value) != size:
                    shape = "[x, y]" if reference else "[x, y, confidence]"
                    raise ProjectError(f"{where}: {what} must be {shape}, got {_short(value)}")
                x, y = _number(value[0], f"x of {what}", where), _number(value[1], f"y of {what}", where)
                if not point_inside((x, y), hw):
                    raise ProjectError(f"{where}: {what} at ({x:.1f}, {y:.1f}) is outside the {size_text(hw)} frame")
                points[int(key)] = (x, y)
                if not reference:
                    confidence[int(key)] = _number(value[2], f"confidence of {what}", where)
            out[frame] = FramePoints(points, reference, confidence)
    return dict(sorted(out.items()))


def _parse_objects(raw: Any, where: str) -> tuple[ObjectInfo, ...]:
    objects: dict[int, ObjectInfo] = {}
    for i, entry in _entries_by_id(raw, where, "objects", "object", "an", MAX_OBJECT_ID):
        name = _str(entry.get("name", f"object {i}"), f"name of object {i}", where)
        rgb = _rgb(entry.get("color", list(palette_color(i))), f"colour of object {i}", where)
        visible = entry.get("visible", True)
        if not isinstance(visible, bool):
            raise ProjectError(f"{where}: 'visible' of object {i} must be true or false")
        objects[i] = ObjectInfo(i, name, rgb, visible)  # type: ignore[arg-type]
    return tuple(objects[i] for i in sorted(objects))


def _points_json(frame_points: Mapping[int, FramePoints]) -> dict[str, dict]:
    # a hundredth of a pixel and 1e-4 of confidence are below anything a person or the engine resolves
    out: dict[str, dict] = {"reference": {}, "propagated": {}}
    for frame, fp in frame_points.items():
        entries = {str(i): [round(x, 2), round(y, 2)] + ([] if fp.reference else [round(fp.confidence_of(i), 4)])
                   for i, (x, y) in sorted(fp.points.items())}
        out["reference" if fp.reference else "propagated"][str(frame)] = entries
    return out


def project_json_text(model: AnnotationModel, folder: Path, video_hash: str, generation: int, pending: Iterable[int],
             states: Mapping[int, FrameState], propagation: Mapping[str, Any] | None,
             created: str | None) -> str:
    video = model.video
    assert video is not None
    absolute = Path(video.path).absolute()
    try:
        relative = Path(os.path.relpath(absolute, folder)).as_posix()
    except ValueError:  # another drive on Windows
        relative = str(absolute)
    by_state = {s: sorted(i for i, st in states.items() if st is s) for s in FrameState}
    data = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "created": created or _now(),
        "modified": _now(),
        "generation": generation,
        "video": {"path": relative, "absolute": str(absolute), "kind": "folder" if absolute.is_dir() else "file",
                  "hw": list(model.hw), "frames": model.num_frames, "hash": video_hash},
        "objects": [{"id": o.id, "name": o.name, "color": list(o.color), "visible": o.visible}
                    for o in model.objects],
        "frames": {"reference": by_state[FrameState.REFERENCE], "propagated": by_state[FrameState.PROPAGATED],
                   "unmarked": by_state[FrameState.EMPTY],
                   "two_keyframes": [i for i in by_state[FrameState.PROPAGATED] if model.keyframes(i) == 2]},
        "propagation": dict(propagation) if propagation is not None else None,
        "pending": sorted(pending),
        "keypoints": [{"id": k.id, "name": k.name, "color": list(k.color)} for k in model.keypoints],
        "points": _points_json(model.all_frame_points()),
        "grown": _grown_json(model.grown_pixels()),  # reference and propagated frames only: all in states
    }
    # one line per top-level key: readable, and frame lists stay one line each however long
    lines = [f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in data.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"
