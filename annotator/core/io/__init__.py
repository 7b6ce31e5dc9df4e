"""Files in and out, one module per format, with the tool's own errors and atomic writes.

`labels` (label maps as DAVIS PNGs: palette, read, write, resize), `davis` (the DAVIS folder
layout and its sequences), `export` (DAVIS masks, overlay video, keypoints of a model),
`keypoints_json` (the keypoints JSON, read and written), `report` (per-frame metrics as CSV and
PNG curves), `atomic` (temp file, fsync, replace) and `outputs` (no output replaced unasked).
Imports no engine (tests/unit/test_layering.py).
"""
