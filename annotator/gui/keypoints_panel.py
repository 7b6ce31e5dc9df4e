"""The keypoints panel: the keypoint names, which one a click places, and the keypoint run.

One row per keypoint (colour, name, frames where a person placed it); the selected row is the
keypoint the Keypoint tool places, and choosing a row switches to that tool. Add, rename
(double-click), delete, and "Propagate keypoints". Every edit goes through the model's setters and
is one undo step; the panel rebuilds itself from the model's events.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from annotator.core.model.annotation import AnnotationModel
from annotator.core.errors import AnnotatorError
from annotator.gui.objects_panel import swatch

COL_NAME, COL_PLACED = 0, 1


class KeypointsPanel(QWidget):
    """List of the model's keypoints with add / delete / propagate buttons."""

    keypoint_chosen = Signal(int)  # a person picked a keypoint in the list (to place it next)
    propagate_requested = Signal()
    error = Signal(str)  # a one-line message for the window's error box

    def __init__(self, model: AnnotationModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Keypoint", "Placed"])
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                  | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.tree.header().setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setSectionResizeMode(COL_PLACED, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setToolTip("Click: place this keypoint next (Keypoint tool, M). Double-click the name to rename. "
                             "'Placed': frames where you placed it.")
        self.add_button = QPushButton("Add")
        self.add_button.setToolTip("Add a keypoint (Shift+N)")
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete the selected keypoint from every frame (undoable)")
        self.propagate_button = QPushButton("Propagate keypoints")
        self.propagate_button.setToolTip("Carry the placed keypoints through the whole video (Ctrl+K)")
        self.hint = QLabel("Keypoint tool (M): click places the selected keypoint, drag moves it, "
                           "right-click or Del deletes it.")
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: gray")
        buttons = QHBoxLayout()
        for b in (self.add_button, self.delete_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tree)
        layout.addLayout(buttons)
        layout.addWidget(self.propagate_button)
        layout.addWidget(self.hint)

        self._count_timer = QTimer(self)
        self._count_timer.setSingleShot(True)
        self._count_timer.setInterval(250)  # counts after a drag or a run settles, not on every move
        self._count_timer.timeout.connect(self.refresh_counts)

        self.add_button.clicked.connect(self.add_keypoint)
        self.delete_button.clicked.connect(lambda: self.delete_keypoint(self.model.active_keypoint))
        self.propagate_button.clicked.connect(self.propagate_requested.emit)
        self.tree.currentItemChanged.connect(self._on_current_item)
        self.tree.itemChanged.connect(self._on_item_changed)
        ev = model.events
        ev.keypoints_changed.connect(self.rebuild)
        ev.active_keypoint_changed.connect(self._on_active)
        ev.points_changed.connect(lambda _f: self._count_timer.start())
        self.rebuild()

    # ---- model -> view ----------------------------------------------------------------------

    def rebuild(self) -> None:
        keypoints = self.model.keypoints
        with QSignalBlocker(self.tree):
            ids = [self.tree.topLevelItem(r).data(COL_NAME, Qt.ItemDataRole.UserRole)
                   for r in range(self.tree.topLevelItemCount())]
            if ids != [k.id for k in keypoints]:
                self.tree.clear()
                for k in keypoints:
                    item = QTreeWidgetItem(["", ""])
                    item.setData(COL_NAME, Qt.ItemDataRole.UserRole, k.id)
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                    item.setToolTip(COL_NAME, f"id {k.id}" + (f" · key {k.id} with the Keypoint tool" if k.id <= 9 else ""))
                    item.setTextAlignment(COL_PLACED, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    self.tree.addTopLevelItem(item)
            for row, k in enumerate(keypoints):
                item = self.tree.topLevelItem(row)
                if item.text(COL_NAME) != k.name:
                    item.setText(COL_NAME, k.name)
                item.setIcon(COL_NAME, swatch(k.color))
        self._on_active(self.model.active_keypoint)
        self.refresh_counts()
        has = bool(keypoints)
        self.delete_button.setEnabled(has)
        self.propagate_button.setEnabled(has)

    def refresh_counts(self) -> None:
        placed: dict[int, int] = {}
        if self.model.video is not None:
            for points in self.model.keypoint_references().values():
                for keypoint_id in points:
                    placed[keypoint_id] = placed.get(keypoint_id, 0) + 1
        with QSignalBlocker(self.tree):
            for row in range(self.tree.topLevelItemCount()):
                item = self.tree.topLevelItem(row)
                item.setText(COL_PLACED, str(placed.get(item.data(COL_NAME, Qt.ItemDataRole.UserRole), 0)))

    def item_for(self, keypoint_id: int | None) -> QTreeWidgetItem | None:
        for row in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(row)
            if item.data(COL_NAME, Qt.ItemDataRole.UserRole) == keypoint_id:
                return item
        return None

    def _on_active(self, keypoint_id: int | None) -> None:
        with QSignalBlocker(self.tree):
            item = self.item_for(keypoint_id)
            self.tree.setCurrentItem(item) if item is not None else self.tree.clearSelection()

    # ---- view -> model ----------------------------------------------------------------------

    def _on_current_item(self, item: QTreeWidgetItem | None, _previous) -> None:
        if item is not None:
            keypoint_id = item.data(COL_NAME, Qt.ItemDataRole.UserRole)
            self.model.set_active_keypoint(keypoint_id)
            self.keypoint_chosen.emit(keypoint_id)

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if column != COL_NAME:
            return
        keypoint_id = item.data(COL_NAME, Qt.ItemDataRole.UserRole)
        try:
            change = self.model.update_keypoint(keypoint_id, name=item.text(COL_NAME))
        except AnnotatorError as exc:  # an empty or taken name: put the old one back and say why
            with QSignalBlocker(self.tree):
                item.setText(COL_NAME, self.model.keypoint(keypoint_id).name)
            self.error.emit(str(exc))
            return
        self.model.history.push("Rename keypoint", [change])

    def add_keypoint(self) -> None:
        if self.model.video is None:
            return
        self.model.history.push("Add keypoint", [self.model.add_keypoint()])
        self.keypoint_chosen.emit(int(self.model.active_keypoint))

    def delete_keypoint(self, keypoint_id: int | None) -> None:
        if keypoint_id is None:
            return
        name = self.model.keypoint(keypoint_id).name
        self.model.history.push(f"Delete keypoint {name}", self.model.remove_keypoint(keypoint_id))

    def rename(self, keypoint_id: int | None) -> None:
        item = self.item_for(keypoint_id)
        if item is not None:
            self.tree.editItem(item, COL_NAME)
