"""The propagation engine: label maps carried from reference frames to the others by feature affinity.

`propagation` (the factors, `PropagationParams`; one frame's local-window and naive engines; the
`propagate` generator and its context), `keyframes` (spans filled from both ends and fused),
`pipeline` (a whole video span by span), `upsampling` and `part_groups` (soft labels to label
maps), `topk_select` (the compiled running top-k), `flow` (the optical-flow cue), `presets`
(measured speed/quality trade-offs) and `keypoints` (points as heat-map labels through the same
engine). Imports no runs, project or GUI (tests/unit/test_layering.py).
"""
