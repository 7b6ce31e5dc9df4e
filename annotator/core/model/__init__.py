"""The annotation model: what a person has labelled, and its history.

`annotation` holds the objects, the label map and state of every frame, the keypoints and each
frame's points, and tells listeners through plain Python events; `undo` is its undo/redo history
(what changed, not snapshots); `points` is the point type and the in-frame rule the model and the
engine share. Imports no engine and no Qt (tests/unit/test_layering.py).
"""
