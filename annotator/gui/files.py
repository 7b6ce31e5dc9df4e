"""File handling of the main window: open (dialog, recent files, drag and drop), import a mask, export.

Exports run in the GUI's background worker with the status-bar progress bar; what they need (the
label maps) is copied on the GUI thread first. The keypoints JSON is a few numbers per frame and
is written at once. Bad input shows a one-line message and the app
keeps running.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLineEdit, QMenu, QMessageBox, QPushButton, QWidget)

from annotator.core.model.annotation import FrameState
from annotator.core.errors import AnnotatorError, size_text
from annotator.core.io.export import export_davis, export_overlay_video, snapshot_labels, write_keypoints_json
from annotator.core.video import FirstFrames, FrameCheck, open_video, scan_frames
from annotator.gui.opening import Opened, open_sample, open_source, read_single_mask
from annotator.gui.overlay import color_table
from annotator.gui.worker import GeneratorWorker

if TYPE_CHECKING:  # pragma: no cover
    from annotator.gui.main_window import MainWindow

MAX_RECENT = 10
VIDEO_FILTER = "Videos and frames (*.mp4 *.avi *.mov *.mkv *.m4v *.webm);;All files (*)"


class ExportDialog(QDialog):
    """Where to export the DAVIS folders, under which sequence name, with or without the frames."""

    def __init__(self, folder: str, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export DAVIS masks")
        self.folder = QLineEdit(folder)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        self.name = QLineEdit(name)
        self.with_images = QCheckBox("Also write the frames (JPEGImages/480p/<name>/00000.jpg)")
        form = QFormLayout(self)
        form.addRow("DAVIS root folder", row)
        form.addRow("Sequence name", self.name)
        form.addRow("", self.with_images)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "DAVIS root folder", self.folder.text())
        if folder:
            self.folder.setText(folder)


class FileActions:
    """Open / import / export for one main window."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.recent_menu: QMenu | None = None
        self._job: GeneratorWorker | None = None
        self._check_job: GeneratorWorker | None = None  # the frames of the video just opened, decoded

    @property
    def model(self):
        return self.window.model

    # ---- open -------------------------------------------------------------------------------

    def open_dialog(self) -> None:
        start = str(self.window.qsettings.value("last_dir", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self.window, "Open video", start, VIDEO_FILTER)
        if path:
            self.open_path(path)

    def open_folder_dialog(self) -> None:
        start = str(self.window.qsettings.value("last_dir", str(Path.home())))
        path = QFileDialog.getExistingDirectory(self.window, "Open frame folder or DAVIS sequence", start)
        if path:
            self.open_path(path)

    def open_path(self, path: str | None) -> bool:
        """Open a video, frame folder or DAVIS sequence (None: the bundled sample). False on bad input."""
        if path is not None and self.window.projects.offer_recovery_for_video(path):
            return True  # its autosaved work was recovered (with the video) instead
        try:
            opened = open_sample() if path is None else open_source(path)
        except AnnotatorError as exc:
            self.window.show_error(str(exc))
            return False
        if path is not None and opened.masks_from is not None and len(opened.video) > 1 \
                and len(opened.references) == len(opened.video):
            # a mask on every frame (a DAVIS sequence) is ground truth: as references it would
            # leave nothing to propagate, so the first is the reference and all are compared with
            self.window.diagnostics.show_with_ground_truth(opened)
            self.window.statusBar().showMessage(
                f"Opened {opened.video.name}: every frame has a mask, so frame {min(opened.references)}'s is the "
                "reference and all of them are the ground truth (Ground truth dock)", 10000)
        else:
            self.set_opened(opened)
        if path is not None:
            self._check_frames(path, opened)
            self.add_recent(str(Path(path).resolve()))
            self.window.qsettings.setValue("last_dir", str(Path(path).resolve().parent))
        return True

    def set_opened(self, opened: Opened) -> None:
        window = self.window
        window.propagation.cancel()
        window.propagation.wait()
        window.projects.autosave_flush()  # the last seconds of work on the old video reach the recovery area
        old = self.model.video
        self.model.set_video(opened.video, opened.references)
        if old is not None and old is not opened.video:
            old.close()
        n = len(opened.references)
        extra = f", {n} mask(s) from {opened.masks_from}" if n else ""
        window.statusBar().showMessage(f"Opened {opened.video.name}: {len(opened.video)} frames, "
                                       f"{size_text(opened.video.hw)}{extra}", 8000)

    def _check_frames(self, path: str, opened: Opened) -> None:
        """Decode every frame in the background (opening read one); if some cannot be read, say how
        many can and offer to go on with those."""
        if self._check_job is not None:
            self._check_job.cancel()
        job = GeneratorWorker(lambda: scan_frames(path), parent=self.window)
        latest: list[FrameCheck] = []
        job.result.connect(latest.append)

        def finished(cancelled: bool) -> None:
            if self._check_job is job:
                self._check_job = None
            if not cancelled and latest and self.model.video is opened.video:  # not replaced meanwhile
                self._on_frames_checked(path, opened, latest[-1])

        job.finished.connect(finished)
        self._check_job = job
        job.start()

    def _on_frames_checked(self, path: str, opened: Opened, check: FrameCheck) -> None:
        if check.complete and check.problem is None:
            return
        text = f"Only {check.readable} of {check.total} frames of {opened.video.name} can be read ({check.problem})"
        if check.readable < 1 or self.window.projects.changes.dirty:  # edits already made: keep the video as it is
            self.window.show_error(f"{text}; the others show grey.")
            return
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(self.window, "Unreadable frames",
                                      f"{text}. Continue with the first {check.readable} frames?",
                                      buttons.Yes | buttons.No, buttons.Yes)
        if answer != buttons.Yes:
            return
        try:
            cut = FirstFrames(open_video(path), check.readable)
        except AnnotatorError as exc:
            self.window.show_error(str(exc))
            return
        refs = {i: labels for i, labels in opened.references.items() if i < check.readable}
        self.set_opened(Opened(cut, refs, opened.masks_from))

    # ---- recent files ------------------------------------------------------------------------

    def recent(self) -> list[str]:
        value = self.window.qsettings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def add_recent(self, path: str) -> None:
        items = [path, *[p for p in self.recent() if p != path]][:MAX_RECENT]
        self.window.qsettings.setValue("recent", items)
        self.rebuild_recent_menu()

    def rebuild_recent_menu(self) -> None:
        menu = self.recent_menu
        if menu is None:
            return
        menu.clear()
        folder = menu.addAction("Open frame folder or DAVIS sequence…")
        folder.triggered.connect(self.open_folder_dialog)
        sample = menu.addAction("Open the sample clip")
        sample.triggered.connect(lambda: self.open_path(None))
        menu.addSeparator()
        for path in self.recent():
            action = menu.addAction(path)
            action.triggered.connect(lambda _c=False, p=path: self.open_path(p))

    # ---- drag and drop --------------------------------------------------------------------------

    def drag_enter(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def drop(self, event) -> None:
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            event.acceptProposedAction()
            self.open_path(urls[0].toLocalFile())

    # ---- masks in ---------------------------------------------------------------------------------

    def import_mask_dialog(self) -> None:
        if self.model.video is None:
            return
        path, _ = QFileDialog.getOpenFileName(self.window, "Import mask for this frame", "",
                                              "Masks (*.png);;All files (*)")
        if path:
            self.import_mask(path)

    def import_mask(self, path: str) -> None:
        """Load a mask PNG as the current frame's reference label map (one undo step)."""
        m = self.model
        labels = read_single_mask(path, m.video)
        changes = []
        for i in sorted(set(int(v) for v in labels.ravel()) - {0, 255} - {o.id for o in m.objects}):
            changes.append(m.add_object(object_id=i))  # the file's ids are kept
        changes.append(m.set_labels(m.current_frame, labels, FrameState.REFERENCE))
        m.history.push("Import mask", changes)

    # ---- exports --------------------------------------------------------------------------------

    def export_dialog(self) -> None:
        m = self.model
        if m.video is None:
            return
        folder = str(self.window.qsettings.value("export_dir", str(Path.home() / "annotator-export")))
        dialog = ExportDialog(folder, m.video.name, self.window)
        if dialog.exec():
            self.window.qsettings.setValue("export_dir", dialog.folder.text())
            self.export(dialog.folder.text(), dialog.name.text().strip() or m.video.name,
                        dialog.with_images.isChecked())

    def export(self, root: str, name: str, with_images: bool = False) -> GeneratorWorker:
        m = self.model
        labels = snapshot_labels(m)
        video = m.video
        return self._run(f"Exporting {name}", lambda: export_davis(video, labels, root, name, with_images=with_images),
                         len(video), f"Exported {len(video)} masks to {root}")

    def export_video_dialog(self) -> None:
        m = self.model
        if m.video is None:
            return
        path, _ = QFileDialog.getSaveFileName(self.window, "Export overlay video", f"{m.video.name}-overlay.mp4",
                                              "MP4 video (*.mp4)")
        if path:
            self.export_video(path)

    def export_video(self, path: str) -> GeneratorWorker:
        m = self.model
        labels = snapshot_labels(m)
        video = m.video
        colors = color_table(m.objects)[:, :3].copy()
        opacity = self.window.canvas.overlay_opacity()
        return self._run("Writing overlay video", lambda: export_overlay_video(video, labels, path, colors, opacity),
                         len(video), f"Wrote {path}")

    def export_keypoints_dialog(self) -> None:
        m = self.model
        if m.video is None:
            return
        folder = Path(str(self.window.qsettings.value("export_dir", str(Path.home()))))
        path, _ = QFileDialog.getSaveFileName(self.window, "Export keypoints", str(folder / f"{m.video.name}-keypoints.json"),
                                              "JSON (*.json)")
        if path:
            self.export_keypoints(path)

    def export_keypoints(self, path: str) -> None:
        """Write every frame's keypoints to ``path`` (the format of ``annotator keypoints``)."""
        frames = write_keypoints_json(self.model, path)
        self.window.statusBar().showMessage(f"Wrote the keypoints of {frames} frame(s) to {path}", 6000)

    def _run(self, title: str, make_job, total: int, done_text: str) -> GeneratorWorker:
        if self._job is not None:
            raise AnnotatorError("an export is already running")
        st = self.window.status
        st.progress.setRange(0, total)
        st.progress.setValue(0)
        st.progress.setFormat(f"{title}: %v/%m")
        st.progress.setVisible(True)
        job = GeneratorWorker(make_job, total=total, parent=self.window)
        job.progress.connect(lambda done, _t: st.progress.setValue(done))
        failed: list[object] = []
        job.error.connect(failed.append)
        job.error.connect(lambda exc: self.window.show_error(str(exc)))

        def finished(cancelled: bool) -> None:
            st.progress.setVisible(self.window.propagation.running)
            self._job = None
            if not cancelled and not failed:
                self.window.statusBar().showMessage(done_text, 6000)

        job.finished.connect(finished)
        self._job = job
        job.start()
        return job

    def wait(self) -> None:
        for job in (self._job, self._check_job):
            if job is not None:
                job.cancel()
                job.wait()
