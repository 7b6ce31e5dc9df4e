"""Named trade-offs between propagation quality and speed, each measured (bench/RESULTS.md).

A preset sets the factors that decide the speed: mirror features (twice the backbone), the radius,
the length and spacing of the local context, the grid step of whole-frame references, and the
labels' sub-cells with island pruning (``label_detail``, ``islands``: 7% more propagation time, measured);
the background bias of the label maps, the appearance model's weight and the reference flow, which
cost little (the flow ~32 ms a frame from frame 0) but were measured with the sub-cells of best and quality only (the
others keep 0, as they were measured); the colour grow of the masks (``colour_grow``, about 0.46 s a frame
at 854 x 480: on in ``best`` only, the one preset measured with it, session 53); and the working resolution
(``short_side``: the frames' short side in pixels, which the radius must follow to keep its reach).
Everything else stays as the caller has it. The defaults are ``best`` (since session 39; ``quality``,
the same factors at 480, before).
Figures: mean J&F on the original ten sequences of ../shared/data/davis2016 (lite0, first-frame
protocol) and frames/s end to end as ``annotator propagate`` runs (``bench/bench_pipeline.py --preset P
--engines ahead`` on boat, 60 frames, feature read-ahead; the four measured one after the other in
session 39) on 2 cores of an AMD EPYC with AVX512-BF16 (bfloat16); the app computes with one thread on
a 2-core machine, where `best` ran at 0.65 frames/s and `quality` at 1.69 (README).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from annotator.core.features.backbones import DEFAULT_FLIP
from annotator.core.errors import UsageError
from annotator.core.engine.propagation import PropagationParams
from annotator.core.video import DEFAULT_SHORT_SIDE


@dataclass(frozen=True)
class Preset:
    """Values of the speed-deciding factors, and what they were measured to give."""

    name: str
    flip: bool
    radius: float
    context: int
    context_stride: int
    measured: str
    """One line: mean J&F on davis2016 and frames/s end to end on 2 CPU cores."""
    reference_stride: int = 1
    label_detail: int = 1
    islands: bool = False
    background_bias: float = 0.0
    appearance: float = 0.0
    reference_flow: float = 0.0
    colour_grow: bool = False
    """Masks grown by colour (``PropagationParams.colour_grow``): about 0.46 s more a frame at 854 x 480."""
    short_side: int = 480
    """Working resolution (the app's default is ``RunSettings.short_side``, 600: the ``best`` preset's)."""

    def apply(self, params: PropagationParams) -> PropagationParams:
        """``params`` with this preset's radius, context, strides, label detail, island pruning, background bias,
        appearance weight, reference flow and colour grow (the working resolution, ``short_side``, is the caller's to set: it belongs to ``RunSettings``)."""
        return replace(params, **{name: getattr(self, name) for name in PARAM_FIELDS})

    def radius_at(self, short_side: int | None) -> float:
        """This preset's radius at working size ``short_side``, scaled to keep its reach in pixels (None or 0,
        the frames' own size, whose pixels are not known here: the radius as it is)."""
        if short_side and short_side != self.short_side:
            return scaled_radius(self.radius, self.short_side, short_side)
        return self.radius

    def matches(self, params: PropagationParams, flip: bool, short_side: int | None) -> bool:
        """Whether ``params``, ``flip`` and ``short_side`` (None: the frames' own size) hold this preset's values."""
        return (flip == self.flip and short_side == self.short_side
                and all(getattr(params, name) == getattr(self, name) for name in PARAM_FIELDS))


PARAM_FIELDS = ("radius", "context", "context_stride", "reference_stride", "label_detail", "islands",
                "background_bias", "appearance", "reference_flow", "colour_grow")
"""The ``PropagationParams`` fields a preset sets (besides the backbone's ``flip``)."""
OPTION_NAMES = ("flip", "short_side", *PARAM_FIELDS)
"""Command-line destinations a preset fills when they are not given."""


def fill_unset_options(args: Any, name: str) -> None:
    """Set each of :data:`OPTION_NAMES` that is None on ``args`` (an argparse namespace) from preset ``name``.

    A working size given without a radius takes the preset's radius scaled to it (the same reach in
    pixels, as the presets themselves are defined); 0, the frames' own size, keeps the preset's radius."""
    chosen = preset(name)
    radius_given = args.radius is not None
    for option in OPTION_NAMES:
        if getattr(args, option) is None:
            setattr(args, option, getattr(chosen, option))
    if not radius_given:
        args.radius = chosen.radius_at(args.short_side)


def scaled_radius(radius: float, from_side: int, to_side: int) -> float:
    """``radius`` (feature cells at working size ``from_side``) for working size ``to_side``: the same reach in pixels."""
    return radius * to_side / from_side


_DEFAULTS = PropagationParams()
_QUALITY_SHORT_SIDE = 480

PRESETS: dict[str, Preset] = {
    # the defaults' own values, field by field (a field added to PARAM_FIELDS cannot be left behind), at
    # the default working size: a simulated annotator paints fewer frames than with `quality`, on both
    # halves of davis2016, for about 2.2x its time per frame (bench/RESULTS.md)
    "best": Preset("best", DEFAULT_FLIP,
                   measured="DAVIS J&F 0.866 (0.846 on all 20 sequences; 0.851 and 0.829 without the colour grow); "
                            "a simulated annotator painted 9.8 frames per 100 on all 20 to reach J >= 0.8 (10.8 without the grow); "
                            "0.94 frames/s on 2 CPU cores before the grow, which adds about 0.46 s a frame; "
                            "working size 600 (the defaults)",
                   **{name: getattr(_DEFAULTS, name) for name in PARAM_FIELDS}, short_side=DEFAULT_SHORT_SIDE),
    # the defaults' factors at working size 480, the radius scaled with it (the same reach in pixels), without
    # the colour grow (measured so; it would cost about 0.46 s a frame): the default before session 39
    "quality": Preset("quality", DEFAULT_FLIP,
                      measured="DAVIS J&F 0.832 (0.811 on all 20 sequences); a simulated annotator painted 19.0 "
                               "frames per 100 on all 20; 1.85 frames/s on 2 CPU cores, working size 480",
                      **{name: getattr(_DEFAULTS, name) for name in PARAM_FIELDS if name not in ("radius", "colour_grow")},
                      radius=scaled_radius(_DEFAULTS.radius, DEFAULT_SHORT_SIDE, _QUALITY_SHORT_SIDE),
                      short_side=_QUALITY_SHORT_SIDE),
    "balanced": Preset("balanced", True, 12.0, 10, 2, "DAVIS J&F 0.798, 3.90 frames/s on 2 CPU cores"),
    "fast": Preset("fast", False, 12.0, 10, 2, "DAVIS J&F 0.775, 5.10 frames/s on 2 CPU cores", reference_stride=2),
}
DEFAULT_PRESET = "best"


def preset(name: str) -> Preset:
    """The preset called ``name``; a one-line UsageError names the others."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}") from None
