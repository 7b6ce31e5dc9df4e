"""On a CUDA GPU: the engine, the backbone and a whole run give what they give on the CPU.

Marked ``gpu`` and skipped (with the reason) on a machine without CUDA, as CI is; run them where a
GPU is lent with ``python -m pytest -m gpu tests/unit/test_gpu.py`` (``bench/gpu_check.sh`` does).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from annotator.core.engine.propagation import (ContextFrame, PropagationParams, propagate_frame,
                                               propagate_frame_naive)

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")]


def _context(device: str) -> tuple[torch.Tensor, list[ContextFrame]]:
    gen = torch.Generator().manual_seed(7)
    feats = F.normalize(torch.randn(5, 32, 30, 40, generator=gen), dim=1)
    labels = torch.softmax(torch.randn(4, 3, 30, 40, generator=gen) * 3, dim=1)
    local = [False, True, True, True]  # one whole-frame reference, three recent frames
    context = [ContextFrame(i, feats[i].to(device), labels[i].to(device), local[i]) for i in range(4)]
    return feats[4].to(device), context


@pytest.mark.parametrize("reference_stride", [1, 2])
def test_the_gpu_engine_equals_the_cpu_reference(reference_stride):
    params = PropagationParams(radius=6.0, tile=8, topk=10, precision="float32", reference_stride=reference_stride)
    target, context = _context("cuda")
    cpu_target, cpu_context = _context("cpu")
    on_gpu = propagate_frame(target, context, params)  # dispatches to the torch top-k engine on a GPU
    assert on_gpu.device.type == "cuda"
    naive = propagate_frame_naive(cpu_target, cpu_context, params)
    torch.testing.assert_close(on_gpu.cpu(), naive, atol=1e-4, rtol=1e-4)
    assert torch.equal(on_gpu.argmax(0).cpu(), naive.argmax(0))


def test_lite0_features_on_the_gpu_match_the_cpu_features():
    from annotator.core.features.backbones import load_backbone

    from tests.synthetic import ground_texture

    frames = torch.from_numpy(ground_texture(240, 320, seed=3)).permute(2, 0, 1)[None].contiguous()  # (1, 3, H, W)
    cpu = load_backbone("lite0", device="cpu", half=False)(frames)
    gpu = load_backbone("lite0", device="cuda")(frames)  # half precision there, as the app runs it
    assert gpu.device.type == "cuda" and gpu.shape == cpu.shape
    cosine = (gpu.float().cpu() * cpu.float()).sum(dim=1)  # both L2-normalised per cell
    assert cosine.mean() > 0.99 and cosine.min() > 0.9


def test_a_run_on_the_gpu_writes_the_cpu_runs_masks(tmp_path):
    from annotator.core.io.labels import read_mask
    from annotator.core.runs.batch import BatchJob, run_job
    from annotator.core.runs.settings import RunSettings
    from tests.synthetic import clip_on_disk

    frames, mask, truth = clip_on_disk(tmp_path, n_frames=6)
    outs = {}
    for name, device in (("on-cpu", "cpu"), ("on-gpu", "cuda")):
        run_job(BatchJob(name, frames, mask, tmp_path / name), RunSettings(device=device))
        outs[name] = [read_mask(tmp_path / name / f"{i:05d}.png") for i in range(len(truth))]
    agree = np.mean([np.mean(a == b) for a, b in zip(outs["on-cpu"], outs["on-gpu"])])
    assert agree > 0.99  # half precision on the GPU, bfloat16 or float32 on the CPU: a few edge pixels
    assert np.mean([np.mean(a == t) for a, t in zip(outs["on-gpu"], truth)]) > 0.9
