"""Undo and redo of annotation edits, storing what changed rather than snapshots.

A :class:`Change` is one frame's edit: the bounding box of the pixels that changed, the old and
new pixels inside it, and the frame's old and new state (with, for a propagated frame, from how
many keyframes its labels came). An :class:`ObjectChange` is an object
added, edited or removed; a :class:`KeypointChange` the same for a keypoint name. A
:class:`PointsChange` is one frame's keypoints before and after an edit (a frame holds a handful
of points, so whole-frame snapshots cost nothing and make undo exact). A :class:`Step` groups
the changes of one user action (a brush stroke, a fill, a deletion, a point drag, a whole
propagation run) and is undone or redone as a unit.

Actions are recorded in transactions: ``txn = history.begin("Brush")``, ``txn.add(change)`` for
every edit the model reports, then ``history.commit(txn)`` or ``history.abort(txn)`` (which puts
the pixels back). Several transactions may be open at once (a stroke while a propagation run is
streaming in); each becomes its own step when committed. Qt-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from annotator.core.model.annotation import FramePoints, FrameState, KeypointInfo, ObjectInfo

Box = tuple[int, int, int, int]
"""(y0, x0, y1, x1), end exclusive, in pixels of the original resolution."""


@dataclass(frozen=True)
class Change:
    """The pixels of one frame inside ``box`` before and after an edit, and the frame state."""

    frame: int
    box: Box
    old: np.ndarray
    new: np.ndarray
    old_state: FrameState
    new_state: FrameState
    old_keyframes: int = 1
    new_keyframes: int = 1
    """From how many keyframes a propagated frame's labels came (1 or 2; ignored for other states):
    kept in the change so that undo and redo put back the timeline's two-keyframe marks too."""

    @property
    def nbytes(self) -> int:
        return self.old.nbytes + self.new.nbytes


@dataclass(frozen=True)
class ObjectChange:
    """An object before and after an edit; ``None`` before = added, ``None`` after = removed."""

    before: ObjectInfo | None
    after: ObjectInfo | None


@dataclass(frozen=True)
class KeypointChange:
    """A keypoint name before and after an edit; ``None`` before = added, ``None`` after = removed."""

    before: KeypointInfo | None
    after: KeypointInfo | None


@dataclass(frozen=True)
class PointsChange:
    """The keypoints of one frame before and after an edit (``None``: the frame had / has none)."""

    frame: int
    before: FramePoints | None
    after: FramePoints | None


AnyChange = Change | ObjectChange | KeypointChange | PointsChange
_EDITS = (Change, PointsChange)
"""Changes of one frame's annotation; the others define what the annotation is made of."""


class Applier(Protocol):
    """What the history needs from the model to put changes back."""

    def apply_change(self, change: Change, *, undo: bool) -> None: ...

    def apply_object_change(self, change: ObjectChange, *, undo: bool) -> None: ...

    def apply_keypoint_change(self, change: KeypointChange, *, undo: bool) -> None: ...

    def apply_points_change(self, change: PointsChange, *, undo: bool) -> None: ...


_APPLY_METHOD = {Change: "apply_change", ObjectChange: "apply_object_change",
                 KeypointChange: "apply_keypoint_change", PointsChange: "apply_points_change"}


def union_box(a: Box | None, b: Box) -> Box:
    """Smallest box holding both (``a`` may be None)."""
    if a is None:
        return b
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


@dataclass
class Step:
    """Everything one user action changed, in the order it happened."""

    name: str
    changes: list[AnyChange] = field(default_factory=list)

    @property
    def frames(self) -> set[int]:
        return {c.frame for c in self.changes if isinstance(c, Change)}

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.changes if isinstance(c, Change))


class Transaction:
    """An open step: collects the changes of one action until it is committed or aborted."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.changes: list[AnyChange] = []
        self.closed = False

    def add(self, change: AnyChange | None) -> None:
        """Record one change (``None``, for an edit that changed nothing, is ignored)."""
        if change is None:
            return
        if self.closed:
            raise RuntimeError(f"transaction {self.name!r} is already closed")
        self.changes.append(change)

    def __bool__(self) -> bool:
        return bool(self.changes)


def _squash(changes: list[AnyChange]) -> list[AnyChange]:
    """Merge the edits of each frame into one: a stroke is many dabs, a point drag many moves.

    Pixel changes of a frame merge over their union box: the old pixels of the union are rebuilt
    from the newest pixels by putting back each change's old pixels, newest first. Point changes
    of a frame merge into the first one's before and the last one's after. Object and keypoint
    definitions keep their place at the front (added before the edits that use them) or back
    (removed after the edits that erase them).
    """
    first_edit = next((i for i, c in enumerate(changes) if isinstance(c, _EDITS)), len(changes))
    definitions_first = changes[:first_edit]
    definitions_last = [c for c in changes[first_edit:] if not isinstance(c, _EDITS)]
    by_frame: dict[int, list[Change]] = {}
    points_by_frame: dict[int, list[PointsChange]] = {}
    for c in changes:
        if isinstance(c, Change):
            by_frame.setdefault(c.frame, []).append(c)
        elif isinstance(c, PointsChange):
            points_by_frame.setdefault(c.frame, []).append(c)
    merged: list[AnyChange] = list(definitions_first)
    for frame, group in by_frame.items():
        if len(group) == 1:
            merged.append(group[0])
            continue
        merged.append(_merge_pixels(frame, group))
    for frame, point_group in points_by_frame.items():
        if point_group[0].before != point_group[-1].after:  # a drag back to where it began is no step
            merged.append(PointsChange(frame, point_group[0].before, point_group[-1].after))
    merged.extend(definitions_last)
    return merged


def _merge_pixels(frame: int, group: list[Change]) -> _PendingChange:
    box: Box | None = None
    for c in group:
        box = union_box(box, c.box)
    assert box is not None
    y0, x0, y1, x1 = box
    new = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    for c in group:  # oldest first: later pixels win
        new[c.box[0] - y0:c.box[2] - y0, c.box[1] - x0:c.box[3] - x0] = c.new
    old = new.copy()
    for c in reversed(group):
        old[c.box[0] - y0:c.box[2] - y0, c.box[1] - x0:c.box[3] - x0] = c.old
    # pixels of the union no change touched: the same before and after (filled from the model)
    touched = np.zeros(new.shape, dtype=bool)
    for c in group:
        touched[c.box[0] - y0:c.box[2] - y0, c.box[1] - x0:c.box[3] - x0] = True
    return _PendingChange(frame, box, old, new, touched, group[0].old_state, group[-1].new_state,
                          group[0].old_keyframes, group[-1].new_keyframes)


@dataclass(frozen=True)
class _PendingChange:
    """A merged change whose untouched pixels still have to be read from the model."""

    frame: int
    box: Box
    old: np.ndarray
    new: np.ndarray
    touched: np.ndarray
    old_state: Any
    new_state: Any
    old_keyframes: int
    new_keyframes: int


class History:
    """Undo and redo stacks of :class:`Step`, bounded by a memory budget (oldest dropped first)."""

    def __init__(self, model: Applier, *, max_bytes: int = 512 * 2**20,
                 read_pixels: Callable[[int, Box], np.ndarray] | None = None) -> None:
        self.model = model
        self.max_bytes = max_bytes
        self._read = read_pixels or getattr(model, "read_box")
        self.undo_stack: list[Step] = []
        self.redo_stack: list[Step] = []
        self._listeners: list[Callable[[], None]] = []

    # ---- listening --------------------------------------------------------------------------

    def on_changed(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever what can be undone or redone changes."""
        self._listeners.append(callback)

    def _emit(self) -> None:
        for cb in list(self._listeners):
            cb()

    # ---- recording -----------------------------------------------------------------------------

    def begin(self, name: str) -> Transaction:
        """Open a transaction for one action."""
        return Transaction(name)

    def commit(self, txn: Transaction) -> Step | None:
        """Close ``txn`` and push it as one step (nothing if it changed nothing); clears redo."""
        if txn.closed:
            return None
        txn.closed = True
        if not txn.changes:
            return None
        changes: list[AnyChange] = []
        for c in _squash(txn.changes):
            if isinstance(c, _PendingChange):
                current = self._read(c.frame, c.box)
                old = np.where(c.touched, c.old, current)
                new = np.where(c.touched, c.new, current)
                c = Change(c.frame, c.box, old, new, c.old_state, c.new_state, c.old_keyframes, c.new_keyframes)
            changes.append(c)
        if not changes:
            return None
        step = Step(txn.name, changes)
        self.undo_stack.append(step)
        self.redo_stack.clear()
        self._trim()
        self._emit()
        return step

    def abort(self, txn: Transaction) -> None:
        """Close ``txn`` and put back everything it changed; it leaves no step."""
        if txn.closed:
            return
        txn.closed = True
        self._apply(txn.changes, undo=True)
        txn.changes.clear()

    def push(self, name: str, changes: list[AnyChange | None]) -> Step | None:
        """Record an action that is already complete (one call: begin, add each, commit)."""
        txn = self.begin(name)
        for c in changes:
            txn.add(c)
        return self.commit(txn)

    # ---- undo / redo ----------------------------------------------------------------------------

    @property
    def can_undo(self) -> bool:
        return bool(self.undo_stack)

    @property
    def can_redo(self) -> bool:
        return bool(self.redo_stack)

    def undo_name(self) -> str | None:
        return self.undo_stack[-1].name if self.undo_stack else None

    def redo_name(self) -> str | None:
        return self.redo_stack[-1].name if self.redo_stack else None

    def undo(self) -> Step | None:
        """Put back the state before the last step; returns it (None when there is nothing)."""
        if not self.undo_stack:
            return None
        step = self.undo_stack.pop()
        self._apply(step.changes, undo=True)
        self.redo_stack.append(step)
        self._emit()
        return step

    def redo(self) -> Step | None:
        """Do again the last undone step."""
        if not self.redo_stack:
            return None
        step = self.redo_stack.pop()
        self._apply(step.changes, undo=False)
        self.undo_stack.append(step)
        self._emit()
        return step

    def clear(self) -> None:
        self.undo_stack.clear()
        self.redo_stack.clear()
        self._emit()

    def _apply(self, changes: list[AnyChange], *, undo: bool) -> None:
        ordered = reversed(changes) if undo else iter(changes)
        for c in ordered:
            getattr(self.model, _APPLY_METHOD[type(c)])(c, undo=undo)

    def _trim(self) -> None:
        total = sum(s.nbytes for s in self.undo_stack)
        while len(self.undo_stack) > 1 and total > self.max_bytes:
            total -= self.undo_stack.pop(0).nbytes
