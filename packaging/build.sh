#!/usr/bin/env bash
# Builds the standalone app (PyInstaller, one folder) from this checkout:
#
#     bash packaging/build.sh        ->  packaging/dist/annotator/annotator (the last line printed)
#
# in a venv of its own, packaging/.build-venv (made on the first run, remade when pyproject.toml,
# this script or the settings below change), with a CPU-only torch so that the bundle carries no CUDA libraries.
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
$(cat "$root/pyproject.toml" "$here/build.sh")"
stamp=$(printf '%s' "$stamp_text" | sha256sum | cut -c1-16)
if [[ ! -x $venv/bin/python || "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]]; then
    log "making the build venv $venv (torch: $TORCH_SPEC)"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    pip=("$venv/bin/python" -m pip --disable-pip-version-check)
    "${pip[@]}" install --quiet --upgrade pip
    # torch first and CPU-only, then held there by a constraint: a newer torchvision would otherwise
    # replace it with PyPI's CUDA torch (4 GB of NVIDIA libraries)
    # shellcheck disable=SC2086
    "${pip[@]}" install --quiet "$TORCH_SPEC" $TORCHVISION_SPEC
    copy=$(mktemp -d)
    "$venv/bin/python" -c 'import torch; print("torch==" + torch.__version__)' > "$copy/constraints.txt"
    # the project's other dependencies, from its pyproject; installed from a copy (an install writes
    # build/ and *.egg-info into the source) and removed again: the spec bundles the checkout's code
    cp -r "$root/pyproject.toml" "$root/README.md" "$root/annotator" "$copy/"
    "${pip[@]}" install --quiet --constraint "$copy/constraints.txt" "$copy"
    rm -rf "$copy"
    "${pip[@]}" uninstall --quiet --yes annotator
    # torchvision only when asked for (the project's dependency brought PyPI's, built for CUDA torch)
    [[ -n $TORCHVISION_SPEC ]] || "${pip[@]}" uninstall --quiet --yes torchvision
    # shellcheck disable=SC2086
    "${pip[@]}" install --quiet $PYINSTALLER_SPEC
    if [[ $TORCH_SPEC == *+cpu* ]] && "$venv/bin/python" -c 'import sys, importlib.util as u; sys.exit(0 if u.find_spec("nvidia") else 1)'; then
        log "error: the build venv holds NVIDIA CUDA packages although TORCH_SPEC asks for a CPU torch"
        exit 1
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
