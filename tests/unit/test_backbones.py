"""Backbones: shapes, unit norm, stride 8, weight loading (embedded, files, user checkpoints), devices.

Everything runs offline on the CPU with small inputs; downloads are monkeypatched away.
"""

from __future__ import annotations

import argparse
import math
import sys
import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from annotator.core.features.backbones import Backbone, available_backbones, load_backbone
from annotator.core.features.backbones import device as device_mod
from annotator.core.features.backbones import lite as lite0_mod
from annotator.core.features.backbones.resnet import IMAGENET_MEAN, IMAGENET_STD, imagenet_url
from annotator.core.errors import BackboneError, UsageError
from tests.backbone_helpers import assert_unit_norm, float32_cpu, one_thread, random_frames  # noqa: F401 (fixtures)




# ---------------------------------------------------------------- EfficientNet-Lite0


@pytest.fixture(scope="module")
def classifier() -> lite0_mod.EfficientNetLite:
    return lite0_mod.load_classifier()


def test_lite0_loads_embedded_weights_with_strict_keys(classifier) -> None:
    state = torch.load(lite0_mod.weights_path(), map_location="cpu", weights_only=True)
    assert set(classifier.state_dict()) == set(state)
    assert torch.equal(classifier._blocks[15]._project_conv.weight, state["_blocks.15._project_conv.weight"])


def test_lite0_classifier_is_deterministic_and_shaped(classifier) -> None:
    x = random_frames(1, 224, 224).float()
    with torch.inference_mode():
        a, b = classifier(x), classifier(x)
    assert a.shape == (1, 1000)
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)


@pytest.mark.parametrize("stage", ["s3", "s4", "s5", "s6", "s7", "s4+s5"])
def test_lite0_stages_give_unit_norm_stride8_maps(stage: str) -> None:
    backbone = load_backbone("lite0", stage=stage, device="cpu")
    expected_c = sum(lite0_mod.STAGE_CHANNELS[s] for s in stage.split("+"))
    feats = backbone(random_frames())
    assert backbone.channels == expected_c
    assert backbone.name == f"lite0:{stage}"
    assert feats.shape == (2, expected_c, 8, 12)
    assert feats.dtype == torch.float32
    assert_unit_norm(feats)


def test_lite0_input_size_not_multiple_of_8() -> None:
    backbone = load_backbone("lite0:s5", device="cpu")
    feats = backbone(random_frames(1, 61, 93))
    assert feats.shape == (1, 112, math.ceil(61 / 8), math.ceil(93 / 8))
    assert_unit_norm(feats)


def test_lite0_s3_matches_classifier_blocks(classifier) -> None:
    # s3 is naturally at stride 8: the cut, fused network must equal the classifier's first 5 blocks.
    x = random_frames(1, 64, 96)
    with torch.inference_mode():
        y = classifier.stem(x.float())
        for block in classifier._blocks[:5]:
            y = block(y)
    expected = F.normalize(y, dim=1)
    got = load_backbone("lite0:s3", device="cpu")(x)
    assert torch.allclose(got, expected, atol=1e-4)


def test_lite0_stride_removal_and_dilation() -> None:
    plain = lite0_mod.build_lite0("s7")
    dilated = lite0_mod.build_lite0("s7", dilate=True)
    strides = [b._depthwise_conv.stride[0] for b in plain._blocks]
    assert strides[5] == 1 and strides[11] == 1  # stride-2 blocks of stages 4 and 6
    assert [b._depthwise_conv.dilation[0] for b in plain._blocks] == [1] * 16
    assert [b._depthwise_conv.dilation[0] for b in dilated._blocks][5:] == [1, 2, 2, 2, 2, 2, 2, 4, 4, 4, 4]
    x = random_frames(1, 64, 96).float()
    with torch.inference_mode():
        a, b = plain(x), dilated(x)
    assert a.shape == b.shape == (1, 320, 8, 12)
    assert not torch.allclose(a, b)


def test_lite0_combination_is_normalised_concatenation() -> None:
    x = random_frames(1, 64, 96)
    s4 = load_backbone("lite0:s4", device="cpu")(x)
    s5 = load_backbone("lite0:s5", device="cpu")(x)
    both = load_backbone("lite0:s4+s5", device="cpu")(x)
    assert torch.allclose(both, torch.cat([s4, s5], dim=1) / math.sqrt(2), atol=1e-5)


def test_same_padding_is_tf_style_asymmetric() -> None:
    conv = lite0_mod.SameConv2d(1, 1, 3, stride=2)
    x = torch.randn(1, 1, 8, 8)
    # TF "same", 8 -> 4 with k=3, s=2: total padding 1, all of it bottom/right.
    expected = F.conv2d(F.pad(x, [0, 1, 0, 1]), conv.weight, stride=2)
    assert torch.allclose(conv(x), expected)
    assert conv(torch.randn(1, 1, 7, 9)).shape[-2:] == (4, 5)


def test_lite0_bad_stage_and_bad_input() -> None:
    with pytest.raises(BackboneError, match="s9"):
        load_backbone("lite0", stage="s9", device="cpu")
    with pytest.raises(BackboneError, match="s2"):
        load_backbone("lite0:s2", device="cpu")
    backbone = load_backbone("lite0:s3", device="cpu")
    with pytest.raises(TypeError):
        backbone(random_frames().float())
    with pytest.raises(ValueError):
        backbone(random_frames()[0])


# ---------------------------------------------------------------- ResNets


def _resnet_state(arch: str = "resnet18", seed: int = 0) -> dict[str, torch.Tensor]:
    """A random torchvision state dict whose BatchNorm statistics are not the identity."""
    torch.manual_seed(seed)
    state = getattr(torchvision.models, arch)(weights=None).state_dict()
    gen = torch.Generator().manual_seed(seed)
    for key, value in state.items():
        if key.endswith("running_mean"):
            state[key] = torch.randn(value.shape, generator=gen) * 0.1
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=gen) + 0.5
    return state


def _manual_trunk(state: dict[str, torch.Tensor], frames: torch.Tensor) -> torch.Tensor:
    net = torchvision.models.resnet18(weights=None)
    net.load_state_dict(state)
    net.layer3[0].conv1.stride = (1, 1)
    net.layer3[0].downsample[0].stride = (1, 1)
    trunk = torch.nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3).eval()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.inference_mode():
        return F.normalize(trunk((frames.float() / 255 - mean) / std), dim=1)


@pytest.fixture(scope="module")
def r18_state() -> dict[str, torch.Tensor]:
    return _resnet_state("resnet18")


def test_resnet18_weights_file_matches_manual_truncation(tmp_path, r18_state) -> None:
    path = tmp_path / "r18.pth"
    torch.save(r18_state, path)
    backbone = load_backbone("resnet18", weights=path, device="cpu")
    frames = random_frames()
    feats = backbone(frames)
    assert backbone.name == "resnet18:layer3@r18.pth"
    assert backbone.channels == 256 and feats.shape == (2, 256, 8, 12)
    assert torch.allclose(feats, _manual_trunk(r18_state, frames), atol=1e-4)
    report = backbone.load_report
    assert report.arch == "resnet18" and report.prefix == "" and report.unexpected == ()
    assert report.ignored == sum(k.startswith(("fc.", "layer4.")) for k in r18_state)


def test_checkpoint_with_container_and_prefix(tmp_path, r18_state) -> None:
    path = tmp_path / "crw.pth"
    torch.save({"state_dict": {"module.model.encoder." + k: v for k, v in r18_state.items()}}, path)
    backbone = load_backbone(f"checkpoint:{path}", device="cpu")
    frames = random_frames(1, 61, 93)
    assert backbone.name.startswith("resnet18:layer3")
    assert backbone.load_report.prefix == "module.model.encoder."
    assert torch.allclose(backbone(frames), _manual_trunk(r18_state, frames), atol=1e-4)


def test_crw_style_checkpoint_with_args_head_and_reflect_padding(tmp_path, r18_state) -> None:
    # CRW saves {"model": CRW.state_dict(), "args": Namespace}; its encoder is "encoder.model.*"
    # and some of its convs are "conv1.1.weight" (Sequential(pad, conv)).
    model = {"encoder.model." + k.replace("layer1.0.conv1.weight", "layer1.0.conv1.1.weight"): v
             for k, v in r18_state.items()}
    model["selfsim_fc.0.weight"] = torch.zeros(128, 256)
    path = tmp_path / "crw_scratch.pth"
    torch.save({"model": model, "epoch": 3, "args": argparse.Namespace(model_type="scratch")}, path)
    backbone = load_backbone(f"checkpoint:{path}", device="cpu")
    report = backbone.load_report
    assert report.prefix == "encoder.model." and report.outside == 1
    assert "reflect padding" in report.notes
    assert backbone(random_frames(1)).shape == (1, 256, 8, 12)
    assert not torch.allclose(backbone(random_frames(1)), _manual_trunk(r18_state, random_frames(1)), atol=1e-3)


def test_moco_style_checkpoint_uses_query_encoder(tmp_path, r18_state) -> None:
    state = {"module.encoder_q." + k: v for k, v in r18_state.items()}
    state.update({"module.encoder_k." + k: torch.zeros_like(v) for k, v in r18_state.items()})
    path = tmp_path / "moco.pth"
    torch.save({"state_dict": state, "epoch": 200}, path)
    backbone = load_backbone(f"checkpoint:{path}", device="cpu")
    assert backbone.load_report.prefix == "module.encoder_q."
    assert backbone.load_report.outside == len(r18_state)
    frames = random_frames(1)
    assert torch.allclose(backbone(frames), _manual_trunk(r18_state, frames), atol=1e-4)


def test_resnet_layer2_stage(tmp_path, r18_state) -> None:
    path = tmp_path / "r18.pth"
    torch.save(r18_state, path)
    backbone = load_backbone("resnet18:layer2", weights=path, device="cpu")
    assert backbone.name == "resnet18:layer2@r18.pth" and backbone.channels == 128
    feats = backbone(random_frames(1, 61, 93))
    assert feats.shape == (1, 128, 8, 12)
    assert_unit_norm(feats)
    assert backbone.load_report.ignored == sum(k.startswith(("fc.", "layer3.", "layer4.")) for k in r18_state)


def test_checkpoint_missing_layer3_names_missing_keys(tmp_path, r18_state) -> None:
    path = tmp_path / "truncated.pth"
    torch.save({"model": {"backbone." + k: v for k, v in r18_state.items() if not k.startswith("layer3.")}}, path)
    with pytest.raises(BackboneError, match=r"lacks \d+ weights .*layer3\.0\.conv1\.weight"):
        load_backbone(f"checkpoint:{path}", device="cpu")


def test_unknown_keys_under_prefix_warn(tmp_path, r18_state) -> None:
    path = tmp_path / "extra.pth"
    torch.save({**r18_state, "layer2.0.adapter.weight": torch.zeros(3)}, path)
    with pytest.warns(UserWarning, match="layer2.0.adapter.weight"):
        backbone = load_backbone(f"checkpoint:{path}", device="cpu")
    assert backbone.load_report.unexpected == ("layer2.0.adapter.weight",)


def test_resnet50_checkpoint_is_detected(tmp_path) -> None:
    state = {k: v for k, v in _resnet_state("resnet50").items() if not k.startswith(("layer4.", "fc."))}
    path = tmp_path / "vfs.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": {"backbone." + k: v for k, v in state.items()}}, path)
    backbone = load_backbone(f"checkpoint:{path}", device="cpu")
    assert backbone.load_report.arch == "resnet50"
    assert backbone.channels == 1024
    feats = backbone(random_frames(1, 64, 64))
    assert feats.shape == (1, 1024, 8, 8)
    assert_unit_norm(feats)
    with pytest.raises(BackboneError, match="resnet50, not a resnet18"):
        load_backbone("resnet18", weights=path, device="cpu")


def test_imagenet_download_failure_names_url(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    url = imagenet_url("resnet18")
    assert url.startswith("https://download.pytorch.org/models/resnet18-")
    with pytest.raises(BackboneError, match="could not download resnet18") as info:
        load_backbone("resnet18", device="cpu")
    assert url in str(info.value) and "--weights" in str(info.value)


def test_imagenet_weights_come_from_hub_cache(tmp_path, monkeypatch, r18_state) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / imagenet_url("resnet18").rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    torch.save(r18_state, cached)

    def offline(*args, **kwargs):
        raise AssertionError("must not download when the file is cached")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    backbone = load_backbone("resnet18", device="cpu")
    assert backbone.load_report.source == str(cached)
    assert backbone.name == "resnet18:layer3"


def test_unsafe_checkpoint_is_refused(tmp_path) -> None:
    path = tmp_path / "pickled.pth"
    torch.save({"model": {}, "extra": _NotAllowed()}, path)
    with pytest.raises(BackboneError, match="re-save"):
        load_backbone(f"checkpoint:{path}", device="cpu")


class _NotAllowed:
    pass


def test_missing_and_unreadable_files(tmp_path) -> None:
    with pytest.raises(BackboneError, match="not found"):
        load_backbone(f"checkpoint:{tmp_path / 'nope.pth'}", device="cpu")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneError, match="junk.pth"):
        load_backbone(f"checkpoint:{junk}", device="cpu")
    with pytest.raises(BackboneError, match="junk.pth"):
        load_backbone("lite0", weights=junk, device="cpu")


# ---------------------------------------------------------------- registry and devices


def test_unknown_spec_and_device() -> None:
    with pytest.raises(BackboneError, match="unknown backbone 'vgg16'"):
        load_backbone("vgg16", device="cpu")
    with pytest.raises(BackboneError, match="unknown device 'tpu'"):
        load_backbone("lite0", device="tpu")
    with pytest.raises(BackboneError, match="stage"):
        load_backbone("resnet18", stage="s5", device="cpu")


def test_unavailable_cuda_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackboneError, match="CUDA is not available"):
        device_mod.resolve_device("cuda")


def test_auto_device_order(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_mod, "_mps_available", lambda: False)
    assert device_mod.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(device_mod, "_mps_available", lambda: True)
    assert device_mod.resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_mod.resolve_device("auto") == torch.device("cuda")


def test_precision_and_threads(monkeypatch) -> None:
    cpu = torch.device("cpu")
    assert device_mod.resolve_dtype(cpu) == torch.float32  # (this module's CPU has no bf16: see the fixture)
    assert device_mod.resolve_dtype(cpu, half=False) == torch.float32
    assert device_mod.resolve_dtype(torch.device("cuda")) == torch.float16
    assert device_mod.resolve_dtype(torch.device("cuda"), half=False) == torch.float32
    with pytest.raises(UsageError, match="AVX512-BF16"):
        device_mod.resolve_dtype(cpu, half=True)
    with monkeypatch.context() as m:
        m.setattr(device_mod, "cpu_has_bf16", lambda: True)
        assert device_mod.resolve_dtype(cpu, half=True) == torch.bfloat16
        assert device_mod.resolve_dtype(cpu) == torch.bfloat16  # on by default where the CPU has it
    before = torch.get_num_threads()
    try:
        backbone = load_backbone("lite0:s3", device="cpu", threads=2)
        assert torch.get_num_threads() == 2
        assert backbone.dtype == torch.float32 and backbone.device == cpu
    finally:
        torch.set_num_threads(before)
    with pytest.raises(UsageError):
        load_backbone("lite0:s3", device="cpu", threads=0)


def test_available_backbones_and_cache_key(tmp_path, r18_state) -> None:
    lines = available_backbones()
    assert [line.split(":")[0] for line in lines[:3]] == ["lite0", "resnet18", "resnet50"]
    assert any(line.startswith("checkpoint:PATH") for line in lines)
    path = tmp_path / "r18.pth"
    torch.save(r18_state, path)
    a = load_backbone("resnet18", weights=path, device="cpu")
    b = load_backbone("lite0", device="cpu")
    assert isinstance(a, Backbone) and a.cache_key != b.cache_key
    assert str(path.resolve()) in a.cache_key


def test_bfloat16_features_stay_close_to_float32() -> None:
    """Half precision on the CPU (bfloat16) gives nearly the same unit feature vectors."""
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (1, 3, 64, 96), dtype=np.uint8))
    fp32 = load_backbone("lite0:s4", device="cpu")(x)
    model = load_backbone("lite0:s4", device="cpu").model
    bf16 = Backbone(model, name="lite0:s4", channels=fp32.shape[1], device="cpu", dtype=torch.bfloat16)(x)
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape  # features leave as float32
    cosine = (fp32 * bf16).sum(dim=1)
    assert float(cosine.mean()) > 0.99 and float(cosine.min()) > 0.9


def test_flip_augmentation_makes_features_mirror_equivariant() -> None:
    """With --flip the features of a mirrored frame are the mirrored features (up to the padding offset)."""
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 255, (1, 3, 64, 96), dtype=np.uint8))
    plain = load_backbone("lite0:s4", device="cpu")
    flip = load_backbone("lite0:s4", device="cpu", flip=True)
    assert flip.name == "lite0:s4+flip" and flip.cache_key != plain.cache_key  # caches never mix them
    a, b = flip(x), flip(x.flip(-1)).flip(-1)
    assert torch.allclose(a.norm(dim=1), torch.ones(1, 8, 12), atol=1e-5)
    cos_flip = float((a * b).sum(dim=1).mean())
    p, q = plain(x), plain(x.flip(-1)).flip(-1)
    cos_plain = float((p * q).sum(dim=1).mean())
    assert cos_flip > 0.999 > cos_plain  # a single pass is not mirror-symmetric (TF padding, weights)


def test_resnet_without_torchvision_is_a_backbone_error(monkeypatch):
    """The standalone app (packaging/) leaves torchvision out: asking for a ResNet says so (exit code 5), no traceback."""
    for name in [name for name in sys.modules if name.split(".")[0] == "torchvision"] + ["torchvision"]:
        monkeypatch.setitem(sys.modules, name, None)  # import torchvision(.models) -> ImportError
    monkeypatch.delitem(sys.modules, "annotator.core.features.backbones.resnet", raising=False)
    with pytest.raises(BackboneError, match="torchvision"):
        load_backbone("resnet18", device="cpu")
