"""torchvision ResNets cut after ``layer3`` at stride 8, with ImageNet or user weights.

``layer4`` and the classifier are dropped and ``layer3`` loses its stride (its first block: the
strided conv and the downsample conv), so the output is 256 (ResNet-18) or 1024 (ResNet-50)
channels at stride 8, as in CRW and McKee et al. Inputs are normalised with the ImageNet
mean/std (what CRW, VFS and torchvision all use at test time).

Weights come from, in this order of preference:

* a user checkpoint (``checkpoint:PATH``): CRW, VFS, MoCo, DINO, ... state dicts, possibly
  wrapped (``{"model": ...}``, ``{"state_dict": ...}``) and prefixed (``module.``,
  ``encoder.model.``, ``backbone.``); the architecture is detected from the keys;
* a local torchvision state dict (``weights=PATH``);
* torchvision's ImageNet file, from the torch hub cache or downloaded into it.

Files are read with ``torch.load(weights_only=True)``: a checkpoint that needs arbitrary pickled
objects is refused with a message saying how to re-save it.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping
from urllib.parse import urlparse

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models import ResNet18_Weights, ResNet50_Weights
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from annotator.core.errors import BackboneError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

RESNET_STAGES = ("layer3", "layer2")
DEFAULT_RESNET_STAGE = "layer3"

# Containers checkpoints wrap their weights in, most specific first.
_CONTAINER_KEYS = (
    "state_dict", "model", "model_state", "model_state_dict", "net", "network",
    "encoder", "backbone", "teacher", "module",
)
# Prefixes that wrappers put in front of the ResNet's own keys (CRW: "encoder.model.",
# DataParallel: "module.", VFS / mmcv: "backbone.", MoCo: "module.encoder_q.").
_PREFIX_TOKENS = (
    "module", "model", "encoder", "backbone", "resnet", "net", "encoder_q", "feature_extractor",
)
_BLOCK_KEY = re.compile(r"^layer([1-4])\.(\d+)\.")
# Some CRW checkpoints wrap a block conv in Sequential(pad, conv): "conv1.1.weight".
_WRAPPED_CONV = re.compile(r"(^|\.)conv(\d)\.1\.weight$")
# (block, blocks in layer1..3) -> torchvision name.
_KNOWN_ARCHS = {
    ("basic", (2, 2, 2)): "resnet18",
    ("basic", (3, 4, 6)): "resnet34",
    ("bottleneck", (3, 4, 6)): "resnet50",
    ("bottleneck", (3, 4, 23)): "resnet101",
    ("bottleneck", (3, 8, 36)): "resnet152",
}
_NAMED_ARCHS = {"resnet18": ("basic", (2, 2, 2)), "resnet50": ("bottleneck", (3, 4, 6))}


@dataclass(frozen=True)
class LoadReport:
    """What happened when weights were loaded into the network (``Backbone.load_report``)."""

    source: str  # file or url the weights came from
    arch: str  # e.g. "resnet50"
    prefix: str = ""  # key prefix that was stripped, e.g. "module.encoder.model."
    loaded: int = 0  # tensors loaded
    ignored: int = 0  # fc / layer4 tensors, not needed at stride 8
    outside: int = 0  # tensors not under the prefix (heads, momentum encoders, ...)
    unexpected: tuple[str, ...] = ()  # under the prefix but unknown to the network (ignored)
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class _Arch:
    block: Literal["basic", "bottleneck"]
    counts: tuple[int, int, int]  # blocks in layer1..layer3
    width: int = 64  # bottleneck width of layer1 (128 for wide ResNets)

    @property
    def name(self) -> str:
        known = _KNOWN_ARCHS.get((self.block, self.counts))
        if known and self.width == 64:
            return known
        if known and self.block == "bottleneck":
            return f"wide_{known}_{self.width // 64}"
        return f"resnet({self.block}, layers={list(self.counts)}, width={self.width})"


class ResNetTrunk(nn.Module):
    """conv1 .. ``last`` of a torchvision ResNet, ``layer3`` without stride.

    ``forward`` takes float RGB 0..255 (B, 3, H, W) and returns (B, C, ceil(H/8), ceil(W/8)).
    Module names match torchvision's, so state dict keys do too.
    """

    def __init__(self, net: ResNet, last: str = DEFAULT_RESNET_STAGE) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2 = net.layer1, net.layer2
        self.layers = [self.layer1, self.layer2]
        if last == "layer3":
            self.layer3 = net.layer3
            # BasicBlock strides conv1, torchvision's Bottleneck conv2; both stride downsample.0.
            for module in self.layer3[0].modules():
                if isinstance(module, nn.Conv2d):
                    module.stride = (1, 1)
            self.layers.append(self.layer3)
        last_block = self.layers[-1][-1]
        self.channels = (last_block.bn3 if hasattr(last_block, "bn3") else last_block.bn2).num_features
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0
        self.register_buffer("_in_mean", mean, persistent=False)
        self.register_buffer("_in_inv_std", 1.0 / std, persistent=False)

    def fuse_batchnorm(self) -> ResNetTrunk:
        """Fold every BatchNorm into the conv before it (inference only, after loading weights)."""

        def fold(owner: nn.Module, conv: str, bn: str) -> None:
            setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, bn)))
            setattr(owner, bn, nn.Identity())

        self.eval()
        fold(self, "conv1", "bn1")
        for layer in self.layers:
            for block in layer:
                for i in (1, 2, 3):
                    if hasattr(block, f"conv{i}"):
                        fold(block, f"conv{i}", f"bn{i}")
                if block.downsample is not None:
                    block.downsample = fuse_conv_bn_eval(block.downsample[0], block.downsample[1])
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self._in_mean) * self._in_inv_std
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        for layer in self.layers:
            x = layer(x)
        return x  # (B, C, H/8, W/8)


def imagenet_url(arch: str) -> str:
    """URL of torchvision's ImageNet weights for ``arch`` ("resnet18" or "resnet50")."""
    weights = {"resnet18": ResNet18_Weights.IMAGENET1K_V1, "resnet50": ResNet50_Weights.IMAGENET1K_V1}
    return weights[arch].url


def _safe_globals() -> list[Any]:
    """Harmless non-tensor types that training scripts put in checkpoints (CRW saves its
    ``argparse.Namespace``, others numpy scalars), allowed for ``weights_only`` loading."""
    import numpy as np

    allowed: list[Any] = [argparse.Namespace, np.dtype]
    core = getattr(np, "_core", None) or np.core
    allowed.append(core.multiarray.scalar)
    allowed.extend(type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool"))
    return allowed


def read_checkpoint(path: str | os.PathLike) -> Any:
    """``torch.load`` a file safely (tensors and plain containers only); BackboneError if unreadable."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise BackboneError(f"weights file not found: {path}")
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise BackboneError(
            f"{path} stores Python objects{what} that cannot be loaded safely; if you trust it, re-save "
            f"only the weights: torch.save(torch.load({str(path)!r}, weights_only=False)['model'], 'weights.pth')"
        ) from exc
    except Exception as exc:  # corrupt zip, truncated file, not a torch file...
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackboneError(f"cannot read weights file {path}: {first_line}") from exc


def _tensors(obj: Any) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    return {}


def unwrap_state_dict(obj: Any, path: str | os.PathLike = "") -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint: the object itself or one of its containers."""
    for _ in range(4):
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        own = _tensors(obj)
        # Stop at the level that holds most of the tensors (some checkpoints mix both).
        if inner is None or len(own) >= len(_tensors(inner)) and own:
            break
        obj = inner
    state = _tensors(obj)
    if not state:
        raise BackboneError(f"no weights found in {path}: expected a state dict or a dict holding one")
    return state


def _find_prefix(keys: list[str]) -> str | None:
    """The prefix in front of the ResNet stem's ``conv1.weight``; with several (MoCo's query and
    key encoders), the one made of known wrapper names, then the shortest."""
    keyset = set(keys)
    candidates = []
    for key in keys:
        if key.endswith("conv1.weight"):
            # Block convs ("layer1.0.conv1.weight") fail the layer1 check below.
            prefix = key[: -len("conv1.weight")]
            if prefix and not prefix.endswith("."):
                continue
            if prefix + "layer1.0.conv1.weight" in keyset:
                candidates.append(prefix)
    if not candidates:
        return None

    def rank(prefix: str) -> tuple[int, int]:
        tokens = [t for t in prefix.split(".") if t]
        return (0 if all(t in _PREFIX_TOKENS for t in tokens) else 1, len(prefix))

    return min(candidates, key=rank)


def _unwrap_convs(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``...conv1.1.weight`` -> ``...conv1.weight`` where that key does not exist already."""
    out = {}
    for key, value in state.items():
        plain = _WRAPPED_CONV.sub(r"\1conv\2.weight", key)
        out[plain if plain != key and plain not in state else key] = value
    return out


def _strip_known_tokens(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for token in _PREFIX_TOKENS:
            if key.startswith(token + "."):
                key, changed = key[len(token) + 1 :], True
    return key


def detect_arch(state: Mapping[str, torch.Tensor]) -> _Arch | None:
    """Block type, block counts of layer1..3 and width, read from a (prefix-free) state dict."""
    counts = [0, 0, 0]
    for key in state:
        match = _BLOCK_KEY.match(key)
        if match and int(match.group(1)) <= 3:
            layer = int(match.group(1)) - 1
            counts[layer] = max(counts[layer], int(match.group(2)) + 1)
    if not counts[0] or not counts[1]:
        return None
    block = "bottleneck" if "layer1.0.conv3.weight" in state else "basic"
    if not counts[2]:
        # layer3 absent (a truncated checkpoint): assume the usual depth so that loading can
        # name the missing layer3 keys instead of failing on the architecture.
        guess = next((c for (b, c) in _KNOWN_ARCHS if b == block and c[:2] == tuple(counts[:2])), None)
        if guess is None:
            return None
        counts[2] = guess[2]
    stem = state.get("layer1.0.conv1.weight")
    width = int(stem.shape[0]) if block == "bottleneck" and stem is not None else 64
    return _Arch(block, tuple(counts), width)


def _build_net(arch: _Arch) -> ResNet:
    block = Bottleneck if arch.block == "bottleneck" else BasicBlock
    # layer4 is built (torchvision needs it) and dropped by ResNetTrunk.
    return ResNet(block, [*arch.counts, 1], width_per_group=arch.width)


def _crw_padding(obj: Any) -> str | None:
    # CRW trains its "scratch" ResNet-18 with reflect padding and tests it the same way.
    args = obj.get("args") if isinstance(obj, Mapping) else None
    if getattr(args, "model_type", None) == "scratch":
        return "reflect"
    return None


def _load_into(trunk: ResNetTrunk, state: dict[str, torch.Tensor], source: str, arch: _Arch,
               prefix: str, outside: int, notes: list[str]) -> LoadReport:
    expected = trunk.state_dict()
    not_needed = ("fc.", "layer4.", "avgpool.") + (() if hasattr(trunk, "layer3") else ("layer3.",))
    own: dict[str, torch.Tensor] = {}
    ignored, unexpected = 0, []
    for key, value in state.items():
        if key in expected:
            own[key] = value
        elif key.startswith(not_needed):
            ignored += 1
        else:
            unexpected.append(key)
    missing = [k for k in expected if k not in own and not k.endswith("num_batches_tracked")]
    if missing:
        raise BackboneError(
            f"{source} lacks {len(missing)} weights that {arch.name} needs up to "
            f"{'layer3' if hasattr(trunk, 'layer3') else 'layer2'}, e.g. {', '.join(missing[:4])}"
        )
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in own.items() if v.shape != expected[k].shape]
    if wrong:
        raise BackboneError(f"{source} does not fit {arch.name}: {len(wrong)} tensors of the wrong shape, e.g. {wrong[0]}")
    trunk.load_state_dict(own, strict=False)
    if unexpected:
        warnings.warn(
            f"{source}: ignored {len(unexpected)} unknown weights, e.g. {', '.join(unexpected[:3])}",
            stacklevel=3,
        )
    return LoadReport(source=source, arch=arch.name, prefix=prefix, loaded=len(own), ignored=ignored,
                      outside=outside, unexpected=tuple(unexpected), notes=tuple(notes))


def _imagenet_state(arch: str) -> tuple[dict[str, torch.Tensor], str]:
    url = imagenet_url(arch)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if cached.is_file():
        return unwrap_state_dict(read_checkpoint(cached), cached), str(cached)
    try:
        state = torch.hub.load_state_dict_from_url(url, progress=True, check_hash=True, map_location="cpu",
                                                   weights_only=True)
    except Exception as exc:  # URLError, HTTPError, hash mismatch, disk full...
        raise BackboneError(
            f"could not download {arch} ImageNet weights (no internet?); download {url} and pass --weights FILE"
        ) from exc
    return dict(state), url


def build_resnet(
    arch: str | None,
    *,
    weights: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    stage: str | None = None,
    padding_mode: Literal["zeros", "reflect"] | None = None,
    fuse: bool = True,
) -> tuple[ResNetTrunk, LoadReport]:
    """Build a stride-8 ResNet trunk (eval mode, CPU, float32) and load its weights.

    ``arch`` is "resnet18" / "resnet50", or None with ``checkpoint`` to detect it from the keys.
    ``checkpoint``: a user file, tolerant of containers and prefixes; ``weights``: a file for
    the named ``arch``; neither: torchvision ImageNet weights. ``stage`` is "layer3" (default)
    or "layer2". ``padding_mode`` defaults to zeros, or reflect for a CRW "scratch" checkpoint.
    ``fuse`` folds the BatchNorms into the convolutions once the weights are in.
    Raises BackboneError on any problem with the weights.
    """
    stage = stage or DEFAULT_RESNET_STAGE
    if stage not in RESNET_STAGES:
        raise BackboneError(f"unknown resnet stage {stage!r}; use {' or '.join(RESNET_STAGES)}")
    notes: list[str] = []
    file = checkpoint if checkpoint is not None else weights
    if file is None:
        if arch not in _NAMED_ARCHS:
            raise BackboneError(f"unknown resnet {arch!r}; use resnet18 or resnet50")
        state, source = _imagenet_state(arch)
        obj: Any = state
    else:
        source = str(file)
        obj = read_checkpoint(file)
        state = unwrap_state_dict(obj, file)

    state = _unwrap_convs(state)
    keys = list(state)
    prefix = _find_prefix(keys)
    if prefix is None:
        stripped = {_strip_known_tokens(k): v for k, v in state.items()}
        outside, prefix = 0, ""
    else:
        stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        outside = len(state) - len(stripped)

    detected = detect_arch(stripped)
    if arch is None:
        if detected is None:
            raise BackboneError(
                f"{source} does not look like a ResNet checkpoint (no layer1..layer3 blocks); "
                f"first keys: {', '.join(keys[:3])}"
            )
        found = detected
    else:
        found = _Arch(*_NAMED_ARCHS[arch]) if arch in _NAMED_ARCHS else None
        if found is None:
            raise BackboneError(f"unknown resnet {arch!r}; use resnet18 or resnet50")
        if detected is not None and detected != found:
            raise BackboneError(
                f"{source} holds a {detected.name}, not a {arch}; use checkpoint:{source} instead"
            )

    trunk = ResNetTrunk(_build_net(found), last=stage)
    padding = padding_mode or _crw_padding(obj) or "zeros"
    if padding != "zeros":
        for module in trunk.modules():
            if isinstance(module, nn.Conv2d) and any(module.padding):
                module.padding_mode = padding
        notes.append(f"{padding} padding")
    report = _load_into(trunk, stripped, source, found, prefix, outside, notes)
    trunk.eval()
    return (trunk.fuse_batchnorm() if fuse else trunk), report
