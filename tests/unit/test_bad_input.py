"""Bad input end to end: the CLI's one line and exit code, projects left undamaged, fuzzed files, 4K frames.

The readers' own checks are tested in test_video.py and test_labels.py; here each bad input goes
through the ``annotator`` command (``propagate``, ``export``) or a project save, and the tests
check the message, the exit code, and that no file was damaged. The fuzz tests feed random and
mutated bytes to the mask reader and the ``project.json`` reader.
"""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from annotator.cli import main
from annotator.core.model.annotation import AnnotationModel, FrameState
from annotator.core.errors import MaskError, ProjectError, SaveError
from annotator.core.io.labels import encode_mask_png, read_mask, write_mask
from annotator.core.project.folder import ProjectData, open_project, parse_project, save_project
from annotator.core.video import open_video
from tests.synthetic import moving_objects_clip

FAST = ["--short-side", "0", "--stage", "s3", "-q"]
HW = (64, 96)


def run_cli(argv, capsys) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line(err: str, *fragments: str) -> None:
    assert err.startswith("annotator: error:"), err
    assert "\n" not in err and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def assert_masks_readable(folder: Path) -> None:
    for png in folder.glob("*.png"):
        read_mask(png)


# --------------------------------------------------------------------------------------------- videos


def write_avi(path: Path, frames) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (frames[0].shape[1], frames[0].shape[0]))
    if not writer.isOpened():
        pytest.skip("OpenCV cannot write MJPG avi here")
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_truncated_video_whose_header_lies_stops_with_one_line(tmp_path, capsys):
    frames, truth = moving_objects_clip(n_frames=20, hw=HW, size=24, step=2)
    data = write_avi(tmp_path / "clip.avi", frames).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])  # the header still says 20 frames
    write_mask(tmp_path / "m.png", truth[0])
    out = tmp_path / "out"
    code, err = run_cli(["propagate", cut, "--masks", tmp_path / "m.png", "--out", out, *FAST], capsys)
    assert code == 3
    assert_one_line(err, "cut.avi ends after frame", "although its header says 20")
    written = sorted(out.glob("*.png"))
    assert 1 < len(written) < 20
    assert_masks_readable(out)  # what was written before the end was found is whole


def test_ffmpegs_own_log_lines_are_not_printed_before_the_one_line(tmp_path, clip):
    _, mask, _ = clip
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)  # no moov atom
    code = "import sys; from annotator.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    # a child process: FFmpeg writes to the stderr file descriptor itself, once per process set-up
    done = subprocess.run([sys.executable, "-c", code, "propagate", str(tmp_path / "broken.mp4"), "--masks",
                           str(mask), "--out", str(tmp_path / "out"), *FAST], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 3
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr  # one line: no "[mov,mp4,... @ 0x...]"
    assert done.stderr.startswith("annotator: error: broken.mp4 cannot be opened as a video")


def test_unreadable_video_file(tmp_path, capsys, clip):
    _, mask, _ = clip
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    code, err = run_cli(["propagate", bad, "--masks", mask, "--out", tmp_path / "out", *FAST], capsys)
    assert code == 3 and not (tmp_path / "out").exists()
    assert_one_line(err, "bad.mp4", "cannot be")


def test_frames_of_different_sizes(tmp_path, capsys, clip):
    folder, mask, _ = clip
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(folder / "00002.png")
    code, err = run_cli(["propagate", folder, "--masks", mask, "--out", tmp_path / "out", *FAST], capsys)
    assert code == 3
    assert_one_line(err, "frames differ in size", "00002.png is 48x32")


def test_non_image_files(tmp_path, capsys, clip):
    folder, mask, _ = clip
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("hello")
    code, err = run_cli(["propagate", notes, "--masks", mask, "--out", tmp_path / "o1", *FAST], capsys)
    assert code == 3
    assert_one_line(err, "has no image files")
    (folder / "00003.png").write_text("not a png")  # an image name, not an image
    code, err = run_cli(["propagate", folder, "--masks", mask, "--out", tmp_path / "o2", *FAST], capsys)
    assert code == 3
    assert_one_line(err, "00003.png cannot be decoded")
    text_mask = tmp_path / "mask.png"
    text_mask.write_text("not a png either")
    code, err = run_cli(["propagate", tmp_path / "frames", "--masks", text_mask, "--out", tmp_path / "o3", *FAST],
                        capsys)
    assert code == 4
    assert_one_line(err, "mask.png: not an image file")


def test_rgb_mask_with_colours_outside_the_palette(tmp_path, capsys, clip):
    folder, _, truth = clip
    rgb = np.zeros((*HW, 3), np.uint8)
    rgb[truth[0] == 1] = (250, 10, 10)  # red, but not the palette's (128, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    code, err = run_cli(["propagate", folder, "--masks", tmp_path / "rgb.png", "--out", tmp_path / "out", *FAST], capsys)
    assert code == 4
    assert_one_line(err, "rgb.png", "colour (250, 10, 10)", "not a DAVIS palette colour")


def test_sixteen_bit_mask(tmp_path, capsys, clip):
    folder, _, truth = clip
    Image.fromarray(truth[0].astype(np.uint16) * 1000).save(tmp_path / "deep.png")
    code, err = run_cli(["propagate", folder, "--masks", tmp_path / "deep.png", "--out", tmp_path / "out", *FAST], capsys)
    assert code == 4
    assert_one_line(err, "deep.png", "16-bit")


def test_empty_folders(tmp_path, capsys, clip):
    folder, mask, _ = clip
    (tmp_path / "empty").mkdir()
    code, err = run_cli(["propagate", tmp_path / "empty", "--masks", mask, "--out", tmp_path / "o", *FAST], capsys)
    assert code == 3
    assert_one_line(err, "is empty")
    (tmp_path / "no-masks").mkdir()
    code, err = run_cli(["propagate", folder, "--masks", tmp_path / "no-masks", "--out", tmp_path / "o", *FAST], capsys)
    assert code == 4
    assert_one_line(err, "no mask PNGs")


def test_paths_without_permission(tmp_path, capsys, clip, monkeypatch):
    # we run as root, for whom every path is readable: the permission check is simulated
    import annotator.core.video._base as video_base

    folder, mask, _ = clip
    monkeypatch.setattr(video_base, "is_readable", lambda path: False)
    code, err = run_cli(["propagate", folder, "--masks", mask, "--out", tmp_path / "o", *FAST], capsys)
    assert code == 3
    assert_one_line(err, "cannot be read: permission denied")
    monkeypatch.undo()
    real_open = open

    def no_read(path, *args, **kwargs):
        if str(path) == str(mask):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_read)
    code, err = run_cli(["propagate", folder, "--masks", mask, "--out", tmp_path / "o", *FAST], capsys)
    assert code == 4
    assert_one_line(err, "cannot read mask", "Permission denied")


# --------------------------------------------------------------------------------------------- projects


@pytest.fixture()
def project(tmp_path, clip):
    folder, _, truth = clip
    model = AnnotationModel(open_video(folder))
    model.add_object("car")
    model.paint(0, truth[0] == 1, 1)
    model.set_labels(2, truth[2], FrameState.PROPAGATED)
    save_project(model, tmp_path / "proj")
    return tmp_path / "proj", model


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_project_save_without_permission_keeps_the_previous_save(project, monkeypatch):
    proj, model = project
    before = snapshot(proj)
    model.paint(1, np.ones((5, 5), bool), 1)
    real_open = os.open

    def refuse(path, flags, mode=0o777, **kwargs):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(SaveError, match="Permission denied") as info:
        save_project(model, proj)
    monkeypatch.undo()
    assert "\n" not in str(info.value)
    assert snapshot(proj) == before


def test_project_save_on_a_full_disk_keeps_the_previous_save(project, monkeypatch):
    proj, model = project
    before = snapshot(proj)
    model.paint(3, np.ones((5, 5), bool), 1)
    monkeypatch.setattr(os, "write", lambda fd, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(SaveError, match="No space left on device"):
        save_project(model, proj)
    monkeypatch.undo()
    assert snapshot(proj) == before
    assert open_project(proj).frame_state(3) is FrameState.EMPTY


def test_cli_export_writes_original_size_and_reports_bad_projects(project, tmp_path, capsys, monkeypatch):
    proj, model = project
    out = tmp_path / "davis"
    assert main(["export", str(proj), "--out", str(out), "-q"]) == 0
    ann = out / "Annotations" / "480p" / "frames"
    assert sorted(p.name for p in ann.iterdir()) == [f"{i:05d}.png" for i in range(4)]
    for i in range(4):
        assert np.array_equal(read_mask(ann / f"{i:05d}.png"), model.labels(i))
    code, err = run_cli(["export", proj, "--out", out, "-q"], capsys)
    assert code == 2
    assert_one_line(err, "--overwrite")
    # a full disk during export: one line, exit code, and the earlier export is intact
    before = snapshot(ann)
    monkeypatch.setattr(os, "write", lambda fd, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    code, err = run_cli(["export", proj, "--out", out, "--overwrite"], capsys)
    monkeypatch.undo()
    assert code == 7
    assert_one_line(err, "No space left on device")
    assert snapshot(ann) == before
    # bad projects
    code, err = run_cli(["export", tmp_path, "--out", out], capsys)
    assert code == 6
    assert_one_line(err, "is not an annotation project")
    (proj / "project.json").write_bytes(b"{\"version\": 1, \"vid")
    code, err = run_cli(["export", proj, "--out", out], capsys)
    assert code == 6
    assert_one_line(err, "project.json: corrupt project file")


def test_cli_export_refuses_a_mask_with_ids_beyond_the_objects(project, tmp_path, capsys):
    proj, _ = project
    write_mask(proj / "masks" / "00002.png", np.full(HW, 3, np.uint8))
    code, err = run_cli(["export", proj, "--out", tmp_path / "davis"], capsys)
    assert code == 4
    assert_one_line(err, "00002.png: mask has object id 3 but the project has 1 object")


@pytest.mark.slow  # ~7 s: the engine's full-resolution one-hot and argmax at 3840x2160
def test_4k_frames_are_processed_at_the_working_resolution_and_exported_at_the_original(tmp_path, capsys,
                                                                                          monkeypatch):
    from annotator.core.features.store import FeatureStore

    hw = (2160, 3840)
    yy, xx = np.mgrid[0:hw[0], 0:hw[1]]
    base = np.stack([(xx // 16) % 256, (yy // 16) % 256, ((xx + yy) // 32) % 256], axis=2).astype(np.uint8)
    folder = tmp_path / "4k"
    folder.mkdir()
    truth = np.zeros(hw, np.uint8)
    truth[800:1400, 1000:1800] = 1
    for i in range(2):
        frame = base.copy()
        frame[800:1400, 1000 + 40 * i:1800 + 40 * i] = (220, 30, 30)
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    write_mask(tmp_path / "m.png", truth)
    seen_hw = []
    real = FeatureStore.frame_tensor
    monkeypatch.setattr(FeatureStore, "frame_tensor", lambda self, i: seen_hw.append(self.working_hw) or real(self, i))
    out = tmp_path / "out"
    assert main(["propagate", str(folder), "--masks", str(tmp_path / "m.png"), "--out", str(out),
                 "--stage", "s3", "-q"]) == 0
    assert seen_hw and set(seen_hw) == {(600, 1067)}  # features at the default working resolution, 600
    second = read_mask(out / "00001.png")
    assert second.shape == hw and (second == 1).sum() > 0.5 * truth.sum()
    # a project of the 4K clip exports at 3840x2160 too
    model = AnnotationModel(open_video(folder))
    model.add_object()
    model.set_labels(0, truth, FrameState.REFERENCE)
    model.set_labels(1, second, FrameState.PROPAGATED)
    save_project(model, tmp_path / "proj")
    assert main(["export", str(tmp_path / "proj"), "--out", str(tmp_path / "davis"), "-q"]) == 0
    exported = read_mask(tmp_path / "davis" / "Annotations" / "480p" / "4k" / "00001.png")
    assert exported.shape == hw and np.array_equal(exported, second)


# --------------------------------------------------------------------------------------------- fuzzing

FUZZ_EXAMPLES = 300
_fuzz_counts: dict[str, int] = {}


def _valid_pngs() -> list[bytes]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(6, 9)).astype(np.uint8)
    out = [encode_mask_png(labels)]
    for mode, array in (("L", labels * 60), ("RGB", np.stack([labels * 60] * 3, axis=2)),
                        ("RGBA", np.dstack([np.stack([labels * 60] * 3, axis=2), np.full((6, 9), 255, np.uint8)])),
                        ("I;16", labels.astype(np.uint16) * 900)):
        buffer = io.BytesIO()
        Image.fromarray(array.astype(np.uint16) if mode == "I;16" else array).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    buffer = io.BytesIO()
    Image.fromarray(labels > 1).save(buffer, format="PNG")  # 1-bit
    out.append(buffer.getvalue())
    return out


VALID_PNGS = _valid_pngs()


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[pos] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 8))]
    return bytes(data)


def _read_mask_bytes(folder: Path, data: bytes) -> None:
    path = folder / "fuzz.png"
    path.write_bytes(data)
    try:
        labels = read_mask(path, expected_hw=None)
    except MaskError as exc:
        assert "\n" not in str(exc)
        return
    assert labels.dtype == np.uint8 and labels.ndim == 2


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=300), mutated(VALID_PNGS)))
def test_fuzz_read_mask_gives_a_label_map_or_a_mask_error(fuzz_dir, data):
    _fuzz_counts["read_mask"] = _fuzz_counts.get("read_mask", 0) + 1
    _read_mask_bytes(fuzz_dir, data)


def _valid_project_json() -> bytes:
    return json.dumps({
        "format": "annotator-project", "version": 1, "created": "2024-01-01T00:00:00+00:00", "modified": None,
        "generation": 3,
        "video": {"path": "../v.mp4", "absolute": "/v.mp4", "kind": "file", "hw": [64, 96], "frames": 10, "hash": "ab"},
        "objects": [{"id": 1, "name": "car", "color": [128, 0, 0], "visible": True},
                    {"id": 4, "name": "dog", "color": [1, 2, 3], "visible": False}],
        "frames": {"reference": [0, 5], "propagated": [1, 2, 3], "unmarked": [9]},
        "propagation": {"backbone": "lite0"}, "pending": [1],
    }).encode()


def _v0_project_json() -> bytes:
    return json.dumps({"video": "/v.mp4", "size": [96, 64], "num_frames": 10,
                       "objects": {"1": {"name": "car", "color": "#800000"}},
                       "references": [0], "propagated": [1, 2]}).encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


@st.composite
def project_like(draw) -> bytes:
    """A valid project with one field replaced by an arbitrary JSON value (or removed)."""
    data = json.loads(draw(st.sampled_from([_valid_project_json(), _v0_project_json()])))
    target = data
    path = draw(st.lists(st.sampled_from(["video", "objects", "frames", "hw", "reference", "0", "id", "color",
                                          "version", "path", "frames", "size", "1", "generation", "pending"]),
                         min_size=1, max_size=3))
    for key in path[:-1]:
        nxt = target.get(key) if isinstance(target, dict) else None
        if isinstance(nxt, (dict, list)):
            target = nxt if isinstance(nxt, dict) else (nxt[0] if nxt and isinstance(nxt[0], dict) else target)
    if isinstance(target, dict):
        if draw(st.booleans()):
            target[path[-1]] = draw(json_values)
        else:
            target.pop(path[-1], None)
    return json.dumps(data, allow_nan=True).encode()


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()), project_like(),
                     mutated([_valid_project_json(), _v0_project_json()])))
def test_fuzz_project_json_gives_project_data_or_a_project_error(raw):
    _fuzz_counts["project.json"] = _fuzz_counts.get("project.json", 0) + 1
    try:
        data = parse_project(raw, "fuzz/project.json")
    except ProjectError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(data, ProjectData)
    h, w = data.video.hw
    assert h >= 1 and w >= 1 and all(0 <= i < data.video.frames for i in data.states)
    assert all(1 <= o.id <= 254 for o in data.objects)


def test_fuzz_case_counts():
    """Runs after the two fuzz tests (file order) and states how many cases each ran."""
    print(f"fuzz cases: {_fuzz_counts}")
    if _fuzz_counts:  # absent when run alone (-k)
        assert _fuzz_counts.get("read_mask", 0) >= FUZZ_EXAMPLES // 2
        assert _fuzz_counts.get("project.json", 0) >= FUZZ_EXAMPLES // 2
