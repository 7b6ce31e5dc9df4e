"""Where the bundled sample clip lives: the video, its first-frame mask and its ground truth.

The clip is drawn procedurally by ``resources/make_sample_clip.py`` (a disc and a box moving over a
textured background), which also writes the true label map of every frame, so the clip serves both
the app (``annotator`` alone opens it with its first mask) and ``annotator demo`` (propagated from
that mask and scored against the ground truth). The files ship inside the package (pyproject's
package-data), so a normal install finds them. Qt-free.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_NAME = "sample"
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "resources" / "sample"
SAMPLE_VIDEO = SAMPLE_DIR / "sample.mp4"
SAMPLE_MASKS = SAMPLE_DIR / "masks"
"""The label map of frame 0 only (``00000.png``): the reference the app opens the clip with."""
SAMPLE_GROUNDTRUTH = SAMPLE_DIR / "groundtruth"
"""The true label map of every frame (``NNNNN.png``, 1 = the disc, 2 = the box), as drawn."""
