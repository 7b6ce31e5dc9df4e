#!/usr/bin/env bash
# Smoke test of the built app (minutes: not part of the test suite or CI):
#
#     bash packaging/smoke_test.sh [EXECUTABLE]     # default packaging/dist/annotator/annotator
#
# Runs the bundle's executable as a person would, in a fresh home (so the first start compiles):
#   1. --version, a first start (numba compiles the top-k selection into the per-user cache) and a
#      second one (loaded from that cache);
#   2. propagate on the bundled sample clip writes its 40 masks (--preset fast);
#   3. demo prints J, F, J&F against the clip's true masks;
#   4. propagate --list ... --jobs 2: a batch in worker processes (spawn re-runs the executable);
#   5. the desktop app, offscreen (QT_QPA_PLATFORM=offscreen): the window opens the sample clip,
#      propagates a few frames on its worker, cancels, and stays up a few seconds;
#   6. as root: propagate again as user nobody, to whom the bundle is read-only, with its own cache;
#   7. nothing in the bundle was written by any of this.
# Exit 0 when every step passed; the first failing step ends it with 1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exe=$(realpath "${1:-$here/dist/annotator/annotator}")
bundle=$(dirname "$exe")
[[ -x $exe ]] || { echo "smoke: no executable at $exe (run packaging/build.sh first)" >&2; exit 1; }
internal=$bundle/_internal
sample=$internal/annotator/resources/sample
tmp=$(mktemp -d "${TMPDIR:-/tmp}/annotator-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
touch "$tmp/start-stamp"
sleep 1  # a file the test writes into the bundle would be newer than the stamp, even on 1 s clocks

export HOME=$tmp/home XDG_CACHE_HOME=$tmp/cache XDG_CONFIG_HOME=$tmp/config XDG_DATA_HOME=$tmp/data
unset NUMBA_CACHE_DIR
export QT_QPA_PLATFORM=offscreen
mkdir -p "$HOME"

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'smoke: FAILED: %s\n' "$*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
count_png() { find "$1" -maxdepth 1 -name '*.png' | wc -l; }

echo "smoke: $exe"
echo "smoke: bundle $(du -sh "$bundle" | cut -f1), $(find "$bundle" -type f | wc -l) files"

step "1. --version (first start: numba compiles into the user cache), then again (from the cache)"
t=$(now); out=$("$exe" --version); first=$(since "$t")
echo "$out"
[[ $out =~ ^annotator\ [0-9] ]] || fail "--version printed: $out"
t=$(now); "$exe" --version >/dev/null; second=$(since "$t")
cache=$XDG_CACHE_HOME/annotator/numba
entries=$(find "$cache" -name '*.nbi' 2>/dev/null | wc -l)
echo "first start ${first} s, second start ${second} s; numba cache $cache: $entries index file(s)"
((entries > 0)) || fail "numba wrote no cache under $cache"

step "2. propagate the sample clip from its first mask (--preset fast; the demo runs the defaults)"
t=$(now)
"$exe" propagate "$sample/sample.mp4" --masks "$sample/masks/00000.png" --out "$tmp/masks" --preset fast -q
n=$(count_png "$tmp/masks")
echo "wrote $n masks to $tmp/masks in $(since "$t") s"
((n == 40)) || fail "propagate wrote $n masks, not 40"

step "3. demo: J, F, J&F against the sample's true masks"
t=$(now)
"$exe" demo --out "$tmp/demo" -q | tee "$tmp/demo.txt"
echo "demo took $(since "$t") s"
grep -q 'J&F' "$tmp/demo.txt" || fail "demo printed no J&F"
n=$(count_png "$tmp/demo")
((n == 40)) || fail "demo wrote $n masks, not 40"

step "4. a batch of two videos in two worker processes (--jobs 2)"
cp "$sample/sample.mp4" "$tmp/first.mp4"
cp "$sample/sample.mp4" "$tmp/second.mp4"
printf '%s %s\n' "$tmp/first.mp4" "$sample/masks/00000.png" "$tmp/second.mp4" "$sample/masks/00000.png" > "$tmp/list.txt"
t=$(now)
"$exe" propagate --list "$tmp/list.txt" --out "$tmp/batch" --jobs 2 --preset fast --short-side 240 -q
echo "batch took $(since "$t") s"
for name in first second; do
    n=$(count_png "$tmp/batch/$name")
    ((n == 40)) || fail "the batch wrote $n masks for $name, not 40"
done
echo "wrote 40 masks for each of first and second"

step "5. the desktop app, offscreen, on the sample clip"
t=$(now)
rc=0
ANNOTATOR_SMOKE_GUI=5 ANNOTATOR_SMOKE_PROPAGATE=3 ANNOTATOR_SMOKE_TIMEOUT=300 timeout 600 "$exe" \
    > "$tmp/gui.txt" 2>&1 || rc=$?
((rc == 0)) || { cat "$tmp/gui.txt"; fail "the app exited with $rc"; }
grep '^smoke-gui:' "$tmp/gui.txt"
grep -q '^smoke-gui: up:' "$tmp/gui.txt" || { cat "$tmp/gui.txt"; fail "the app did not stay up"; }
grep -qi 'traceback' "$tmp/gui.txt" && { cat "$tmp/gui.txt"; fail "the app printed a traceback"; }
echo "the app ran $(since "$t") s from start to exit"

step "6. a read-only bundle: propagate as another user (nobody), with its own numba cache"
if [[ $(id -u) == 0 ]] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
    other=$tmp/nobody
    mkdir -p "$other"
    chown nobody "$other"
    chmod 755 "$tmp"
    if setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups test -w "$internal"; then
        echo "skipped: the bundle is writable by nobody"
    else
        t=$(now)
        setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups \
            env HOME="$other" XDG_CACHE_HOME="$other/cache" \
            "$exe" propagate "$sample/sample.mp4" --masks "$sample/masks/00000.png" --out "$other/masks" \
            --preset fast --short-side 240 -q
        n=$(count_png "$other/masks")
        entries=$(find "$other/cache/annotator/numba" -name '*.nbi' 2>/dev/null | wc -l)
        echo "as nobody: $n masks in $(since "$t") s (compiled: a new cache), $entries cache index file(s) in its own cache"
        ((n == 40 && entries > 0)) || fail "as nobody: $n masks, $entries cache index files"
    fi
else
    echo "skipped: needs root and setpriv"
fi

step "7. the bundle is unchanged"
changed=$(find "$bundle" -newer "$tmp/start-stamp" | head -5)
[[ -z $changed ]] || fail "written into the bundle: $changed"
echo "nothing in $bundle was written"

printf '\nsmoke: PASSED\n'
