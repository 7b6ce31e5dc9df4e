"""Jobs over the engine that the front ends share: one runner per job, with its settings.

`settings` (`RunSettings`: factors, backbone, resolution; `BackboneCache`), `runner` (`run_video`:
the one loop that propagates a whole video), `evaluation` (a sequence run and scored against
ground truth), `experiments` (run records and factor grids), `batch` (many videos in worker
processes), `ray_batch` (the same batch as Ray tasks; Ray optional, imported only there) and `sample`
(the bundled sample clip).
"""
