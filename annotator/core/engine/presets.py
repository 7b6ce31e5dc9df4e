"""Named trade-offs between propagation quality and speed, each measured (bench/RESULTS.md).

A preset sets the factors that decide the speed: mirror features (twice the backbone), the radius,
the length and spacing of the local context and the grid step of whole-frame references.
Everything else stays as the caller has it.
Figures: mean J&F on ../shared/data/davis2016 (lite0, 480p) and frames/s end to end on 2 CPU cores
as ``annotator propagate`` runs (``bench/bench_pipeline.py --preset P --engines ahead`` on boat,
60 frames, bfloat16, feature read-ahead).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from annotator.core.features.backbones import DEFAULT_FLIP
from annotator.core.errors import UsageError
from annotator.core.engine.propagation import PropagationParams


@dataclass(frozen=True)
class Preset:
    """Values of the speed-deciding factors, and what they were measured to give."""

    name: str
    flip: bool
    radius: float
    context: int
    context_stride: int
    measured: str
    reference_stride: int = 1
    """One line: mean J&F on davis2016 and frames/s end to end on 2 CPU cores."""

    def apply(self, params: PropagationParams) -> PropagationParams:
        """``params`` with this preset's radius, context and strides."""
        return replace(params, **{name: getattr(self, name) for name in PARAM_FIELDS})

    def matches(self, params: PropagationParams, flip: bool) -> bool:
        """Whether ``params`` and ``flip`` hold this preset's values."""
        return flip == self.flip and all(getattr(params, name) == getattr(self, name) for name in PARAM_FIELDS)


PARAM_FIELDS = ("radius", "context", "context_stride", "reference_stride")
"""The ``PropagationParams`` fields a preset sets (besides the backbone's ``flip``)."""
OPTION_NAMES = ("flip", *PARAM_FIELDS)
"""Command-line destinations a preset fills when they are not given."""


def fill_unset_options(args: Any, name: str) -> None:
    """Set each of :data:`OPTION_NAMES` that is None on ``args`` (an argparse namespace) from preset ``name``."""
    chosen = preset(name)
    for option in OPTION_NAMES:
        if getattr(args, option) is None:
            setattr(args, option, getattr(chosen, option))


_DEFAULTS = PropagationParams()

PRESETS: dict[str, Preset] = {
    "quality": Preset("quality", DEFAULT_FLIP, _DEFAULTS.radius, _DEFAULTS.context, _DEFAULTS.context_stride,
                      "J&F 0.802, 2.7 frames/s on 2 CPU cores (the defaults)"),
    "balanced": Preset("balanced", True, 12.0, 10, 2, "J&F 0.798, 4.1-4.5 frames/s on 2 CPU cores"),
    "fast": Preset("fast", False, 12.0, 10, 2, "J&F 0.775, 6.0 frames/s on 2 CPU cores", reference_stride=2),
}
DEFAULT_PRESET = "quality"


def preset(name: str) -> Preset:
    """The preset called ``name``; a one-line UsageError names the others."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}") from None
