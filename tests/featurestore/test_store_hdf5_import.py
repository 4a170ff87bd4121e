"""HDF5 import is all-or-nothing and refuses hostile archives: external storage, external and
soft links, virtual datasets, datasets that disagree with their recorded zarr metadata, unknown
codecs and filters. Export writes a temporary file and renames it."""

import json
import pathlib
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from featurestore.errors import StoreExistsError, StoreFormatError, StoreNotFoundError
from featurestore.store import FeatureStore, export_hdf5, import_hdf5
from featurestore.store.interchange import hdf5_import
from pipelines.commands import cli
from tests.helpers import (
    all_arrays,
    assert_same_arrays,
    audio_like,
    fill_store,
    make_clips,
    new_store,
)

ROOT = str(pathlib.Path(__file__).resolve().parents[2])
N_CLIPS, SEED = 11, 91


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hdf5")
    clips = make_clips(N_CLIPS, seed=SEED)
    store = new_store(folder / "original.zarr", clips)
    fill_store(store, "audio", clips, audio_like, dim=8, seed=1)
    export_hdf5(store, folder / "original.h5")
    return folder / "original.h5", all_arrays(store)


def _copy(source, target):
    target.write_bytes(source.read_bytes())
    return target


def _replace(h5, name, **options):
    """Replace dataset ``name`` by one made with ``options``, keeping its attributes."""
    attrs = dict(h5[name].attrs)
    del h5[name]
    dataset = h5.create_dataset(name, **options)
    for key, value in attrs.items():
        dataset.attrs[key] = value
    return dataset


def _external_storage(h5, folder):
    secret = folder / "secret.bin"
    secret.write_bytes(np.arange(N_CLIPS, dtype=np.float64).tobytes())
    _replace(
        h5,
        "clips/duration",
        shape=(N_CLIPS,),
        dtype="float64",
        external=[(str(secret), 0, 8 * N_CLIPS)],
    )
    return "/clips/duration", "HDF5 external storage"


def _external_link(h5, folder):
    with h5py.File(folder / "other.h5", "w") as other:
        other.create_dataset("values", data=np.zeros((4, 8), np.float32))
    del h5["features/audio/values"]
    h5["features/audio/values"] = h5py.ExternalLink(str(folder / "other.h5"), "/values")
    return "/features/audio/values", "an external link"


def _soft_link(h5, folder):
    del h5["features/audio/count"]
    h5["features/audio/count"] = h5py.SoftLink("/features/audio/offset")
    return "/features/audio/count", "a soft link"


def _virtual(h5, folder):
    with h5py.File(folder / "other.h5", "w") as other:
        other.create_dataset("d", data=np.ones(N_CLIPS))
    attrs = dict(h5["clips/duration"].attrs)
    del h5["clips/duration"]
    layout = h5py.VirtualLayout(shape=(N_CLIPS,), dtype="float64")
    layout[:] = h5py.VirtualSource(str(folder / "other.h5"), "d", shape=(N_CLIPS,))
    dataset = h5.create_virtual_dataset("clips/duration", layout)
    for key, value in attrs.items():
        dataset.attrs[key] = value
    return "/clips/duration", "a virtual dataset"


def _shape(h5, folder):
    _replace(h5, "features/audio/offset", data=np.zeros(N_CLIPS + 1, np.int64), chunks=(4,))
    return "/features/audio/offset", "disagree with the recorded zarr metadata"


def _dtype(h5, folder):
    _replace(h5, "features/audio/status", data=np.ones(N_CLIPS, np.int64), chunks=(4,))
    return "/features/audio/status", "disagree with the recorded zarr metadata"


def _codec(h5, folder):
    meta = json.loads(h5["features/audio/values"].attrs["_zarr"])
    meta["codecs"].insert(1, {"name": "numcodecs.pickle", "configuration": {}})
    h5["features/audio/values"].attrs["_zarr"] = json.dumps(meta)
    return "/features/audio/values", "codec 'numcodecs.pickle'"


def _filter(h5, folder):
    data = h5["features/audio/offset"][...]
    _replace(h5, "features/audio/offset", data=data, chunks=(4,), scaleoffset=0)
    return "/features/audio/offset", "HDF5 filter"


HOSTILE = {
    "external storage": _external_storage,
    "external link": _external_link,
    "soft link": _soft_link,
    "virtual dataset": _virtual,
    "shape": _shape,
    "dtype": _dtype,
    "codec": _codec,
    "filter": _filter,
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_archives_are_refused_with_one_line(exported, tmp_path, kind, capsys):
    archive = _copy(exported[0], tmp_path / "hostile.h5")
    with h5py.File(archive, "r+") as h5:
        dataset, words = HOSTILE[kind](h5, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    target = tmp_path / "imported.zarr"
    with pytest.raises(StoreFormatError) as refused:
        import_hdf5(archive, target)
    message = str(refused.value)
    assert "\n" not in message and f"{archive}:{dataset}" in message and words in message
    assert not target.exists() and sorted(p.name for p in tmp_path.iterdir()) == before
    assert cli.main(["import", str(archive), "--out", str(target)]) == 2
    assert f"{archive}:{dataset}" in capsys.readouterr().err


def test_an_archive_whose_store_fails_verify_is_not_imported(exported, tmp_path):
    archive = _copy(exported[0], tmp_path / "incomplete.h5")
    with h5py.File(archive, "r+") as h5:
        values = h5["features/audio/values"]
        stored = json.loads(values.attrs["_zarr_stored_chunks"])
        values.attrs["_zarr_stored_chunks"] = json.dumps(stored[1:])  # a chunk left out
    with pytest.raises(
        StoreFormatError, match="fails verify .*missing chunk features/audio/values/c/0/0"
    ):
        import_hdf5(archive, tmp_path / "imported.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["incomplete.h5"]


def _raise_after(monkeypatch, n_chunks):
    write = hdf5_import._write_chunk
    calls = []

    def failing(array, start, data):
        calls.append(start)
        if len(calls) > n_chunks:
            raise OSError(28, "No space left on device")
        write(array, start, data)

    monkeypatch.setattr(hdf5_import, "_write_chunk", failing)


@pytest.mark.parametrize("kind", ["path", "memory url"])
def test_an_import_failing_midway_leaves_no_store_and_a_rerun_succeeds(
    exported, tmp_path, monkeypatch, kind
):
    archive, arrays = exported
    target = (
        tmp_path / "imported.zarr"
        if kind == "path"
        else f"memory://avscene-import-midway-{tmp_path.name}"
    )
    with monkeypatch.context() as patch:
        _raise_after(patch, 5)
        with pytest.raises(OSError, match="No space left"):
            import_hdf5(archive, target)
    with pytest.raises(StoreNotFoundError):
        FeatureStore.open(target, mode="r")
    if kind == "path":
        assert list(tmp_path.iterdir()) == []  # no temporary left either
    else:
        import fsspec

        assert fsspec.filesystem("memory").find(target[len("memory://") :]) == []
    import_hdf5(archive, target)
    back = FeatureStore.open(target, mode="r")
    assert back.verify() == []
    assert_same_arrays(all_arrays(back), arrays)


def test_a_failing_overwrite_keeps_the_previous_store(exported, tmp_path, monkeypatch):
    archive, arrays = exported
    target = tmp_path / "imported.zarr"
    clips = make_clips(3, seed=5)
    previous = new_store(target, clips)
    fill_store(previous, "audio", clips, audio_like, dim=8, seed=2)
    kept = all_arrays(previous)
    with monkeypatch.context() as patch:
        _raise_after(patch, 3)
        with pytest.raises(OSError):
            import_hdf5(archive, target, overwrite=True)
    assert_same_arrays(all_arrays(FeatureStore.open(target, mode="r")), kept)
    with pytest.raises(StoreExistsError):
        import_hdf5(archive, target)
    import_hdf5(archive, target, overwrite=True)
    assert_same_arrays(all_arrays(FeatureStore.open(target, mode="r")), arrays)
    assert [p.name for p in tmp_path.iterdir()] == ["imported.zarr"]


def test_a_directory_that_is_not_a_store_is_never_replaced(exported, tmp_path):
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.txt").write_text("precious")
    with pytest.raises(StoreExistsError, match="not a zarr group"):
        import_hdf5(exported[0], folder, overwrite=True)
    assert (folder / "thesis.txt").read_text() == "precious"


KILLED = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from featurestore.store.interchange import hdf5_import
    write, done = hdf5_import._write_chunk, []

    def slow(array, start, data):
        write(array, start, data)
        done.append(start)
        if len(done) == 6:
            print("midway", flush=True)
            time.sleep(600)
    hdf5_import._write_chunk = slow
    hdf5_import.import_hdf5(sys.argv[1], sys.argv[2])
""").format(root=ROOT)


def test_an_import_killed_midway_leaves_no_store_and_a_rerun_cleans_up(exported, tmp_path):
    archive, arrays = exported
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    target = tmp_path / "out" / "imported.zarr"
    process = subprocess.Popen(
        [sys.executable, str(script), str(archive), str(target)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "midway"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    process.stdout.close()
    with pytest.raises(StoreNotFoundError):
        FeatureStore.open(target, mode="r")
    [leftover] = list(target.parent.iterdir())  # the killed build, beside it
    assert leftover.name.startswith(".imported.zarr.import@") and leftover.name.endswith(
        ".partial"
    )
    assert cli.main(["import", str(archive), "--out", str(target)]) == 0
    assert [p.name for p in target.parent.iterdir()] == ["imported.zarr"]
    back = FeatureStore.open(target, mode="r")
    assert back.verify() == []
    assert_same_arrays(all_arrays(back), arrays)


def test_export_replaces_a_file_only_when_complete(exported, tmp_path, monkeypatch):
    from featurestore.store.interchange import hdf5_export

    archive = _copy(exported[0], tmp_path / "s.h5")
    before = archive.read_bytes()
    store = FeatureStore.open(exported[0].with_name("original.zarr"), mode="r")
    load = hdf5_export._load_many

    def failing(reader, indices):
        if "values" in reader.array.path:
            raise OSError(28, "No space left on device")
        return load(reader, indices)

    monkeypatch.setattr(hdf5_export, "_load_many", failing)
    with pytest.raises(OSError):
        export_hdf5(store, archive, overwrite=True)
    assert archive.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["s.h5"]
    monkeypatch.undo()
    export_hdf5(store, archive, overwrite=True)
    import_hdf5(archive, tmp_path / "back.zarr")
    assert_same_arrays(all_arrays(FeatureStore.open(tmp_path / "back.zarr")), exported[1])
