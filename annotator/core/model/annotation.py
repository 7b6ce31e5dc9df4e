"""The annotation model: a video, its objects, a label map and a state per frame, and events.

The model is the one place the annotation lives. Views subscribe to its events (plain callback
lists, no Qt) and write back through its setters; every setter that changes label maps returns
the :class:`~annotator.core.model.undo.Change` it made so that the caller can record it in the
:class:`~annotator.core.model.undo.History` (a brush stroke is one step, a propagation run is one step).

Label maps are kept at the video's ORIGINAL resolution (what is exported); a frame without one is
empty. Painting on a frame turns it into a reference frame: a person's work, never overwritten by
propagation. A propagated frame also records from how many keyframes its labels came
(:meth:`AnnotationModel.keyframes`: 2 when a span between two references was filled from both ends
and fused, 1 for one direction); it is part of each change, so undo and redo keep it.

Keypoints live beside the masks, with the same rules: named keypoints (like objects), and per
frame either reference points (placed by a person) or propagated points with a confidence.
Placing, moving or deleting a point makes its frame a keypoint reference (the frame's other
propagated points are accepted with it, as painting accepts the rest of a propagated mask); a
propagation run replaces propagated points and never touches a reference's. Keypoint reference
frames are independent of mask reference frames.
"""

from __future__ import annotations

import colorsys
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from annotator.core.errors import UsageError, size_text
from annotator.core.io.labels import DAVIS_PALETTE, MAX_OBJECT_ID, VOID
from annotator.core.model.points import Point, check_point_inside
from annotator.core.model.undo import Box, Change, History, KeypointChange, ObjectChange, PointsChange

if TYPE_CHECKING:  # pragma: no cover
    from annotator.core.video import VideoSource


class FrameState(enum.Enum):
    """Where a frame's label map comes from."""

    EMPTY = "empty"
    REFERENCE = "reference"
    """Painted, corrected or loaded by a person: propagation never overwrites it."""
    PROPAGATED = "propagated"


class Event:
    """A list of callbacks: ``event.connect(cb)``, ``event.emit(*args)`` calls each in order."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._callbacks: list[Callable[..., None]] = []

    def connect(self, callback: Callable[..., None]) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def disconnect(self, callback: Callable[..., None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: object) -> None:
        for cb in list(self._callbacks):
            cb(*args)


class ModelEvents:
    """The events of an :class:`AnnotationModel` and their arguments."""

    def __init__(self) -> None:
        self.video_changed = Event("video_changed")  # ()
        self.objects_changed = Event("objects_changed")  # ()
        self.labels_changed = Event("labels_changed")  # (frame, box or None = whole frame)
        self.frame_state_changed = Event("frame_state_changed")  # (frame, FrameState); also its keyframes
        self.current_frame_changed = Event("current_frame_changed")  # (frame)
        self.active_object_changed = Event("active_object_changed")  # (object id or None)
        self.keypoints_changed = Event("keypoints_changed")  # () names, colours, added or removed
        self.points_changed = Event("points_changed")  # (frame) its points or whether it is a reference
        self.active_keypoint_changed = Event("active_keypoint_changed")  # (keypoint id or None)


@dataclass(frozen=True)
class ObjectInfo:
    """One object being annotated: its id in the label maps, name, display colour, visibility."""

    id: int
    name: str
    color: tuple[int, int, int]
    visible: bool = True


@dataclass(frozen=True)
class KeypointInfo:
    """One named keypoint (e.g. "left wrist"): its id in the frames' points, name and display colour."""

    id: int
    name: str
    color: tuple[int, int, int]


@dataclass(frozen=True)
class FramePoints:
    """The keypoints of one frame. Never modified: an edit replaces the whole value (see PointsChange)."""

    points: Mapping[int, Point]
    """Keypoint id -> (x, y) in pixels of the original video."""
    reference: bool
    """Placed (or accepted) by a person; else propagated."""
    confidence: Mapping[int, float] = field(default_factory=dict)
    """Keypoint id -> confidence of a propagated point (empty for a reference: a person is sure)."""

    def confidence_of(self, keypoint_id: int) -> float:
        return 1.0 if self.reference else float(self.confidence.get(keypoint_id, 0.0))


MAX_KEYPOINT_ID = 999


def keypoint_color(keypoint_id: int) -> tuple[int, int, int]:
    """A bright colour per keypoint, neighbours far apart in hue (golden-ratio steps), unlike the dark mask palette."""
    hue = (keypoint_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 1.0)
    return round(r * 255), round(g * 255), round(b * 255)


def palette_color(object_id: int) -> tuple[int, int, int]:
    """The DAVIS palette colour of an id (id 1 is dark red)."""
    r, g, b = DAVIS_PALETTE[object_id]
    return int(r), int(g), int(b)


def mask_box(mask: np.ndarray) -> Box | None:
    """Bounding box (y0, x0, y1, x1) of the True pixels of a boolean mask, None if there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


class AnnotationModel:
    """Objects and per-frame label maps of one video; see the module docstring."""

    def __init__(self, video: VideoSource | None = None) -> None:
        self.events = ModelEvents()
        self.history = History(self)
        self.video: VideoSource | None = None
        self._labels: dict[int, np.ndarray] = {}
        self._states: dict[int, FrameState] = {}
        self._two_keyframes: set[int] = set()  # propagated frames fused from both ends of a span
        self._objects: dict[int, ObjectInfo] = {}
        self._ids_in_frame: dict[int, frozenset[int]] = {}  # lazily recomputed per frame
        # frame -> (box, mask in it) of the pixels the colour grow added to its propagated map, while the
        # map is as propagation left it: what an acceptance does not teach (teaching_references)
        self._grown: dict[int, tuple[Box, np.ndarray]] = {}
        self._current = 0
        self._active: int | None = None
        self._keypoints: dict[int, KeypointInfo] = {}
        self._points: dict[int, FramePoints] = {}
        self._active_keypoint: int | None = None
        if video is not None:
            self.set_video(video)

    # ---- video ------------------------------------------------------------------------------

    def set_video(self, video: VideoSource, references: Mapping[int, np.ndarray] | None = None) -> None:
        """Start annotating ``video`` (forgets everything), optionally with loaded reference maps."""
        self.video = video
        self._labels.clear()
        self._grown.clear()
        self._states.clear()
        self._two_keyframes.clear()
        self._ids_in_frame.clear()
        self._objects.clear()
        self._current = 0
        self._active = None
        self._keypoints.clear()
        self._points.clear()
        self._active_keypoint = None
        for frame, labels in sorted((references or {}).items()):
            self._check_frame(frame)
            labels = self._check_labels(labels)
            self._labels[frame] = labels.copy()
            self._states[frame] = FrameState.REFERENCE
        ids = sorted({i for f in self._labels for i in self.ids_in_frame(f)})
        for i in ids:
            self._objects[i] = ObjectInfo(i, f"object {i}", palette_color(i))
        self._active = ids[0] if ids else None
        self.history.clear()
        self.events.video_changed.emit()
        self.events.objects_changed.emit()
        self.events.active_object_changed.emit(self._active)
        self.events.keypoints_changed.emit()
        self.events.active_keypoint_changed.emit(None)
        self.events.current_frame_changed.emit(0)

    @property
    def num_frames(self) -> int:
        return 0 if self.video is None else len(self.video)

    @property
    def hw(self) -> tuple[int, int]:
        """(height, width) of the original frames and of every label map."""
        if self.video is None:
            raise UsageError("no video is open")
        return tuple(self.video.hw)  # type: ignore[return-value]

    # ---- current frame and active object ---------------------------------------------------------

    @property
    def current_frame(self) -> int:
        return self._current

    def set_current_frame(self, frame: int) -> None:
        frame = max(0, min(int(frame), self.num_frames - 1))
        if frame != self._current:
            self._current = frame
            self.events.current_frame_changed.emit(frame)

    @property
    def active_object(self) -> int | None:
        return self._active

    def set_active_object(self, object_id: int | None) -> None:
        if object_id is not None and object_id not in self._objects:
            raise UsageError(f"there is no object {object_id}")
        if object_id != self._active:
            self._active = object_id
            self.events.active_object_changed.emit(object_id)

    # ---- objects -------------------------------------------------------------------------------

    @property
    def objects(self) -> list[ObjectInfo]:
        """Objects in id order."""
        return [self._objects[i] for i in sorted(self._objects)]

    def object(self, object_id: int) -> ObjectInfo:
        try:
            return self._objects[object_id]
        except KeyError:
            raise UsageError(f"there is no object {object_id}") from None

    def next_free_id(self) -> int:
        for i in range(1, MAX_OBJECT_ID + 1):
            if i not in self._objects:
                return i
        raise UsageError(f"at most {MAX_OBJECT_ID} objects can be annotated")

    def add_object(self, name: str | None = None, color: tuple[int, int, int] | None = None, *,
                   object_id: int | None = None) -> ObjectChange:
        """Add an object (lowest free id, in DAVIS palette order, unless given) and make it active."""
        if object_id is not None and (object_id in self._objects or not 1 <= object_id <= MAX_OBJECT_ID):
            raise UsageError(f"object id {object_id} is taken or outside 1..{MAX_OBJECT_ID}")
        i = self.next_free_id() if object_id is None else int(object_id)
        info = ObjectInfo(i, name or f"object {i}", color or palette_color(i))
        change = ObjectChange(None, info)
        self.apply_object_change(change, undo=False)
        self.set_active_object(i)
        return change

    def update_object(self, object_id: int, *, name: str | None = None,
                      color: tuple[int, int, int] | None = None, visible: bool | None = None) -> ObjectChange | None:
        """Rename, recolour, hide or show an object."""
        old = self.object(object_id)
        new = replace(old, name=old.name if name is None else name,
                      color=old.color if color is None else tuple(int(c) for c in color),
                      visible=old.visible if visible is None else bool(visible))
        if new == old:
            return None
        change = ObjectChange(old, new)
        self.apply_object_change(change, undo=False)
        return change

    def remove_object(self, object_id: int) -> list[Change | ObjectChange]:
        """Erase an object from every frame and forget it; the changes, in order, for the history."""
        info = self.object(object_id)
        changes: list[Change | ObjectChange] = []
        for frame in sorted(self._labels):
            if object_id in self.ids_in_frame(frame):
                c = self.paint(frame, self._labels[frame] == object_id, 0, make_reference=False)
                if c is not None:
                    changes.append(c)
        change = ObjectChange(info, None)
        self.apply_object_change(change, undo=False)
        changes.append(change)
        if self._active == object_id:
            self.set_active_object(next(iter(sorted(self._objects)), None))
        return changes

    def apply_object_change(self, change: ObjectChange, *, undo: bool) -> None:
        """Put an object as it was (undo) or as it became (redo); emits ``objects_changed``."""
        before, after = (change.after, change.before) if undo else (change.before, change.after)
        if before is not None:
            self._objects.pop(before.id, None)
        if after is not None:
            self._objects[after.id] = after
        if self._active is not None and self._active not in self._objects:
            self._active = None
            self.events.active_object_changed.emit(None)
        self.events.objects_changed.emit()

    # ---- label maps and frame states ---------------------------------------------------------------

    def labels(self, frame: int) -> np.ndarray:
        """The label map of ``frame`` (HxW uint8, original resolution). Do not modify it: use the setters."""
        self._check_frame(frame)
        labels = self._labels.get(frame)
        if labels is None:
            labels = np.zeros(self.hw, dtype=np.uint8)
        view = labels.view()
        view.flags.writeable = False
        return view

    def has_labels(self, frame: int) -> bool:
        return frame in self._labels

    def read_box(self, frame: int, box: Box) -> np.ndarray:
        """A copy of the pixels of ``frame`` inside ``box``."""
        y0, x0, y1, x1 = box
        return np.array(self.labels(frame)[y0:y1, x0:x1])

    def frame_state(self, frame: int) -> FrameState:
        return self._states.get(frame, FrameState.EMPTY)

    def frame_states(self) -> list[FrameState]:
        return [self._states.get(i, FrameState.EMPTY) for i in range(self.num_frames)]

    def reference_frames(self) -> dict[int, np.ndarray]:
        """Frame index -> label map of every reference frame (read-only views)."""
        return {i: self.labels(i) for i, s in sorted(self._states.items()) if s is FrameState.REFERENCE}

    def teaching_references(self) -> dict[int, np.ndarray]:
        """Frame index -> the label map each reference frame hands propagation: its own, except for a
        frame accepted as propagated (R) whose masks the colour grow enlarged
        (``PropagationParams.colour_grow``): that one teaches its map before the grow, as the engine's
        own frames do (:attr:`~annotator.core.engine.propagation.FrameResult.taught`). Kept while the
        frame's pixels are as propagation left them (any edit, undo included, drops it); a project keeps
        it (:meth:`grown_pixels`, :meth:`restore_grown`)."""
        out: dict[int, np.ndarray] = {}
        for frame, labels in self.reference_frames().items():
            grown = self._grown.get(frame)
            if grown is not None:
                (y0, x0, y1, x1), added = grown
                labels = np.array(labels)
                labels[y0:y1, x0:x1][added] = 0
                labels.flags.writeable = False
            out[frame] = labels
        return out

    def grown_pixels(self) -> dict[int, tuple[Box, np.ndarray]]:
        """Frame -> (box, mask in it) of the pixels the colour grow added to each reference or propagated
        frame still as propagation left it (copies): what :meth:`teaching_references` takes away."""
        return {frame: (box, added.copy()) for frame, (box, added) in sorted(self._grown.items())
                if self._states.get(frame) in (FrameState.REFERENCE, FrameState.PROPAGATED)}

    def restore_grown(self, frame: int, box: Box, added: np.ndarray) -> bool:
        """Remember again (a project being opened) that the colour grow added ``added`` (a bool mask of
        the box ``box`` = (y0, x0, y1, x1)) to ``frame``. Kept only where it still fits the frame: a
        reference or propagated frame, the box inside it, every added pixel an object's; returns whether
        it was kept (a mask edited outside the app, say, makes it meaningless, and then it is not)."""
        self._check_frame(frame)
        y0, x0, y1, x1 = box
        h, w = self.hw
        added = np.asarray(added, dtype=bool)
        if (self._states.get(frame) not in (FrameState.REFERENCE, FrameState.PROPAGATED)
                or not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w) or added.shape != (y1 - y0, x1 - x0)
                or not added.any()):
            return False
        labels = self._labels.get(frame)
        pixels = labels[y0:y1, x0:x1][added] if labels is not None else None
        if pixels is None or not ((pixels != 0) & (pixels != VOID)).all():
            return False
        self._grown[frame] = ((y0, x0, y1, x1), added.copy())
        return True

    def is_reference(self, frame: int) -> bool:
        return self._states.get(frame) is FrameState.REFERENCE

    def keyframes(self, frame: int) -> int:
        """From how many keyframes the labels of ``frame`` came: 2 = fused from both ends of a span,
        1 = propagated one way, 0 = not propagated (a reference or an empty frame)."""
        if self._states.get(frame) is not FrameState.PROPAGATED:
            return 0
        return 2 if frame in self._two_keyframes else 1

    def _raw_keyframes(self, frame: int) -> int:
        return 2 if frame in self._two_keyframes else 1

    def set_frame_state(self, frame: int, state: FrameState, keyframes: int | None = None) -> Change | None:
        """Change only the state of a frame (e.g. demote a reference to propagated), and for a
        propagated one from how many keyframes it came (None: as it was)."""
        old_state = self.frame_state(frame)
        old_keyframes = self._raw_keyframes(frame)
        new_keyframes = old_keyframes if keyframes is None else keyframes
        if state is old_state and (state is not FrameState.PROPAGATED or new_keyframes == old_keyframes):
            return None
        empty = np.zeros((0, 0), dtype=np.uint8)
        change = Change(frame, (0, 0, 0, 0), empty, empty, old_state, state, old_keyframes, new_keyframes)
        self.apply_change(change, undo=False)
        return change

    def paint(self, frame: int, mask: np.ndarray, value: int, *, origin: tuple[int, int] = (0, 0),
              only: int | None = None, make_reference: bool = True) -> Change | None:
        """Set the pixels where ``mask`` is True to ``value`` (an object id, 0 to erase, 255 void).

        ``mask`` may cover only part of the frame, its top-left corner at ``origin`` (y, x): a
        brush dab touches a small box, never the whole frame. ``only`` restricts the edit to
        pixels currently holding that id (erase one object). Painting makes the frame a
        reference unless ``make_reference`` is False. Returns the change (None if nothing changed).
        """
        self._check_frame(frame)
        if not (value == 0 or value == VOID or value in self._objects):
            raise UsageError(f"cannot paint with id {value}: add the object first")
        h, w = self.hw
        oy, ox = origin
        y0, x0 = max(oy, 0), max(ox, 0)
        y1, x1 = min(oy + mask.shape[0], h), min(ox + mask.shape[1], w)
        if y1 <= y0 or x1 <= x0:
            return None
        sub = mask[y0 - oy:y1 - oy, x0 - ox:x1 - ox].astype(bool, copy=False)
        current = self._labels.get(frame)
        region = current[y0:y1, x0:x1] if current is not None else np.zeros((y1 - y0, x1 - x0), np.uint8)
        sub = sub & (region != value)
        if only is not None:
            sub &= region == only
        box = mask_box(sub)
        old_state = self.frame_state(frame)
        new_state = FrameState.REFERENCE if make_reference else old_state
        if box is None:
            return self.set_frame_state(frame, new_state) if make_reference else None
        by0, bx0, by1, bx1 = box
        old = region[by0:by1, bx0:bx1].copy()
        new = np.where(sub[by0:by1, bx0:bx1], np.uint8(value), old)
        keyframes = self._raw_keyframes(frame)
        change = Change(frame, (y0 + by0, x0 + bx0, y0 + by1, x0 + bx1), old, new, old_state, new_state,
                        keyframes, keyframes)
        self.apply_change(change, undo=False)
        return change

    def set_labels(self, frame: int, labels: np.ndarray, state: FrameState, keyframes: int = 1,
                   taught: np.ndarray | None = None) -> Change | None:
        """Replace the whole label map of ``frame`` (a propagation result, a loaded mask, a clear);
        ``keyframes`` says from how many keyframes a propagated map came (see :meth:`keyframes`);
        ``taught``, a propagated map's labels before the colour grow (``FrameResult.taught``), is what the
        frame teaches if it is accepted as a reference (:meth:`teaching_references`)."""
        self._check_frame(frame)
        labels = self._check_labels(labels)
        old_labels = self.labels(frame)
        diff = mask_box(labels != old_labels)
        old_state = self.frame_state(frame)
        if diff is None:
            change = self.set_frame_state(frame, state, keyframes)
        else:
            y0, x0, y1, x1 = diff
            change = Change(frame, diff, np.array(old_labels[y0:y1, x0:x1]), np.array(labels[y0:y1, x0:x1]),
                            old_state, state, self._raw_keyframes(frame), keyframes)
            self.apply_change(change, undo=False)
        self._grown.pop(frame, None)
        if taught is not None and state is FrameState.PROPAGATED:
            taught = self._check_labels(taught)
            added = (labels != taught) & (taught == 0)  # the grow only turns background into an object
            box = mask_box(added)
            if box is not None:
                y0, x0, y1, x1 = box
                self._grown[frame] = (box, added[y0:y1, x0:x1].copy())
        return change

    def clear_frame(self, frame: int) -> Change | None:
        """Remove every label of ``frame`` and mark it empty."""
        return self.set_labels(frame, np.zeros(self.hw, np.uint8), FrameState.EMPTY)

    def apply_change(self, change: Change, *, undo: bool) -> None:
        """Write the old (undo) or new pixels of a change and its state; emits the events."""
        pixels, state = (change.old, change.old_state) if undo else (change.new, change.new_state)
        keyframes = change.old_keyframes if undo else change.new_keyframes
        frame = change.frame
        y0, x0, y1, x1 = change.box
        if y1 > y0 and x1 > x0:
            labels = self._labels.get(frame)
            if labels is None:
                labels = self._labels[frame] = np.zeros(self.hw, dtype=np.uint8)
            labels[y0:y1, x0:x1] = pixels
            self._ids_in_frame.pop(frame, None)
            self._grown.pop(frame, None)  # no longer the map the grow was measured on
        old_state, old_keyframes = self.frame_state(frame), self.keyframes(frame)
        if state is FrameState.EMPTY:
            self._states.pop(frame, None)
        else:
            self._states[frame] = state
        if state is FrameState.PROPAGATED and keyframes >= 2:
            self._two_keyframes.add(frame)
        else:  # only propagated frames carry the mark: a reference made of a fused frame loses it
            self._two_keyframes.discard(frame)
        if y1 > y0 and x1 > x0:
            self.events.labels_changed.emit(frame, change.box)
        if state is not old_state or self.keyframes(frame) != old_keyframes:
            self.events.frame_state_changed.emit(frame, state)

    # ---- keypoint names ------------------------------------------------------------------------

    @property
    def keypoints(self) -> list[KeypointInfo]:
        """Keypoints in id order."""
        return [self._keypoints[i] for i in sorted(self._keypoints)]

    def keypoint(self, keypoint_id: int) -> KeypointInfo:
        try:
            return self._keypoints[keypoint_id]
        except KeyError:
            raise UsageError(f"there is no keypoint {keypoint_id}: add it first") from None

    @property
    def active_keypoint(self) -> int | None:
        """The keypoint a click places."""
        return self._active_keypoint

    def set_active_keypoint(self, keypoint_id: int | None) -> None:
        if keypoint_id is not None:
            self.keypoint(keypoint_id)
        if keypoint_id != self._active_keypoint:
            self._active_keypoint = keypoint_id
            self.events.active_keypoint_changed.emit(keypoint_id)

    def add_keypoint(self, name: str | None = None, color: tuple[int, int, int] | None = None, *,
                     keypoint_id: int | None = None) -> KeypointChange:
        """Add a keypoint (lowest free id unless given) and make it active; names are unique."""
        if keypoint_id is None:
            keypoint_id = next((i for i in range(1, MAX_KEYPOINT_ID + 1) if i not in self._keypoints), None)
            if keypoint_id is None:
                raise UsageError(f"at most {MAX_KEYPOINT_ID} keypoints can be annotated")
        elif keypoint_id in self._keypoints or not 1 <= keypoint_id <= MAX_KEYPOINT_ID:
            raise UsageError(f"keypoint id {keypoint_id} is taken or outside 1..{MAX_KEYPOINT_ID}")
        name = self._free_keypoint_name(name or f"point {keypoint_id}")
        info = KeypointInfo(int(keypoint_id), name, tuple(color) if color else keypoint_color(keypoint_id))
        change = KeypointChange(None, info)
        self.apply_keypoint_change(change, undo=False)
        self.set_active_keypoint(info.id)
        return change

    def update_keypoint(self, keypoint_id: int, *, name: str | None = None,
                        color: tuple[int, int, int] | None = None) -> KeypointChange | None:
        """Rename or recolour a keypoint; a name another keypoint has is refused (exports key points by name)."""
        old = self.keypoint(keypoint_id)
        if name is not None:
            name = name.strip()
            if not name:
                raise UsageError("a keypoint needs a name")
            if any(k.name == name and k.id != keypoint_id for k in self._keypoints.values()):
                raise UsageError(f"there is already a keypoint named {name!r}")
        new = replace(old, name=old.name if name is None else name,
                      color=old.color if color is None else tuple(int(c) for c in color))
        if new == old:
            return None
        change = KeypointChange(old, new)
        self.apply_keypoint_change(change, undo=False)
        return change

    def remove_keypoint(self, keypoint_id: int) -> list[PointsChange | KeypointChange]:
        """Delete a keypoint from every frame and forget it; the changes, in order, for the history."""
        info = self.keypoint(keypoint_id)
        changes: list[PointsChange | KeypointChange] = []
        for frame in sorted(self._points):
            old = self._points[frame]
            if keypoint_id in old.points:
                changes.append(self._set_frame_points(frame, self._without(old, keypoint_id)))
        change = KeypointChange(info, None)
        self.apply_keypoint_change(change, undo=False)
        changes.append(change)
        if self._active_keypoint is None and self._keypoints:
            self.set_active_keypoint(min(self._keypoints))
        return changes

    def apply_keypoint_change(self, change: KeypointChange, *, undo: bool) -> None:
        """Put a keypoint as it was (undo) or as it became (redo); emits ``keypoints_changed``."""
        before, after = (change.after, change.before) if undo else (change.before, change.after)
        if before is not None:
            self._keypoints.pop(before.id, None)
        if after is not None:
            self._keypoints[after.id] = after
        if self._active_keypoint is not None and self._active_keypoint not in self._keypoints:
            self._active_keypoint = None
            self.events.active_keypoint_changed.emit(None)
        self.events.keypoints_changed.emit()

    def _free_keypoint_name(self, name: str) -> str:
        taken = {k.name for k in self._keypoints.values()}
        if name not in taken:
            return name
        return next(f"{name} {n}" for n in range(2, MAX_KEYPOINT_ID + 2) if f"{name} {n}" not in taken)

    # ---- points of frames ------------------------------------------------------------------------

    def frame_points(self, frame: int) -> FramePoints | None:
        """The keypoints of ``frame`` (None when it has none)."""
        self._check_frame(frame)
        return self._points.get(frame)

    def is_keypoint_reference(self, frame: int) -> bool:
        fp = self._points.get(frame)
        return fp is not None and fp.reference

    def keypoint_references(self) -> dict[int, dict[int, Point]]:
        """Frame -> keypoint id -> (x, y) of every keypoint reference frame (copies: what a run starts from)."""
        return {f: dict(fp.points) for f, fp in sorted(self._points.items()) if fp.reference}

    def all_frame_points(self) -> dict[int, FramePoints]:
        """Frame -> its keypoints, every frame that has some (values are immutable)."""
        return dict(sorted(self._points.items()))

    def place_point(self, frame: int, keypoint_id: int, point: Point) -> PointsChange | None:
        """Put keypoint ``keypoint_id`` at ``point`` on ``frame`` (place or move); the frame becomes a reference."""
        self._check_frame(frame)
        info = self.keypoint(keypoint_id)
        point = (float(point[0]), float(point[1]))
        check_point_inside(f"keypoint {info.name!r}", point, self.hw)
        old = self._points.get(frame)
        points = dict(old.points) if old is not None else {}
        points[keypoint_id] = point
        return self._set_frame_points(frame, FramePoints(points, reference=True))

    def delete_point(self, frame: int, keypoint_id: int) -> PointsChange | None:
        """Remove a keypoint from ``frame`` (None if it was not there).

        The frame's other points become its reference (a person looked at this frame).
        """
        self._check_frame(frame)
        self.keypoint(keypoint_id)
        old = self._points.get(frame)
        if old is None or keypoint_id not in old.points:
            return None
        return self._set_frame_points(frame, self._without(old, keypoint_id, reference=True))

    def set_propagated_points(self, frame: int, points: Mapping[int, Point],
                              confidence: Mapping[int, float]) -> PointsChange | None:
        """A propagation result for ``frame``; ignored (None) on a keypoint reference, a person's work."""
        self._check_frame(frame)
        if self.is_keypoint_reference(frame):
            return None
        unknown = sorted(set(points) - set(self._keypoints))
        if unknown:
            raise UsageError(f"there is no keypoint {unknown[0]}: add it first")
        for i, p in points.items():
            check_point_inside(f"keypoint {self._keypoints[i].name!r}", p, self.hw)
        clean = {int(i): (float(p[0]), float(p[1])) for i, p in points.items()}
        return self._set_frame_points(frame, FramePoints(clean, reference=False,
                                                         confidence={int(i): float(confidence.get(i, 0.0))
                                                                     for i in clean}) if clean else None)

    def load_keypoints(self, keypoints: Iterable[KeypointInfo], frame_points: Mapping[int, FramePoints]) -> None:
        """Replace every keypoint and point at once (opening a project); not an edit: no history."""
        for frame in frame_points:
            self._check_frame(frame)
        self._keypoints = {k.id: k for k in keypoints}
        self._points = {f: fp for f, fp in frame_points.items() if fp.points or fp.reference}
        self._active_keypoint = min(self._keypoints) if self._keypoints else None
        self.events.keypoints_changed.emit()
        self.events.active_keypoint_changed.emit(self._active_keypoint)
        for frame in sorted(self._points):
            self.events.points_changed.emit(frame)

    def apply_points_change(self, change: PointsChange, *, undo: bool) -> None:
        """Put a frame's points as they were (undo) or became (redo); emits ``points_changed``."""
        value = change.before if undo else change.after
        if value is None:
            self._points.pop(change.frame, None)
        else:
            self._points[change.frame] = value
        self.events.points_changed.emit(change.frame)

    def _set_frame_points(self, frame: int, new: FramePoints | None) -> PointsChange | None:
        old = self._points.get(frame)
        if new == old:
            return None
        change = PointsChange(frame, old, new)
        self.apply_points_change(change, undo=False)
        return change

    @staticmethod
    def _without(old: FramePoints, keypoint_id: int, *, reference: bool | None = None) -> FramePoints | None:
        """``old`` less one point; None when none is left (a frame without points is no reference)."""
        points = {i: p for i, p in old.points.items() if i != keypoint_id}
        if not points:
            return None
        keep_reference = old.reference if reference is None else reference
        confidence = {} if keep_reference else {i: c for i, c in old.confidence.items() if i in points}
        return FramePoints(points, keep_reference, confidence)

    # ---- statistics ---------------------------------------------------------------------------

    def ids_in_frame(self, frame: int) -> frozenset[int]:
        """Object ids present in a frame's label map (cached until the frame changes)."""
        ids = self._ids_in_frame.get(frame)
        if ids is None:
            labels = self._labels.get(frame)
            if labels is None:
                ids = frozenset()
            else:
                present = np.flatnonzero(np.bincount(labels.ravel(), minlength=256))
                ids = frozenset(int(i) for i in present if 0 < i < VOID)
            self._ids_in_frame[frame] = ids
        return ids

    def object_frame_counts(self) -> dict[int, int]:
        """Object id -> number of frames where it appears (every known object, 0 included)."""
        counts = {i: 0 for i in self._objects}
        for frame in self._labels:
            for i in self.ids_in_frame(frame):
                if i in counts:
                    counts[i] += 1
        return counts

    def label_ids(self) -> tuple[int, ...]:
        """Background then every object id, the label channels of a propagation run."""
        ids = set(self._objects)
        for frame in self._labels:
            ids |= self.ids_in_frame(frame)
        return (0, *sorted(ids))

    def frames_with_labels(self) -> Iterable[int]:
        return sorted(f for f in self._labels if self.frame_state(f) is not FrameState.EMPTY or self.ids_in_frame(f))

    # ---- checks ------------------------------------------------------------------------------

    def _check_frame(self, frame: int) -> None:
        if self.video is None:
            raise UsageError("no video is open")
        if not 0 <= frame < self.num_frames:
            raise UsageError(f"frame {frame} is outside the video (frames 0..{self.num_frames - 1})")

    def _check_labels(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.dtype != np.uint8 or labels.shape != self.hw:
            got = size_text(labels.shape) if labels.ndim == 2 else f"shape {labels.shape}"
            raise UsageError(f"a label map must be {size_text(self.hw)} uint8, got {got} {labels.dtype}")
        return labels
