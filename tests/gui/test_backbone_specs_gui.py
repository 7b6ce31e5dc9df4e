"""The factors panel splits a backbone spec into backbone and stage and joins them back, ensembles included."""

from __future__ import annotations

import pytest

from annotator.gui.factor_rows import BACKBONES
from annotator.gui.factors_panel import join_backbone, split_backbone


@pytest.mark.parametrize("spec, parts", [
    ("lite0", ("lite0", "default")),
    ("lite2:s5", ("lite2", "s5")),
    ("checkpoint:/a/b:c.pth", ("checkpoint:/a/b:c.pth", "default")),
    ("lite0&lite2", ("lite0&lite2", "default")),
    ("lite0:s5&lite2:s5", ("lite0&lite2", "s5")),
    ("lite0:s3&lite2:s5", ("lite0:s3&lite2:s5", "default")),  # stays whole: no one stage
])
def test_split_and_join_are_inverse(spec: str, parts: tuple[str, str]) -> None:
    assert split_backbone(spec) == parts
    assert join_backbone(*parts) == spec


def test_an_ensembles_stage_goes_to_members_naming_none() -> None:
    assert join_backbone("lite0&lite2", "s4+s5") == "lite0:s4+s5&lite2:s4+s5"
    assert join_backbone("lite0:s3&lite2", "s5") == "lite0:s3&lite2:s5"


def test_the_backbone_list_offers_the_lite_family_and_an_ensemble() -> None:
    assert {"lite0", "lite1", "lite2", "lite0&lite2"} <= set(BACKBONES)
