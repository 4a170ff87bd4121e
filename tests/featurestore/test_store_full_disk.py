"""A full disk (the file-size limit) while a writer resumes a block holding committed clips, on a
plain path and on a ``file://`` URL: the committed clips stay intact and the block resumes.
The same limit on what avscene writes beside zarr's chunks: attributes, leases, HDF5 exports."""

import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from zarr.storage import LocalStore

from featurestore.store import COMMITTED, PENDING, FeatureStore, export_hdf5
from tests.helpers import (
    all_arrays,
    assert_same_arrays,
    audio_like,
    fill_store,
    make_clips,
    new_store,
)

ROOT = str(pathlib.Path(__file__).resolve().parents[2])
N_CLIPS, SEED, DIM = 10, 61, 64
#: 16 rows of 64 float32 per chunk: a values chunk is 4100 bytes on disk (no compression).
CHUNK_MIB = 16 * DIM * 4 / 2**20
#: Above a lease, an index chunk or a timestamps chunk; below a values chunk.
LIMIT = 2048

WRITER = textwrap.dedent("""
    import errno, resource, signal, sys
    sys.path.insert(0, {root!r})
    from featurestore.store import FeatureStore, export_hdf5
    from tests.helpers import audio_like, make_clips

    where, limit, action = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    clips = {{c.clip_id: c for c in make_clips({n}, seed={seed})}}
    store = FeatureStore.open(where, mode="r+")
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # writes past it raise EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        if action == "resume":
            with store.block_writer("audio", 0, commit_seconds=0) as writer:
                for clip_id in store.pending("audio", block=0):
                    writer.write(clip_id, *audio_like(clips[clip_id], dim={dim}, seed=1))
        elif action == "attrs":
            store.attrs["notes"] = "x" * 10000
        elif action == "lease":
            store.block_writer("audio", 1).close()
        elif action == "export":
            export_hdf5(store, sys.argv[4], compression="none", overwrite=True)
    except OSError as error:
        print("EFBIG" if error.errno == errno.EFBIG else f"OSError {{error}}", flush=True)
        sys.exit(3)
    print("done")
""").format(root=ROOT, n=N_CLIPS, seed=SEED, dim=DIM)


def _clips():
    return make_clips(N_CLIPS, seed=SEED)


def _new(where):
    return new_store(
        where, _clips(), features=(("audio", DIM, 10.0),), chunk_mib=CHUNK_MIB, compression="none"
    )


def _run(tmp_path, where, limit, action, *extra):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return subprocess.run(
        [sys.executable, str(script), str(where), str(limit), action, *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(params=["path", "file-url"])
def location(request, tmp_path):
    path = tmp_path / "store.zarr"
    return path, (str(path) if request.param == "path" else f"file://{path}")


def test_a_file_url_opens_as_a_local_store(location):
    path, where = location
    store = _new(where)
    assert isinstance(store._group.store, LocalStore) and store.label == str(path)


def test_full_disk_while_resuming_keeps_committed_clips_and_the_block_resumes(tmp_path, location):
    path, where = location
    clips = _clips()
    _new(path).close()  # made as a directory, written through ``where``
    store = FeatureStore.open(where, mode="r+")
    committed = {}
    with store.block_writer("audio", 0, commit_seconds=0) as writer:  # two committed clips
        for clip in clips[:2]:
            committed[clip.clip_id] = audio_like(clip, dim=DIM, seed=1)
            writer.write(clip.clip_id, *committed[clip.clip_id])
    rows = sum(len(values) for values, _ in committed.values())
    assert rows % 16 != 0  # the resumed writer rewrites a chunk they live in
    full = _run(tmp_path, where, LIMIT, "resume")
    assert full.returncode == 3 and full.stdout.strip() == "EFBIG", full.stderr
    after = FeatureStore.open(where, mode="r")
    assert list(after.status("audio")[:4]) == [COMMITTED, COMMITTED, PENDING, PENDING]
    for clip_id, (values, times) in committed.items():
        got_values, got_times = after.frames("audio", clip_id)
        np.testing.assert_array_equal(got_values, values)
        np.testing.assert_array_equal(got_times, times)
    assert after.verify() == [] and after.temporary_files() == []
    resumed = _run(tmp_path, where, 0, "resume")
    assert resumed.returncode == 0, resumed.stderr
    fill_store(FeatureStore.open(where, mode="r+"), "audio", clips, audio_like, dim=DIM, seed=1)
    reference = _new(tmp_path / "reference.zarr")
    fill_store(reference, "audio", clips, audio_like, dim=DIM, seed=1)
    assert_same_arrays(all_arrays(FeatureStore.open(where, mode="r")), all_arrays(reference))


def test_full_disk_leaves_attributes_leases_and_exports_as_they_were(tmp_path, location):
    path, where = location
    store = _new(where)
    fill_store(store, "audio", _clips()[:4], audio_like, dim=DIM, seed=1)
    store.attrs["notes"] = "before"
    export = tmp_path / "store.h5"
    export_hdf5(store, export, compression="none")
    exported = export.read_bytes()
    before = all_arrays(store)
    for action, extra, limit in (
        ("attrs", [], LIMIT),
        ("lease", [], 64),
        ("export", [str(export)], 1 << 16),
    ):
        failed = _run(tmp_path, where, limit, action, *extra)
        assert failed.stdout.strip() == "EFBIG" and failed.returncode == 3, failed.stderr
    again = FeatureStore.open(where, mode="r+")
    assert again.attrs["notes"] == "before" and again.verify() == []
    assert again.temporary_files() == [] and not (path / "leases").exists()
    assert_same_arrays(all_arrays(again), before)
    assert export.read_bytes() == exported
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.h5", "store.zarr", "writer.py"]
    again.block_writer("audio", 1).close()  # no lease was left half-made
