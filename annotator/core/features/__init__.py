"""Feature maps of frames: the backbones that compute them and the store that computes each once.

`backbones` (the registry `load_backbone(spec)`: lite0/1/2, ResNets, checkpoints, ensembles; devices and
precision), `store` (`FeatureStore`: the features of a video's frames, cached in memory, read
ahead in a background thread) and `cache` (their optional fp16 copy on disk). Imports no engine.
"""
