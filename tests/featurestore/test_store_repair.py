"""Leftover temporary files (a kill or a full disk during a write) are not part of a store:
``verify`` ignores them and says so, ``verify --repair`` removes them (and leases of writers
that are gone), reporting each, and refuses while a writer runs."""

import json
import secrets
import subprocess
import sys

import pytest

from featurestore.errors import StoreError
from featurestore.store import FeatureStore
from pipelines.commands import cli
from tests.helpers import (
    all_arrays,
    assert_same_arrays,
    audio_like,
    fill_store,
    make_clips,
    new_store,
)

N_CLIPS, SEED = 10, 83
pytestmark = pytest.mark.filterwarnings("ignore:Object at .* is not recognized")


@pytest.fixture
def store_path(tmp_path):
    where = tmp_path / "s.zarr"
    clips = make_clips(N_CLIPS, seed=SEED)
    fill_store(new_store(where, clips), "audio", clips, audio_like, dim=8, seed=1)
    return where


def _plant(store_path):
    """Temporary files as zarr's LocalStore and a killed export would leave them."""
    planted = [
        f"features/audio/values/c/3/0.{secrets.token_hex(16)}.partial",
        f"features/audio/timestamps/c/.2.{secrets.token_hex(8)}.partial",
        f"zarr.{secrets.token_hex(16)}.partial",
    ]
    for key in planted:
        (store_path / key).write_bytes(b"half a chunk")
    return sorted(planted)


def _dead_lease(store_path):
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    store = FeatureStore.open(store_path, mode="r+")
    with store.block_writer("audio", 1):
        path = store_path / "leases" / "features" / "audio" / "1.json"
        record = json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**record, "pid": process.pid, "pid_start": None}))
    return "leases/features/audio/1.json"


def test_verify_ignores_leftover_temporary_files(store_path, capsys):
    before = all_arrays(FeatureStore.open(store_path, mode="r"))
    planted = _plant(store_path)
    store = FeatureStore.open(store_path, mode="r")
    assert store.verify() == [] and store.temporary_files() == planted
    assert_same_arrays(all_arrays(store), before)
    assert cli.main(["verify", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok:") and "note: 3 leftover temporary files" in out
    assert cli.main(["verify", str(store_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["temporary_files"] == planted and report["removed"] == []


def test_verify_repair_removes_them_and_dead_leases_reporting_each(store_path, capsys):
    before = all_arrays(FeatureStore.open(store_path, mode="r"))
    planted = _plant(store_path)
    lease = _dead_lease(store_path)
    assert cli.main(["verify", str(store_path), "--repair"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [f"removed temporary file {key}" for key in planted]
    assert lines[3].startswith(f"removed the lease {lease} of pid ")
    assert lines[4].startswith("ok:") and len(lines) == 5
    assert not any((store_path / key).exists() for key in planted)
    assert not (store_path / "leases").exists()
    store = FeatureStore.open(store_path, mode="r")
    assert store.temporary_files() == [] and store.verify() == []
    assert_same_arrays(all_arrays(store), before)
    assert cli.main(["verify", str(store_path), "--repair", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == []


def test_repair_is_refused_while_a_writer_runs(store_path, capsys):
    planted = _plant(store_path)
    store = FeatureStore.open(store_path, mode="r+")
    with store.block_writer("audio", 2):
        with pytest.raises(StoreError, match="leases/features/audio/2.json is held by pid"):
            store.repair()
        assert cli.main(["verify", str(store_path), "--repair"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("avscene verify: error:") and "a writer is running" in err
    assert store.temporary_files() == planted  # nothing was removed
    with pytest.raises(StoreError, match="read-only"):
        FeatureStore.open(store_path, mode="r").repair()


def test_a_copy_with_leftovers_exports_and_imports_without_them(store_path, tmp_path):
    from featurestore.store import export_hdf5, import_hdf5

    _plant(store_path)
    export_hdf5(FeatureStore.open(store_path, mode="r"), tmp_path / "s.h5")
    import_hdf5(tmp_path / "s.h5", tmp_path / "back.zarr")
    back = FeatureStore.open(tmp_path / "back.zarr", mode="r")
    assert back.temporary_files() == [] and back.verify() == []
    assert_same_arrays(all_arrays(back), all_arrays(FeatureStore.open(store_path, mode="r")))
