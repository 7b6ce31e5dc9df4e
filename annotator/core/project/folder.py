"""Annotation projects on disk: a folder with a versioned ``project.json`` and DAVIS mask PNGs.

Layout (format version 2)::

    <project>/project.json         the index: video, objects, frame states; written LAST
    <project>/masks/00000.png      label map of every stored frame (DAVIS indexed PNG)
    <project>/.pending/<gen>/      masks of save number <gen> until they are moved into masks/

``project.json`` holds the video's path relative to the project and absolute, its size, frame
count and content hash (:func:`annotator.core.video.hash_video`), the objects (id, name, colour,
visibility), which frames are references, propagated, or labelled without a state, the keypoints
(names) and every frame's points (a few numbers per frame: they live in ``project.json`` itself and
so are saved atomically with it), the propagation settings last used, timestamps and a save
counter (``generation``).

Why ``.pending``: several PNGs and one JSON cannot be replaced in one atomic step. A save writes
the changed masks (each atomically) into ``.pending/<gen>/``, then ``project.json`` naming them as
pending (the commit point, atomic), then moves them into ``masks/``. A kill before the commit
leaves the previous ``project.json`` and ``masks/`` untouched; a kill after it leaves files that
the new ``project.json`` points to (a pending file wins over ``masks/`` until it is moved). Opening
never writes; the next save finishes any moves.

Saving writes only the frames a :class:`ChangeTracker` saw change since the last save to the
same folder (all frames for a first save or a "save as"). Qt-free.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from annotator.core.model.annotation import AnnotationModel, FrameState
from annotator.core.io.atomic import atomic_write_text
from annotator.core.errors import ProjectError, SaveError, UsageError, VideoError, read_bytes, size_text
from annotator.core.io.labels import read_mask, write_mask
from annotator.core.project.format import (FORMAT_NAME, FORMAT_VERSION, PROJECT_FILE, ProjectData, VideoRecord, migrate,
                                         parse_project, project_json_text)
from annotator.core.video import VideoSource, hash_video, open_video

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "PROJECT_FILE", "MASKS_DIR", "ChangeTracker", "ProjectContent", "ProjectData",
    "SaveResult", "VideoRecord", "apply_project", "is_project_folder", "load_project", "migrate",
    "open_project", "parse_project", "project_json_text", "read_project", "read_project_file", "save_project",
]

MASKS_DIR = "masks"
PENDING_DIR = ".pending"
# What a first save killed before its commit point leaves in a folder: files of .pending/<gen>/
# (masks, or the temp files of their atomic writes). Nothing else may be there (see _check_target).
_PENDING_LEFTOVER = re.compile(r"\d+/(\d{5}\.png|\..*\.tmp)")
_INDEX_TEMP = re.compile(rf"\.{re.escape(PROJECT_FILE)}\..*\.tmp")

LocateVideo = Callable[["VideoRecord"], "str | os.PathLike[str] | None"]
ConfirmMismatch = Callable[[Path], bool]


# --------------------------------------------------------------------------------------------- data


@dataclass
class ProjectContent:
    """A project read from disk, ready to be put into a model by :func:`apply_project`."""

    folder: Path
    data: ProjectData
    video: VideoSource | None
    video_hash: str | None
    labels: dict[int, np.ndarray]
    relocated: bool = False
    """True when the video was found somewhere else than the project says (save to record it)."""


@dataclass(frozen=True)
class SaveResult:
    folder: Path
    generation: int
    frames_written: int
    video_hash: str


# --------------------------------------------------------------------------------------------- changes


class ChangeTracker:
    """Remembers which frames of a model changed since the last save to ``base`` (folder, generation).

    It listens to the model's events. ``dirty`` says whether anything was edited since the last
    save or load; a save to a folder other than ``base`` always writes every frame. Opening
    another video forgets the base (nothing edited yet); ``mark_all`` also makes it dirty.
    """

    def __init__(self, model: AnnotationModel, base: tuple[Path, int] | None = None) -> None:
        self.model = model
        self.frames: set[int] = set()
        self.meta_changed = False
        self.points_changed = False
        self.everything = False
        # objects and keypoints as last saved: opening a video announces them too, which is no edit
        self._saved_objects = model.objects
        self._saved_keypoints = model.keypoints
        self.base: tuple[Path, int] | None = (Path(base[0]).absolute(), int(base[1])) if base else None
        for event, listener in self._listeners():
            event.connect(listener)

    def _listeners(self) -> tuple:
        """(model event, method) pairs: connected by the constructor, disconnected by :meth:`close`."""
        ev = self.model.events
        return ((ev.labels_changed, self._on_frame), (ev.frame_state_changed, self._on_frame),
                (ev.objects_changed, self._on_meta), (ev.keypoints_changed, self._on_meta),
                (ev.points_changed, self._on_points), (ev.video_changed, self._on_video))

    @property
    def dirty(self) -> bool:
        return bool(self.frames) or self.meta_changed or self.points_changed or self.everything

    def _on_frame(self, frame: int, *_args: object) -> None:
        self.frames.add(int(frame))

    def _on_meta(self) -> None:
        self.meta_changed = (self.model.objects != self._saved_objects
                             or self.model.keypoints != self._saved_keypoints)

    def _on_points(self, _frame: int) -> None:
        self.points_changed = True  # points are in project.json, which every save rewrites whole

    def _on_video(self) -> None:
        self.base = None
        self.frames.clear()
        self.meta_changed = self.points_changed = self.everything = False
        self._saved_objects = self.model.objects
        self._saved_keypoints = self.model.keypoints

    def mark_all(self) -> None:
        """Everything is unsaved: the next save writes every frame."""
        self.base = None
        self.frames.clear()
        self.everything = True

    def saved(self, folder: Path, generation: int) -> None:
        self.frames.clear()
        self.meta_changed = self.points_changed = self.everything = False
        self._saved_objects = self.model.objects
        self._saved_keypoints = self.model.keypoints
        self.base = (Path(folder).absolute(), int(generation))

    def close(self) -> None:
        for event, listener in self._listeners():
            event.disconnect(listener)


# --------------------------------------------------------------------------------------------- reading


def is_project_folder(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / PROJECT_FILE).is_file()


def read_project_file(folder: str | os.PathLike[str]) -> ProjectData:
    """The validated ``project.json`` of ``folder``; `ProjectError` when missing or bad."""
    path = Path(folder) / PROJECT_FILE
    raw = read_bytes(path, ProjectError, "project file",
                     missing=f"{folder} is not an annotation project (no {PROJECT_FILE})")
    return parse_project(raw, str(path))


def _mask_path(folder: Path, data: ProjectData, frame: int) -> Path:
    if frame in data.pending:
        pending = folder / PENDING_DIR / str(data.generation) / f"{frame:05d}.png"
        if pending.is_file():
            return pending
    return folder / MASKS_DIR / f"{frame:05d}.png"


def _find_video(folder: Path, record: VideoRecord, locate: LocateVideo | None) -> tuple[Path, bool]:
    relative = Path(record.path)
    first = relative if relative.is_absolute() else Path(os.path.normpath(folder / relative))
    candidates = [first, Path(record.absolute)]
    for candidate in candidates:
        if candidate.exists():
            return candidate, candidate != candidates[0] and not relative.is_absolute()
    if locate is not None:
        chosen = locate(record)
        if chosen:
            chosen = Path(chosen)
            if not chosen.exists():
                raise ProjectError(f"{chosen} does not exist")
            return chosen, True
    raise ProjectError(f"the video of {folder} is missing: not at {candidates[0]} nor at {record.absolute}")


def read_project(folder: str | os.PathLike[str], *, locate_video: LocateVideo | None = None,
                 confirm_mismatch: ConfirmMismatch | None = None, with_video: bool = True) -> ProjectContent:
    """Read a project: its index, its video (unless ``with_video`` is False) and every stored mask.

    A moved video is looked for at the relative path, then the absolute one, then through
    ``locate_video(record)`` (a file dialog in the GUI). A video whose content hash differs from
    the saved one is refused unless ``confirm_mismatch(path)`` says yes. Nothing is written.
    """
    folder = Path(folder).absolute()
    data = read_project_file(folder)
    video = None
    actual_hash = data.video.hash
    relocated = False
    if with_video:
        path, relocated = _find_video(folder, data.video, locate_video)
        video = open_video(path)
        try:
            actual_hash = hash_video(video)
            if data.video.hash is not None and actual_hash != data.video.hash:
                if confirm_mismatch is None or not confirm_mismatch(path):
                    raise ProjectError(f"{path} is not the video this project was made on (its content differs)")
            if tuple(video.hw) != data.video.hw:
                raise ProjectError(f"{path} is {size_text(video.hw)} but the project's masks are "
                                   f"{size_text(data.video.hw)}")
            last = max([*data.states, *data.points], default=-1)
            if last >= len(video):
                raise ProjectError(f"the project has an annotation for frame {last} but {path.name} "
                                   f"has {len(video)} frames")
            labels = _read_masks(folder, data)
        except BaseException:
            video.close()
            raise
    else:
        labels = _read_masks(folder, data)
    return ProjectContent(folder, data, video, actual_hash, labels, relocated)


def _read_masks(folder: Path, data: ProjectData) -> dict[int, np.ndarray]:
    max_id = max((o.id for o in data.objects), default=0)
    return {i: read_mask(_mask_path(folder, data, i), expected_hw=data.video.hw, max_id=max_id)
            for i in sorted(data.states)}


def apply_project(model: AnnotationModel, content: ProjectContent) -> None:
    """Replace the model's video and annotation with a project read by :func:`read_project`."""
    if content.video is None:
        raise UsageError("the project was read without its video")
    data = content.data
    refs = {i: lab for i, lab in content.labels.items() if data.states[i] is FrameState.REFERENCE}
    model.set_video(content.video, refs)
    present = {o.id for o in model.objects}
    for obj in data.objects:
        if obj.id in present:
            model.update_object(obj.id, name=obj.name, color=obj.color, visible=obj.visible)
        else:
            model.add_object(obj.name, obj.color, object_id=obj.id)
            if not obj.visible:
                model.update_object(obj.id, visible=False)
    for i, lab in content.labels.items():
        state = data.states[i]
        if state is not FrameState.REFERENCE:
            model.set_labels(i, lab, state, 2 if i in data.two_keyframes else 1)
    for i, (box, added) in data.grown.items():  # after every set_labels, which forgets it
        model.restore_grown(i, box, added)
    model.load_keypoints(data.keypoints, data.points)
    model.history.clear()
    model.set_active_object(data.objects[0].id if data.objects else (model.objects[0].id if model.objects else None))


def load_project(folder: str | os.PathLike[str], model: AnnotationModel, **kwargs: Any) -> ProjectContent:
    """:func:`read_project` then :func:`apply_project`; the model is untouched when reading fails."""
    content = read_project(folder, **kwargs)
    apply_project(model, content)
    return content


def open_project(folder: str | os.PathLike[str], locate_video: LocateVideo | None = None, *,
                 confirm_mismatch: ConfirmMismatch | None = None) -> AnnotationModel:
    """A new model holding the project in ``folder``."""
    model = AnnotationModel()
    load_project(folder, model, locate_video=locate_video, confirm_mismatch=confirm_mismatch)
    return model


# --------------------------------------------------------------------------------------------- saving


def _stored_states(model: AnnotationModel) -> dict[int, FrameState]:
    states = {i: s for i, s in enumerate(model.frame_states()) if s is not FrameState.EMPTY}
    for i in range(model.num_frames):
        # labelled (objects or only void), but neither reference nor propagated
        if i not in states and model.has_labels(i) and model.labels(i).any():
            states[i] = FrameState.EMPTY
    return states


def _check_target(folder: Path, own_entries: Collection[str] = ()) -> None:
    """Refuse a file, or a folder that is neither a project nor empty, whatever it holds.

    A save moves masks into ``masks/``, deletes the ``NNNNN.png`` files there it does not list,
    and deletes ``.pending/``: in a folder of the user's (their own ground-truth masks, say) that
    destroys files, so only what this module itself leaves behind (a first save killed before its
    commit point) and the caller's ``own_entries`` (the autosaver's lock files) are tolerated.
    """
    if folder.exists() and not folder.is_dir():
        raise ProjectError(f"{folder} is a file, not a project folder")
    if folder.is_dir() and not (folder / PROJECT_FILE).exists():
        foreign = [name for name in sorted(e.name for e in folder.iterdir())
                   if name not in own_entries and not _left_by_a_killed_save(folder, name)]
        if foreign:
            raise ProjectError(f"{folder} is not empty and not a project (it holds {foreign[0]!r}): "
                               "choose a new or empty folder")


def _left_by_a_killed_save(folder: Path, name: str) -> bool:
    path = folder / name
    if path.is_symlink():
        return False
    if name == MASKS_DIR:  # created before the commit point, filled after it
        return path.is_dir() and not any(path.iterdir())
    if name == PENDING_DIR:
        return path.is_dir() and all(_pending_leftover(path, p) for p in path.rglob("*"))
    return _INDEX_TEMP.fullmatch(name) is not None and path.is_file()


def _pending_leftover(pending: Path, path: Path) -> bool:
    if path.is_symlink():
        return False
    if path.is_dir():
        return path.parent == pending and path.name.isdigit()
    return path.is_file() and _PENDING_LEFTOVER.fullmatch(path.relative_to(pending).as_posix()) is not None


def _finish_pending(folder: Path, data: ProjectData | None) -> None:
    """Move the masks an earlier, interrupted save committed into masks/, then drop .pending."""
    pending_root = folder / PENDING_DIR
    if data is not None and data.pending:
        source = pending_root / str(data.generation)
        for i in data.pending:
            src = source / f"{i:05d}.png"
            if src.is_file():
                os.replace(src, folder / MASKS_DIR / f"{i:05d}.png")
    if pending_root.exists():
        shutil.rmtree(pending_root)
    for stale in folder.glob(f".{PROJECT_FILE}.*.tmp"):  # an index write a kill interrupted
        stale.unlink()


def save_project(model: AnnotationModel, folder: str | os.PathLike[str], *, changes: ChangeTracker | None = None,
                 video_hash: str | None = None, propagation: Mapping[str, Any] | None = None,
                 own_entries: Collection[str] = ()) -> SaveResult:
    """Save the model as a project in ``folder`` (created if needed); see the module docstring.

    ``folder`` must be a project, or new, or empty but for ``own_entries`` (names the caller put
    there itself); any other folder is refused with `ProjectError`, nothing touched.

    With ``changes`` whose last save went to this folder's current generation, only the frames it
    saw change are written. ``SaveError`` (disk full, no permission) leaves the previous save intact.
    """
    if model.video is None:
        raise UsageError("open a video before saving a project")
    folder = Path(folder).absolute()
    _check_target(folder, own_entries)
    if video_hash is None:
        try:
            video_hash = hash_video(model.video)
        except VideoError as exc:
            raise ProjectError(f"cannot save a project of {model.video.name}: {exc}") from None
    try:
        old = read_project_file(folder) if (folder / PROJECT_FILE).is_file() else None
    except ProjectError:
        old = None  # a corrupt index: this save writes everything again
    states = _stored_states(model)
    incremental = (changes is not None and old is not None and changes.base == (folder, old.generation))
    to_write = sorted(states if not incremental else (changes.frames & states.keys()))  # type: ignore[union-attr]
    generation = (old.generation if old is not None else 0) + 1
    pending_dir = folder / PENDING_DIR / str(generation)
    try:
        (folder / MASKS_DIR).mkdir(parents=True, exist_ok=True)
        _finish_pending(folder, old)
        pending_dir.mkdir(parents=True)
    except OSError as exc:
        raise SaveError(f"cannot save the project in {folder}: {exc.strerror or exc}") from exc
    try:
        for i in to_write:
            write_mask(pending_dir / f"{i:05d}.png", model.labels(i))
        text = project_json_text(model, folder, video_hash, generation, to_write, states, propagation,
                        old.created if old is not None else None)
        atomic_write_text(folder / PROJECT_FILE, text)  # the commit point
    except BaseException:
        shutil.rmtree(pending_dir, ignore_errors=True)
        raise
    _tidy_after_commit(folder, pending_dir, to_write, states)
    if changes is not None:
        changes.saved(folder, generation)
    return SaveResult(folder, generation, len(to_write), video_hash)


def _tidy_after_commit(folder: Path, pending_dir: Path, written: list[int], states: Mapping[int, FrameState]) -> None:
    # Failures here lose nothing: project.json already points into .pending, and the next save
    # (or this one's successor) finishes the moves.
    masks = folder / MASKS_DIR
    try:
        for i in written:
            os.replace(pending_dir / f"{i:05d}.png", masks / f"{i:05d}.png")
        pending_dir.rmdir()
        pending_dir.parent.rmdir()
        for entry in masks.iterdir():
            stem = entry.name[:-4]
            if entry.name.endswith(".png") and stem.isdigit() and int(stem) not in states:
                entry.unlink()
    except OSError:
        pass

