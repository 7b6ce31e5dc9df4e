"""Projects in the main window: Save / Save as / Open project, autosave, and recovery after a crash.

The work is in the Qt-free core (:mod:`annotator.core.project`, :mod:`annotator.core.project.autosave`);
this module adds the actions, the dialogs (where to save, locate a moved video, recover?), and a
`QTimer` that autosaves. Autosave is off until :meth:`ProjectActions.enable_autosave` gives it a
folder (the app passes its per-user data folder; tests pass a temporary one), so windows built by
tests never write outside their temporary folders. Every failure is a one-line dialog and the
window keeps running.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import QStandardPaths, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMessageBox

from annotator.core.project.autosave import Autosaver, autosave_folder, discard, find_recoverable, recover
from annotator.core.errors import AnnotatorError
from annotator.core.project.folder import (ChangeTracker, ProjectContent, VideoRecord, apply_project, is_project_folder,
                                    read_project, save_project)
from annotator.gui.shortcuts import make_action

if TYPE_CHECKING:  # pragma: no cover
    from annotator.gui.main_window import MainWindow

VIDEO_FILTER = "Videos (*.mp4 *.avi *.mov *.mkv *.m4v *.webm);;All files (*)"
AUTOSAVE_TICK_MS = 1000


def default_autosave_root() -> Path:
    """``<per-user data folder>/autosave`` (e.g. ``~/.local/share/annotator/autosave`` on Linux)."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".annotator") / "autosave"


class ProjectActions:
    """Project file actions, autosave and recovery for one main window."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.folder: Path | None = None
        self.video_hash: str | None = None
        self.autosave_root: Path | None = None
        self.autosaver: Autosaver | None = None
        self._loading = False
        self._autosave_failed = False
        model = window.model
        model.events.video_changed.connect(self._on_video_changed)  # before the tracker: sees the old state
        self.changes = ChangeTracker(model)
        model.history.on_changed(self._update_title)
        self.timer = QTimer(window)
        self.timer.setInterval(AUTOSAVE_TICK_MS)
        self.timer.timeout.connect(self.autosave_tick)
        window.propagation.frame_done.connect(lambda _i: self.autosave_tick())
        window.propagation.finished.connect(lambda *_a: self.autosave_flush())
        self.actions = self._make_actions()

    # ---- actions ------------------------------------------------------------------------------

    def _make_actions(self) -> dict[str, QAction]:
        w = self.window
        specs = [("open_project", self.open_project_dialog), ("save_project", self.save),
                 ("save_project_as", self.save_as_dialog)]
        actions = {}
        for name, handler in specs:
            action = make_action(name, w)  # text and keys come from the one shortcuts table
            action.triggered.connect(lambda _c=False, h=handler: self._guard(h))
            w.addAction(action)
            actions[name] = action
        file_menu = next((a.menu() for a in w.menuBar().actions() if a.text() == "&File" and a.menu()), None)
        if file_menu is not None:
            first = file_menu.actions()[0] if file_menu.actions() else None
            for name in ("open_project", "save_project", "save_project_as"):
                file_menu.insertAction(first, actions[name])
            file_menu.insertSeparator(first)
        return actions

    def _guard(self, handler: Callable[[], object]) -> None:
        try:
            handler()
        except AnnotatorError as exc:
            self.window.show_error(str(exc))

    # ---- open -----------------------------------------------------------------------------------

    def open_path(self, path: str | None) -> bool:
        """Open a project folder, or anything the file actions open (None: the sample clip)."""
        if path is not None and is_project_folder(path):
            return self.open_project(path)
        return self.window.files.open_path(path)

    def open_project_dialog(self) -> None:
        start = str(self.window.qsettings.value("last_project_dir", str(Path.home())))
        folder = QFileDialog.getExistingDirectory(self.window, "Open annotation project", start)
        if folder:
            self.open_project(folder)

    def open_project(self, folder: str | Path) -> bool:
        """Open the project in ``folder`` (offering newer autosaved work first); False on bad input."""
        folder = Path(folder).absolute()
        try:
            if self._offer_recovery(project=folder):
                return True
            content = read_project(folder, locate_video=self._locate_video, confirm_mismatch=self._confirm_mismatch)
        except AnnotatorError as exc:
            self.window.show_error(str(exc))
            return False
        self._apply(content, project=folder, clean=not content.relocated)
        self.window.qsettings.setValue("last_project_dir", str(folder.parent))
        self.window.statusBar().showMessage(
            f"Opened project {folder.name}: {len(content.labels)} labelled frame(s)"
            + (" — the video moved: save to remember where" if content.relocated else ""), 8000)
        return True

    def _apply(self, content: ProjectContent, *, project: Path | None, clean: bool) -> None:
        w = self.window
        w.propagation.cancel()
        w.propagation.wait()
        old = w.model.video
        self._loading = True
        try:
            apply_project(w.model, content)
        finally:
            self._loading = False
        if old is not None and old is not content.video:
            old.close()
        self.folder = project
        self.video_hash = content.video_hash
        if clean and project is not None:
            self.changes.saved(project, content.data.generation)
        else:
            self.changes.mark_all()
        self._restart_autosave()
        self._update_title()

    def _locate_video(self, record: VideoRecord) -> str | None:
        name = Path(record.absolute).name
        title = f"Locate the video {name} (it was at {record.absolute})"
        if record.kind == "folder":
            return QFileDialog.getExistingDirectory(self.window, title, str(Path.home())) or None
        path, _ = QFileDialog.getOpenFileName(self.window, title, str(Path.home()), VIDEO_FILTER)
        return path or None

    def _confirm_mismatch(self, path: Path) -> bool:
        answer = QMessageBox.question(self.window, "Different video",
                                      f"{path} is not the video this project was made on (its content differs). "
                                      "Open it anyway?")
        return answer == QMessageBox.StandardButton.Yes

    # ---- save ---------------------------------------------------------------------------------

    def save(self) -> bool:
        """Save to the current project folder (asks for one the first time)."""
        if self.folder is None:
            return self.save_as_dialog()
        return self.save_to(self.folder)

    def save_as_dialog(self) -> bool:
        if self.window.model.video is None:
            return False
        start = str(self.window.qsettings.value("last_project_dir", str(Path.home())))
        suggestion = str(Path(start) / f"{self.window.model.video.name}-project")
        path, _ = QFileDialog.getSaveFileName(self.window, "Save project as (a new folder)", suggestion,
                                              "Annotator project folder (*)")
        return bool(path) and self.save_to(path)

    def save_to(self, folder: str | Path) -> bool:
        """Save the annotation as a project in ``folder``; a failure is a one-line dialog."""
        folder = Path(folder).absolute()
        try:
            self.autosave_flush()  # the recovery copy is never older than the project
            result = save_project(self.window.model, folder, changes=self.changes, video_hash=self.video_hash,
                                  propagation=self.propagation_settings())
        except AnnotatorError as exc:
            self.window.show_error(str(exc))
            return False
        self.video_hash = result.video_hash
        if self.folder != folder:
            self.folder = folder
            if self.autosaver is not None:
                self.autosaver.set_project(folder)
        self.window.qsettings.setValue("last_project_dir", str(folder.parent))
        self.window.statusBar().showMessage(f"Saved {folder.name} ({result.frames_written} frame(s) written)", 5000)
        self._update_title()
        return True

    def propagation_settings(self) -> dict:
        s = self.window.propagation.settings
        return {"backbone": s.backbone, "device": s.device, "short_side": s.short_side, "params": asdict(s.params)}

    # ---- autosave and recovery ------------------------------------------------------------------

    def enable_autosave(self, root: str | Path | None = None, *, interval_s: float = 5.0,
                        chunk_frames: int = 8) -> None:
        """Autosave into ``root`` (default: the per-user data folder) from now on."""
        self.autosave_root = Path(root) if root is not None else default_autosave_root()
        self._autosave_interval = (interval_s, chunk_frames)
        self._restart_autosave()
        self.timer.start()

    def _restart_autosave(self, *, keep_old: bool = False) -> None:
        if self.autosaver is not None:
            old, self.autosaver = self.autosaver, None
            if keep_old:
                old.abandon()
            else:
                old.close(unsaved=False)
        model = self.window.model
        if self.autosave_root is None or model.video is None:
            return
        key = str(self.folder) if self.folder is not None else str(Path(model.video.path).absolute())
        interval, chunk = getattr(self, "_autosave_interval", (5.0, 8))
        saver = Autosaver(model, autosave_folder(self.autosave_root, key), project=self.folder, interval_s=interval,
                          chunk_frames=chunk, video_hash=self.video_hash, propagation=self.propagation_settings)
        try:
            saver.start()
        except AnnotatorError as exc:
            self.window.statusBar().showMessage(f"Autosave is off: {exc}", 10000)
            return
        self.autosaver = saver

    def autosave_tick(self) -> None:
        if self.autosaver is not None:
            self._autosave(self.autosaver.tick)

    def autosave_flush(self) -> None:
        if self.autosaver is not None:
            self._autosave(self.autosaver.flush)

    def _autosave(self, step: Callable[[], object]) -> None:
        try:
            step()
        except AnnotatorError as exc:
            text = f"Autosave failed: {exc}"
            if not self._autosave_failed:  # one dialog, then the status bar: the timer retries
                self._autosave_failed = True
                self.window.show_error(text)
            else:
                self.window.statusBar().showMessage(text, 10000)
        else:
            self._autosave_failed = False

    def offer_recovery(self) -> bool:
        """At start-up: offer autosaved work left by a crash or an unsaved quit; True if recovered."""
        try:
            return self._offer_recovery(project=None)
        except AnnotatorError as exc:
            self.window.show_error(str(exc))
            return False

    def offer_recovery_for_video(self, path: str | Path) -> bool:
        """Opening a video: offer the autosaved work of that video (made outside a project); True if recovered."""
        try:
            return self._offer_recovery(project=None, video=Path(path))
        except AnnotatorError as exc:
            self.window.show_error(str(exc))
            return False

    def _offer_recovery(self, project: Path | None, video: Path | None = None) -> bool:
        if self.autosave_root is None:
            return False
        for found in find_recoverable(self.autosave_root, project=project, video=video):
            answer = QMessageBox.question(
                self.window, "Recover unsaved work?",
                f"Autosaved work was found — {found.describe()}. Recover it? (No deletes it.)",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No | QMessageBox.StandardButton.Cancel)
            if answer == QMessageBox.StandardButton.Yes:
                content = read_project(found.folder, locate_video=self._locate_video,
                                       confirm_mismatch=self._confirm_mismatch)
                self._apply(content, project=found.project, clean=False)
                if self.autosaver is not None:  # the work is safe in the new autosave: drop the old copy
                    self.autosaver.flush()
                    discard(found)
                self.window.statusBar().showMessage(f"Recovered {found.describe()}: save to keep it", 10000)
                return True
            if answer == QMessageBox.StandardButton.No:
                discard(found)
        return False

    def startup(self, path: str | None) -> None:
        """What the app does once its window shows: open ``path``, offering its own autosaved work
        (the work of other videos is listed, and offered when they are opened); without a path, offer
        any autosaved work, else open the sample clip."""
        if path is None:
            if not self.offer_recovery():
                self.open_path(None)
            return
        self.open_path(path)
        self._list_other_recoverables()

    def _list_other_recoverables(self) -> None:
        if self.autosave_root is None:
            return
        others = find_recoverable(self.autosave_root)
        if others:
            names = ", ".join(r.name for r in others[:3]) + (", …" if len(others) > 3 else "")
            self.window.statusBar().showMessage(
                f"Autosaved work is also kept for {names}: open it to recover it", 15000)

    def _on_video_changed(self) -> None:
        if self._loading:
            return
        # a video opened through the file actions: a new, unsaved session
        unsaved = self.changes.dirty
        self.folder = None
        self.video_hash = None
        self._restart_autosave(keep_old=unsaved)
        self._update_title()

    # ---- title and shutdown ---------------------------------------------------------------------------

    def _update_title(self) -> None:
        video = self.window.model.video
        if video is None:
            return
        where = f" — {self.folder.name}" if self.folder is not None else ""
        star = " *" if self.changes.dirty else ""
        self.window.setWindowTitle(f"{video.name}{where}{star} — Annotator")

    def shutdown(self) -> None:
        """Window closing: keep the autosave if there is unsaved work, else remove it."""
        self.timer.stop()
        if self.autosaver is not None:
            unsaved = self.changes.dirty
            saver, self.autosaver = self.autosaver, None
            try:
                saver.close(unsaved=unsaved)
            except AnnotatorError:
                saver.abandon()
