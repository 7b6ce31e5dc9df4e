#!/usr/bin/env bash
# Builds the standalone app (PyInstaller, one folder) from this checkout:
#
#     bash packaging/build.sh        ->  packaging/dist/annotator/annotator (the last line printed)
#
# in a venv of its own, packaging/.build-venv (made on the first run, remade when pyproject.toml
# or the pins below change), with a CPU-only torch so that the bundle carries no CUDA libraries.
# The project's own code is taken from the checkout, not from an installed copy.
#
# Settings (environment):
#   PYTHON            the interpreter for the venv (default python3; it must be a shared-library build)
#   TORCH_SPEC        the torch to bundle (default torch==2.13.0+cpu: a CPU wheel, on this machine from
#                     pip's configured wheel folder; elsewhere add PyTorch's CPU wheel index to pip)
#   TORCHVISION_SPEC  empty by default: no torchvision, so the resnet18/resnet50 backbones are not in the
#                     bundle (the embedded lite0 is). Give a torchvision built for TORCH_SPEC (a +cpu one
#                     for a CPU torch) to include them.
#   BUILD_VENV        the venv folder (default packaging/.build-venv)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0+cpu}
TORCHVISION_SPEC=${TORCHVISION_SPEC:-}
PYINSTALLER_SPEC="pyinstaller==6.22.3 pyinstaller-hooks-contrib==2026.9"
venv=${BUILD_VENV:-$here/.build-venv}
dist=$here/dist
work=$here/build
start=$(date +%s)

log() { printf 'build.sh: %s\n' "$*" >&2; }

# ---- the build venv ----------------------------------------------------------------------------
stamp_text="$("$PYTHON" -c 'import sys; print(sys.version)')
$TORCH_SPEC
$TORCHVISION_SPEC
$PYINSTALLER_SPEC
$(cat "$root/pyproject.toml")"
stamp=$(printf '%s' "$stamp_text" | sha256sum | cut -c1-16)
if [[ ! -x $venv/bin/python || "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]]; then
    log "making the build venv $venv (torch: $TORCH_SPEC)"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    pip=("$venv/bin/python" -m pip --disable-pip-version-check)
    "${pip[@]}" install --quiet --upgrade pip
    # torch first and CPU-only: the project's "torch>=2.2" is then satisfied, so nothing pulls CUDA torch
    # shellcheck disable=SC2086
    "${pip[@]}" install --quiet "$TORCH_SPEC" $TORCHVISION_SPEC
    # the project's other dependencies, from its pyproject; installed from a copy (an install writes
    # build/ and *.egg-info into the source) and removed again: the spec bundles the checkout's code
    copy=$(mktemp -d)
    cp -r "$root/pyproject.toml" "$root/README.md" "$root/annotator" "$copy/"
    "${pip[@]}" install --quiet "$copy"
    rm -rf "$copy"
    "${pip[@]}" uninstall --quiet --yes annotator
    # shellcheck disable=SC2086
    "${pip[@]}" install --quiet $PYINSTALLER_SPEC
    if "$venv/bin/python" -c 'import sys, importlib.util as u; sys.exit(0 if u.find_spec("nvidia") else 1)'; then
        log "warning: the build venv holds NVIDIA CUDA packages; the bundle will be large"
    fi
    printf '%s' "$stamp" > "$venv/.stamp"
fi
"$venv/bin/python" -c 'import torch; print("build.sh: torch", torch.__version__, "CUDA" if torch.version.cuda else "CPU-only")' >&2

# ---- PyInstaller -------------------------------------------------------------------------------
log "running PyInstaller"
"$venv/bin/python" -m PyInstaller --noconfirm --log-level WARN \
    --distpath "$dist" --workpath "$work" "$here/annotator.spec" >&2

exe=$dist/annotator/annotator
[[ -f $exe.exe ]] && exe=$exe.exe
[[ -x $exe ]] || { log "no executable at $exe"; exit 1; }
end=$(date +%s)
log "built in $((end - start)) s; the folder holds $(du -sh "$dist/annotator" | cut -f1)"
echo "$exe"
