"""Qt-free model and propagation engine of annotator.

Nothing in this package may import Qt (a unit test enforces it), so the command line and
scripts can use it on machines without a display.
"""
