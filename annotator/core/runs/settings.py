"""What a propagation run depends on besides its video and references, in one place for every front end.

:class:`RunSettings` holds the factors (:class:`PropagationParams`), the backbone and where it runs,
the working resolution and the optional feature cache: the command line builds one from its
options, the batch hands one to each worker process (it pickles), the GUI edits one in its settings
dialog and factors panel and keeps it in QSettings. :class:`BackboneCache` loads each backbone once
per what it depends on (:meth:`RunSettings.backbone_key`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from annotator.core.features.backbones import DEFAULT_BACKBONE, DEFAULT_FLIP, Backbone, load_backbone
from annotator.core.engine.propagation import PropagationParams
from annotator.core.video import DEFAULT_SHORT_SIDE

__all__ = ["BackboneCache", "RunSettings"]


@dataclass(frozen=True)
class RunSettings:
    """The factors, the backbone options, the working resolution and the feature cache of a run."""

    params: PropagationParams = PropagationParams()
    backbone: str = DEFAULT_BACKBONE
    """A backbone spec: ``lite0``, ``lite0:s4``, ``lite2``, ``resnet18``, ``checkpoint:PATH``, ``lite0&lite2``, ..."""
    stage: str | None = None
    """Feature stage(s), when the spec does not name them."""
    weights: str | None = None
    """A local weights file for resnet18/resnet50."""
    device: str = "auto"
    half: bool | None = None
    """Backbone precision: None = half where the device has it, False = float32, True = half."""
    flip: bool = DEFAULT_FLIP
    """Mirror test-time augmentation of the features (twice the backbone time)."""
    threads: int | None = None
    """CPU threads for the backbone and the engine (None: torch's default)."""
    short_side: int | None = DEFAULT_SHORT_SIDE
    """Working resolution: frames are resized to this short side (None: their original size); 600 by default
    (:data:`~annotator.core.video.DEFAULT_SHORT_SIDE`), the size ``params.radius`` was chosen for."""
    feature_cache: str | None = None
    """A folder where features are kept on disk (fp16) between runs."""

    def backbone_key(self) -> tuple:
        """What the loaded backbone depends on."""
        return (self.backbone, self.stage, self.weights, self.device, self.half, self.flip, self.threads)

    def feature_key(self) -> tuple:
        """What computed features depend on (the factors do not change features)."""
        return (*self.backbone_key(), self.short_side)

    def load_backbone(self) -> Backbone:
        """The backbone these settings name (loading takes about a second; see :class:`BackboneCache`)."""
        return load_backbone(self.backbone, device=self.device, stage=self.stage, weights=self.weights,
                             threads=self.threads, half=self.half, flip=self.flip)


class BackboneCache:
    """Backbones loaded once per :meth:`RunSettings.backbone_key`; ``load`` replaces the loader (tests pass
    fakes, the GUI chooses its thread count)."""

    def __init__(self, load: Callable[[RunSettings], object] = RunSettings.load_backbone) -> None:
        self._load = load
        self._loaded: dict[tuple, object] = {}

    def get(self, settings: RunSettings) -> object | None:
        """The backbone already loaded for ``settings``, or None."""
        return self._loaded.get(settings.backbone_key())

    def put(self, settings: RunSettings, backbone: object) -> None:
        """Keep ``backbone`` (loaded elsewhere, e.g. on a worker thread) for ``settings``."""
        self._loaded[settings.backbone_key()] = backbone

    def clear(self) -> None:
        """Forget every backbone (the next call loads again)."""
        self._loaded.clear()

    def __call__(self, settings: RunSettings):
        """The backbone for ``settings``, loaded on first use."""
        backbone = self.get(settings)
        if backbone is None:
            backbone = self._load(settings)
            self.put(settings, backbone)
        return backbone
