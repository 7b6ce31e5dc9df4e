"""The objects panel: one row per object (colour, visibility, name, frames where it appears).

Add, rename (double-click the name), recolour (double-click the swatch), hide (checkbox) and
delete; the selected row is the active object. Every edit goes through the model's setters and
is one undo step; the panel rebuilds itself from the model's events. Frame counts are refreshed
a moment after edits stop, not on every brush dab.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, QTimer
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QColorDialog, QHBoxLayout, QHeaderView, QMessageBox, QPushButton,
                               QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from annotator.core.model.annotation import AnnotationModel

COL_NAME, COL_FRAMES = 0, 1


def swatch(color: tuple[int, int, int], size: int = 14) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(*color))
    return QIcon(pix)


class ObjectsPanel(QWidget):
    """List of the model's objects with add / delete / recolour buttons."""

    def __init__(self, model: AnnotationModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.tree = QTreeWidget()
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Object", "Frames"])
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                  | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.tree.header().setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        self.tree.header().setSectionResizeMode(COL_FRAMES, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setToolTip("Click: make active (or press its number). Double-click the name to rename. "
                             "The checkbox hides an object.")
        self.add_button = QPushButton("Add")
        self.add_button.setToolTip("Add an object (N)")
        self.color_button = QPushButton("Colour…")
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete the active object from every frame (undoable)")
        buttons = QHBoxLayout()
        for b in (self.add_button, self.color_button, self.delete_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.tree)
        layout.addLayout(buttons)

        self._count_timer = QTimer(self)
        self._count_timer.setSingleShot(True)
        self._count_timer.setInterval(250)
        self._count_timer.timeout.connect(self.refresh_counts)

        self.add_button.clicked.connect(self.add_object)
        self.color_button.clicked.connect(lambda: self.recolour(self.model.active_object))
        self.delete_button.clicked.connect(lambda: self.delete_object(self.model.active_object, confirm=True))
        self.tree.currentItemChanged.connect(self._on_current_item)
        self.tree.itemChanged.connect(self._on_item_changed)
        ev = model.events
        ev.objects_changed.connect(self.rebuild)
        ev.video_changed.connect(self.rebuild)
        ev.active_object_changed.connect(self._on_active)
        ev.labels_changed.connect(lambda *_: self._count_timer.start())
        self.rebuild()

    # ---- model -> view ----------------------------------------------------------------------

    def rebuild(self) -> None:
        objects = self.model.objects
        with QSignalBlocker(self.tree):
            ids = [self.tree.topLevelItem(r).data(COL_NAME, Qt.ItemDataRole.UserRole)
                   for r in range(self.tree.topLevelItemCount())]
            if ids != [o.id for o in objects]:
                # items are only recreated when objects come or go, never under an edit in progress
                self.tree.clear()
                for obj in objects:
                    item = QTreeWidgetItem(["", ""])
                    item.setData(COL_NAME, Qt.ItemDataRole.UserRole, obj.id)
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable | Qt.ItemFlag.ItemIsUserCheckable)
                    item.setToolTip(COL_NAME, f"id {obj.id}" + (f" · key {obj.id}" if obj.id <= 9 else ""))
                    item.setTextAlignment(COL_FRAMES, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    self.tree.addTopLevelItem(item)
            for row, obj in enumerate(objects):
                item = self.tree.topLevelItem(row)
                if item.text(COL_NAME) != obj.name:
                    item.setText(COL_NAME, obj.name)
                item.setIcon(COL_NAME, swatch(obj.color))
                item.setCheckState(COL_NAME, Qt.CheckState.Checked if obj.visible else Qt.CheckState.Unchecked)
        self._on_active(self.model.active_object)
        self.refresh_counts()
        has = bool(self.model.objects)
        self.color_button.setEnabled(has)
        self.delete_button.setEnabled(has)

    def refresh_counts(self) -> None:
        counts = self.model.object_frame_counts() if self.model.video is not None else {}
        with QSignalBlocker(self.tree):
            for row in range(self.tree.topLevelItemCount()):
                item = self.tree.topLevelItem(row)
                n = counts.get(item.data(COL_NAME, Qt.ItemDataRole.UserRole), 0)
                item.setText(COL_FRAMES, str(n))

    def _item_for(self, object_id: int | None) -> QTreeWidgetItem | None:
        for row in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(row)
            if item.data(COL_NAME, Qt.ItemDataRole.UserRole) == object_id:
                return item
        return None

    def _on_active(self, object_id: int | None) -> None:
        with QSignalBlocker(self.tree):
            item = self._item_for(object_id)
            self.tree.setCurrentItem(item) if item is not None else self.tree.clearSelection()

    # ---- view -> model ----------------------------------------------------------------------

    def _on_current_item(self, item: QTreeWidgetItem | None, _previous) -> None:
        if item is not None:
            self.model.set_active_object(item.data(COL_NAME, Qt.ItemDataRole.UserRole))

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if column != COL_NAME:
            return
        object_id = item.data(COL_NAME, Qt.ItemDataRole.UserRole)
        name = item.text(COL_NAME).strip() or self.model.object(object_id).name
        visible = item.checkState(COL_NAME) == Qt.CheckState.Checked
        change = self.model.update_object(object_id, name=name, visible=visible)
        self.model.history.push("Edit object", [change])

    def add_object(self) -> None:
        self.model.history.push("Add object", [self.model.add_object()])

    def recolour(self, object_id: int | None) -> None:
        if object_id is None:
            return
        obj = self.model.object(object_id)
        color = QColorDialog.getColor(QColor(*obj.color), self, f"Colour of {obj.name}")
        if color.isValid():
            self.model.history.push("Recolour", [self.model.update_object(
                object_id, color=(color.red(), color.green(), color.blue()))])

    def delete_object(self, object_id: int | None, confirm: bool = False) -> None:
        if object_id is None:
            return
        obj = self.model.object(object_id)
        if confirm:
            n = self.model.object_frame_counts().get(object_id, 0)
            answer = QMessageBox.question(self, "Delete object",
                                          f"Delete “{obj.name}” from {n} frame(s)? (Undo brings it back.)")
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.model.history.push(f"Delete {obj.name}", self.model.remove_object(object_id))

    def rename(self, object_id: int | None) -> None:
        item = self._item_for(object_id)
        if item is not None:
            self.tree.editItem(item, COL_NAME)
