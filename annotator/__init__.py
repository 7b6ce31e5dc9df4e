"""annotator: label objects in video by painting a frame and propagating the masks."""

__version__ = "0.1.0"
