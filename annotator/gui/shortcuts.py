"""Every frequent action of the app with its keyboard shortcut, and the Help > Shortcuts dialog.

One table is the single source: the main window builds its actions from it and the dialog lists
it, so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget


@dataclass(frozen=True)
class Shortcut:
    name: str
    text: str
    keys: tuple[str, ...]
    group: str


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("open", "Open video, frame folder or DAVIS sequence…", ("Ctrl+O",), "File"),
    Shortcut("open_project", "Open project…", ("Ctrl+Shift+O",), "File"),
    Shortcut("save_project", "Save project", ("Ctrl+S",), "File"),
    Shortcut("save_project_as", "Save project as…", ("Ctrl+Shift+S",), "File"),
    Shortcut("import_mask", "Import a mask PNG onto the current frame…", ("Ctrl+I",), "File"),
    Shortcut("export", "Export DAVIS masks…", ("Ctrl+E",), "File"),
    Shortcut("export_video", "Export overlay video (mp4)…", ("Ctrl+Shift+E",), "File"),
    Shortcut("export_keypoints", "Export keypoints (JSON)…", ("Ctrl+Alt+E",), "File"),
    Shortcut("quit", "Quit", ("Ctrl+Q",), "File"),
    Shortcut("undo", "Undo", ("Ctrl+Z",), "Edit"),
    Shortcut("redo", "Redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "Edit"),
    Shortcut("mark_reference", "Accept this frame as a reference", ("R",), "Edit"),
    Shortcut("clear_frame", "Clear this frame", ("Shift+Del",), "Edit"),
    Shortcut("erase_active", "Erase the active object from this frame", ("Shift+X",), "Edit"),
    Shortcut("settings", "Propagation settings…", ("Ctrl+,",), "Edit"),
    Shortcut("tool_brush", "Brush (right button erases)", ("B",), "Tools"),
    Shortcut("tool_eraser", "Eraser", ("E",), "Tools"),
    Shortcut("tool_fill", "Flood fill", ("F",), "Tools"),
    Shortcut("tool_polygon", "Polygon (double-click or Enter closes, Backspace removes a point)", ("G",), "Tools"),
    Shortcut("tool_erase_object", "Erase the object under the cursor", ("X",), "Tools"),
    Shortcut("tool_keypoint", "Keypoint (click places the selected keypoint, drag moves, right-click deletes)",
             ("M",), "Tools"),
    Shortcut("brush_smaller", "Smaller brush", ("[",), "Tools"),
    Shortcut("brush_larger", "Larger brush", ("]",), "Tools"),
    Shortcut("add_object", "New object", ("N",), "Objects"),
    Shortcut("rename_object", "Rename the active object", ("F2",), "Objects"),
    Shortcut("select_object", "Make object 1…9 active (keypoint 1…9 with the Keypoint tool)", ("1", "…", "9"),
             "Objects"),
    Shortcut("add_keypoint", "New keypoint", ("Shift+N",), "Keypoints"),
    Shortcut("delete_point", "Delete the selected keypoint from this frame", ("Del",), "Keypoints"),
    Shortcut("propagate_forward", "Propagate around this reference: the spans before and after it, each from "
             "both its ends", ("P",), "Propagation"),
    Shortcut("propagate_backward", "Propagate the span before this reference only", ("Shift+P",), "Propagation"),
    Shortcut("propagate_through", "Propagate every span from this reference to the end", ("Alt+P",), "Propagation"),
    Shortcut("propagate_keypoints", "Propagate keypoints through the whole video", ("Ctrl+K",), "Propagation"),
    Shortcut("cancel", "Cancel propagation", ("Esc",), "Propagation"),
    Shortcut("next_frame", "Next frame", ("Right", "D"), "Navigate"),
    Shortcut("prev_frame", "Previous frame", ("Left", "A"), "Navigate"),
    Shortcut("next_10", "10 frames forward", ("Shift+Right",), "Navigate"),
    Shortcut("prev_10", "10 frames back", ("Shift+Left",), "Navigate"),
    Shortcut("first_frame", "First frame", ("Home",), "Navigate"),
    Shortcut("last_frame", "Last frame", ("End",), "Navigate"),
    Shortcut("next_reference", "Next reference frame", ("PgDown",), "Navigate"),
    Shortcut("prev_reference", "Previous reference frame", ("PgUp",), "Navigate"),
    Shortcut("play", "Play / pause", ("K",), "Navigate"),
    Shortcut("toggle_overlay", "Show / hide masks", ("H",), "View"),
    Shortcut("outline", "Outline mode", ("O",), "View"),
    Shortcut("opacity_down", "Masks more transparent", ("{",), "View"),
    Shortcut("opacity_up", "Masks more opaque", ("}",), "View"),
    Shortcut("zoom_in", "Zoom in (or mouse wheel)", ("Ctrl+=", "Ctrl++"), "View"),
    Shortcut("zoom_out", "Zoom out", ("Ctrl+-",), "View"),
    Shortcut("fit", "Fit to window", ("Ctrl+0",), "View"),
    Shortcut("actual_size", "Actual size (1:1)", ("Ctrl+1",), "View"),
    Shortcut("pan", "Pan: middle drag, or hold Space and drag", (), "View"),
    Shortcut("worst_frame", "Jump to the worst frame (with ground truth)", ("W",), "Diagnostics"),
    Shortcut("suggest_frame", "Next frame to correct (from the uncertainty)", ("C",), "Diagnostics"),
    Shortcut("cycle_layer", "Next diagnostic layer: errors, confidence, split", ("V",), "Diagnostics"),
    Shortcut("help_shortcuts", "Keyboard shortcuts", ("F1",), "Help"),
)


def shortcut_named(name: str) -> Shortcut:
    """The table entry of action ``name``."""
    return next(s for s in SHORTCUTS if s.name == name)


def key_sequences(shortcut: Shortcut) -> list[QKeySequence]:
    return [QKeySequence(k) for k in shortcut.keys if k != "…"]


def make_action(name: str, parent: QObject, text: str | None = None) -> QAction:
    """A window-wide action for entry ``name``: its keys, and a tooltip with the entry's text and keys;
    shown as ``text`` (default: the entry's text)."""
    shortcut = shortcut_named(name)
    action = QAction(shortcut.text if text is None else text, parent)
    action.setShortcuts(key_sequences(shortcut))
    action.setToolTip(f"{shortcut.text.rstrip('…')} ({' / '.join(shortcut.keys)})" if shortcut.keys else shortcut.text)
    action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    return action


class ShortcutsDialog(QDialog):
    """A table of every shortcut, grouped."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(560, 640)
        table = QTableWidget(len(SHORTCUTS), 3)
        table.setHorizontalHeaderLabels(["Group", "Action", "Keys"])
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        for row, s in enumerate(SHORTCUTS):
            keys = " / ".join(QKeySequence(k).toString(QKeySequence.SequenceFormat.NativeText) if k != "…" else k
                              for k in s.keys) or "—"
            for col, text in enumerate((s.group, s.text, keys)):
                item = QTableWidgetItem(text)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled)
                table.setItem(row, col, item)
        table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        table.resizeColumnToContents(0)
        table.resizeColumnToContents(2)
        self.table = table
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(buttons)
