"""Annotation projects on disk: a folder with project.json and DAVIS PNGs, saved atomically, autosaved.

`folder` (open, read and save a project folder; masks written incrementally), `format` (the
versioned project.json: its text, parsing and migrations), `autosave` (periodic autosave and
crash recovery).
"""
