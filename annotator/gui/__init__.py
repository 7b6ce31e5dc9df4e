"""The PySide6 desktop app over the Qt-free core: canvas, objects, timeline, background propagation."""
