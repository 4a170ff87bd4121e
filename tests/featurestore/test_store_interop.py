"""Interchange: plain zarr and xarray readers, HDF5 round trip, and the CLI commands."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import zarr

from featurestore.store import FeatureStore, export_hdf5, import_hdf5
from pipelines.commands import cli
from tests.helpers import (
    all_arrays,
    assert_same_arrays,
    audio_like,
    fill_store,
    make_clips,
    new_store,
    video_like,
)


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    clips = make_clips(11, seed=41)
    where = tmp_path_factory.mktemp("interop") / "s.zarr"
    store = new_store(
        where, clips, features=(("audio", 8, 10.0), ("video", 5, 5.0)), storage_dtype="float32"
    )
    audio = fill_store(store, "audio", clips, audio_like, dim=8, seed=41)
    fill_store(store, "video", clips[:7], video_like, dim=5, seed=42)
    with store.block_writer("video", 1) as writer:
        writer.fail(clips[7].clip_id, "no video stream")
    store.attrs["manifest_sha256"] = "c" * 64
    return where, clips, audio


PLAIN_READER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import zarr
    root = zarr.open_group(sys.argv[1], mode="r")
    ids = root["clips/clip_id"][:].tolist()
    feature = root["features/audio"]
    offset, count, status = (feature[k][:] for k in ("offset", "count", "status"))
    out = {"dims": list(feature["values"].metadata.dimension_names),
           "params": feature.attrs["params"], "clips": {}}
    for i, clip_id in enumerate(ids):
        if status[i] == 1:
            rows = slice(int(offset[i]), int(offset[i] + count[i]))
            out["clips"][clip_id] = [feature["values"][rows].tolist(),
                                     feature["timestamps"][rows].tolist()]
    out["avscene_imported"] = any(m.startswith(("featurestore", "pipelines")) for m in sys.modules)
    print(json.dumps(out))
""")


def test_plain_zarr_reads_the_store_without_avscene(filled, tmp_path):
    where, clips, audio = filled
    script = tmp_path / "plain.py"
    script.write_text(PLAIN_READER)
    done = subprocess.run(
        [sys.executable, str(script), str(where)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    read = json.loads(done.stdout)
    assert read["avscene_imported"] is False
    assert read["dims"] == ["row", "dim"] and read["params"] == {"hop": 0.1}
    assert sorted(read["clips"]) == sorted(c.clip_id for c in clips)
    for clip_id, (values, times) in read["clips"].items():
        np.testing.assert_array_equal(np.array(values, np.float32), audio[clip_id][0])
        np.testing.assert_array_equal(times, audio[clip_id][1])


def test_xarray_opens_every_group(filled):
    xr = pytest.importorskip("xarray")
    where, clips, audio = filled
    table = xr.open_zarr(where, group="clips", consolidated=False)
    assert table["clip_id"].dims == ("clip",)
    assert table["clip_id"].values.tolist() == [c.clip_id for c in clips]
    feature = xr.open_zarr(where, group="features/audio", consolidated=False)
    assert feature["values"].dims == ("row", "dim") and feature["timestamps"].dims == ("row",)
    assert feature.attrs["frame_rate"] == 10.0 and feature.attrs["params"] == {"hop": 0.1}
    i = 5
    start, n = int(feature["offset"][i]), int(feature["count"][i])
    values = feature["values"][start : start + n].values
    np.testing.assert_array_equal(values, audio[clips[i].clip_id][0])
    assert int(feature["status"][i]) == 1


def _walk(group, prefix=""):
    for name, member in sorted(group.members(), key=lambda item: item[0]):
        yield prefix + name, member
        if isinstance(member, zarr.Group):
            yield from _walk(member, prefix + name + "/")


def _metadata(store):
    documents = {path: member.metadata.to_dict() for path, member in _walk(store._group)} | {
        "": store._group.metadata.to_dict()
    }
    for document in documents.values():  # consolidated copies: derived, kept current
        document.pop("consolidated_metadata", None)
    return documents


def test_hdf5_round_trip_is_lossless(filled, tmp_path):
    where, _, _ = filled
    original = FeatureStore.open(where, mode="r")
    exported = export_hdf5(original, tmp_path / "s.h5")
    assert exported["arrays"] == 12 + 2 * 6
    for target in (tmp_path / "back.zarr", "memory://avscene-hdf5-round-trip"):
        import_hdf5(tmp_path / "s.h5", target)
        back = FeatureStore.open(target, mode="r")
        assert _metadata(back) == _metadata(original)  # shapes, chunks, codecs, attrs
        assert_same_arrays(all_arrays(back), all_arrays(original))
        stored = sorted(k for k in _keys(original) if "/c/" in k or k.startswith("c/"))
        assert sorted(k for k in _keys(back) if "/c/" in k or k.startswith("c/")) == stored
        assert back.verify() == [] and back.failures() == original.failures()
        np.testing.assert_array_equal(
            back.segments(["audio", "video"]).X(), original.segments(["audio", "video"]).X()
        )
    with pytest.raises(FileExistsError):
        import_hdf5(tmp_path / "s.h5", tmp_path / "back.zarr")
    with pytest.raises(FileExistsError):
        export_hdf5(original, tmp_path / "s.h5")


def _keys(store):
    from featurestore.store.chunks import list_keys

    return list_keys(store._group.store, "")


def test_cli_info_verify_export_import(filled, tmp_path, capsys):
    where, clips, _ = filled
    assert cli.main(["info", str(where), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["clips"]["total"] == len(clips) and info["attrs"]["manifest_sha256"] == "c" * 64
    video = info["features"]["video"]
    assert (video["committed"], video["failed"], video["pending"]) == (7, 1, 3)
    assert info["features"]["audio"]["codecs"][-1] == "crc32c"
    assert cli.main(["info", str(where)]) == 0
    text = capsys.readouterr().out
    assert "feature   audio: dim 8" in text and "folds" in text and "ratio" in text
    assert cli.main(["verify", str(where)]) == 0
    assert capsys.readouterr().out.startswith("ok:")
    out = tmp_path / "cli.h5"
    assert cli.main(["export", str(where), "--out", str(out)]) == 0
    assert cli.main(["import", str(out), "--out", str(tmp_path / "cli.zarr"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["arrays"] == 24
    assert cli.main(["import", str(out), "--out", str(tmp_path / "cli.zarr")]) == 2
    assert cli.main(["info", str(tmp_path / "missing.zarr")]) == 2
    assert "no feature store" in capsys.readouterr().err


def test_verify_reports_corrupt_chunks_and_a_broken_index(filled, tmp_path, capsys):
    where, clips, _ = filled
    copy = tmp_path / "copy.zarr"
    import shutil

    shutil.copytree(where, copy)
    chunk = copy / "features" / "audio" / "values" / "c" / "3" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    assert cli.main(["verify", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "features/audio/values/c/3/0" in out and "checksum" in out
    shutil.rmtree(copy)
    shutil.copytree(where, copy)
    store = FeatureStore.open(copy, mode="r+")
    offset = store._feature("audio").offset
    offset[1] = int(offset[0]) + 1  # clip 1 now overlaps clip 0
    problems = FeatureStore.open(copy, mode="r").verify()
    assert any("overlapping" in problem for problem in problems)
    assert cli.main(["verify", str(copy), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_verify_reports_missing_chunks(filled, tmp_path):
    where, _, _ = filled
    import shutil

    copy = tmp_path / "partial.zarr"
    shutil.copytree(where, copy)
    (copy / "features" / "audio" / "values" / "c" / "2" / "0").unlink()  # an interrupted copy
    problems = FeatureStore.open(copy, mode="r").verify()
    assert problems == ["missing chunk features/audio/values/c/2/0 (holds committed rows)"]
