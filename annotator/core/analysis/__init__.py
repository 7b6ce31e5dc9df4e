"""Scores and diagnostics of propagated labels.

`metrics` (DAVIS J and F, sequence and dataset means; keypoint PCK), `diagnostics` (scores per
frame against ground truth, error and confidence maps, the uncertainty of a frame) and `suggest`
(the next frame to correct, calibrated by the corrections a person made).
"""
