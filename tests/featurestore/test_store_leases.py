"""One writer per block: leases refuse a second writer, are taken over from dead or expired
holders, and a writer whose lease was taken over writes and commits nothing more."""

import contextlib
import io
import json
import multiprocessing
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from featurestore.errors import BlockLeasedError, LeaseLostError
from featurestore.store import COMMITTED, PENDING, FeatureStore
from featurestore.store.concurrency import leases as leases_module
from featurestore.synth import synth_corpus
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
pytestmark = pytest.mark.filterwarnings("ignore:Object at leases is not recognized")
N_CLIPS, SEED = 14, 53
LEASE_KEY = "leases/features/audio/0.json"


def _clips():
    return make_clips(N_CLIPS, seed=SEED)


def _by_id():
    return {clip.clip_id: clip for clip in _clips()}


@pytest.fixture(params=["path", "memory"])
def where(request, tmp_path):
    return tmp_path / "s.zarr" if request.param == "path" else zarr.storage.MemoryStore()


def _reference(tmp_path):
    store = new_store(tmp_path / "reference.zarr", _clips())
    fill_store(store, "audio", _clips(), audio_like, dim=8, seed=1)
    return all_arrays(store)


def _lease(store):
    """The raw lease record of block 0 of feature audio, read through zarr's store API."""
    value = sync(store._group.store.get(LEASE_KEY, prototype=default_buffer_prototype()))
    return None if value is None else json.loads(value.to_bytes())


def _put_lease(store, record):
    """Overwrite the lease record of block 0 (as a process that is not avscene could)."""
    data = json.dumps(record).encode()
    sync(store._group.store.set(LEASE_KEY, default_buffer_prototype().buffer.from_bytes(data)))


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_second_writer_of_a_block_is_refused_naming_the_holder(where):
    store = new_store(where, _clips())
    with store.block_writer("audio", 0) as first:
        record = _lease(store)
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        with pytest.raises(BlockLeasedError) as refused:
            store.block_writer("audio", 0)
        message = str(refused.value)
        assert "\n" not in message and "features/audio block 0" in message
        assert (
            f"pid {os.getpid()} on host {socket.gethostname()} since {record['started']}"
            in message
        )
        with store.block_writer("audio", 1):  # other blocks are free
            pass
        first.write(
            store.pending("audio", block=0)[0],
            *audio_like(_by_id()[store.pending("audio", block=0)[0]], dim=8, seed=1),
        )
    assert _lease(store) is None  # released on close
    with store.block_writer("audio", 0):  # and free again
        pass


def test_no_lease_is_left_for_plain_zarr_readers_to_see(tmp_path):
    where = tmp_path / "s.zarr"
    store = new_store(where, _clips())
    fill_store(store, "audio", _clips(), audio_like, dim=8, seed=1)
    assert not (where / "leases").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zarr warns about unknown objects
        assert sorted(name for name, _ in zarr.open_group(where, mode="r").members()) == [
            "clips",
            "features",
        ]
    with store.block_writer("audio", 2):  # a lease file exists meanwhile
        assert (where / LEASE_KEY.replace("/0.", "/2.")).is_file()
        assert store.verify() == []  # verify ignores leases
        assert zarr.open_group(where, mode="r")["features/audio/values"].shape[1] == 8


def _fill_block(store, block, order, commit_seconds):
    writer = store.block_writer("audio", block, commit_seconds=commit_seconds)
    written = {}
    for clip_id in order(store.pending("audio", block=block)):
        values, times = audio_like(_by_id()[clip_id], dim=8, seed=2)
        writer.write(clip_id, values, times)
        written[clip_id] = (values, times)
    return writer, written


def test_a_writer_declared_dead_cannot_commit_over_its_successor(where):
    """The interleaving of the issue: A writes values, A is declared dead, B writes values and
    index, A tries to write its index. A must fail without changing anything."""
    store = new_store(where, _clips())
    first, _ = _fill_block(store, 0, order=list, commit_seconds=3600)  # rows flushed, no index
    assert np.all(store.status("audio")[:4] == PENDING)
    with pytest.raises(BlockLeasedError):
        store.block_writer("audio", 0)
    record = _lease(store)
    _put_lease(store, {**record, "pid": _dead_pid(), "pid_start": None})  # A looks dead
    second, written = _fill_block(store, 0, order=lambda ids: ids[::-1], commit_seconds=0)
    assert np.sum(store.status("audio")[:4] == COMMITTED) >= 1  # B committed some clips
    before = all_arrays(store)
    with pytest.raises(LeaseLostError, match=f"taken over by pid {os.getpid()}"):
        first.close()
    with pytest.raises(LeaseLostError):
        first.write(store.clips.clip_id[0], *audio_like(_clips()[0], dim=8, seed=3))
    assert_same_arrays(all_arrays(store), before)  # A wrote nothing, not even its index
    second.close()
    assert np.all(store.status("audio")[:4] == COMMITTED)
    for clip_id, (values, times) in written.items():  # each clip holds its own frames
        got_values, got_times = store.frames("audio", clip_id)
        np.testing.assert_array_equal(got_values, values)
        np.testing.assert_array_equal(got_times, times)
    assert store.verify() == []


def test_a_writer_loses_its_lease_before_its_next_flush_writes_rows(where):
    store = new_store(where, _clips())
    by_id = _by_id()
    writer = store.block_writer("audio", 0, commit_seconds=0)
    pending = store.pending("audio", block=0)
    writer.write(pending[0], *audio_like(by_id[pending[0]], dim=8, seed=1))
    before = all_arrays(store)
    _put_lease(store, {**_lease(store), "token": "someone-else"})
    with pytest.raises(LeaseLostError):
        for clip_id in pending[1:]:  # the next flush checks the lease
            writer.write(clip_id, *audio_like(by_id[clip_id], dim=8, seed=1))
        writer.close()
    assert_same_arrays(all_arrays(store), before)


def test_leases_of_other_machines_expire_and_are_taken_over(where, monkeypatch, caplog):
    store = new_store(where, _clips())
    _put_lease(
        store,
        {
            "token": "t" * 32,
            "host": "elsewhere.example",
            "boot_id": "b",
            "pid_ns": 1,
            "pid": 4242,
            "pid_start": 7,
            "started": "2026-01-01T00:00:00+00:00",
            "renewed": time.time(),
        },
    )
    with pytest.raises(
        BlockLeasedError, match="pid 4242 on host elsewhere.example since 2026-01-01T00:00:00"
    ):
        store.block_writer("audio", 0)
    monkeypatch.setattr(leases_module, "LEASE_EXPIRY_SECONDS", -1)  # now older than that
    with caplog.at_level("WARNING"):
        fill_store(store, "audio", _clips(), audio_like, dim=8, seed=1)
    assert "taking over the lease of pid 4242 on host elsewhere.example" in caplog.text
    assert np.all(store.status("audio") == COMMITTED) and store.verify() == []


def test_a_writer_renews_its_lease_while_it_writes(tmp_path, monkeypatch):
    store = new_store(tmp_path / "s.zarr", _clips())
    path = tmp_path / "s.zarr" / LEASE_KEY
    by_id = _by_id()
    monkeypatch.setattr(leases_module, "RENEW_SECONDS", 0)
    with store.block_writer("audio", 0) as writer:
        os.utime(path, (1e9, 1e9))  # renewed long ago, as it seems
        assert store._leases.read("features/audio/0.json")[1] > 1e8
        clip_id = store.pending("audio", block=0)[0]
        writer.write(clip_id, *audio_like(by_id[clip_id], dim=8, seed=1))
        assert store._leases.read("features/audio/0.json")[1] < 1e8


HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from featurestore.store import FeatureStore
    store = FeatureStore.open(sys.argv[1], mode="r+")
    writer = store.block_writer("audio", 0)
    print("holding", flush=True)
    time.sleep(600)
""").format(root=ROOT)


def test_the_lease_of_a_killed_process_is_taken_over(tmp_path):
    where = tmp_path / "s.zarr"
    new_store(where, _clips()).close()
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen(
        [sys.executable, str(script), str(where)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        store = FeatureStore.open(where, mode="r+")
        with pytest.raises(BlockLeasedError, match=f"pid {holder.pid} on host"):
            store.block_writer("audio", 0)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
        holder.stdout.close()
    assert (where / LEASE_KEY).is_file()  # left behind by the kill
    fill_store(store, "audio", _clips(), audio_like, dim=8, seed=1)
    assert_same_arrays(all_arrays(store), _reference(tmp_path))
    assert not (where / "leases").exists()


def _prepare_and_fill(where, barrier):
    """Create (or open) the store, add clips, declare the feature, fill what no one else has."""
    barrier.wait()
    store = FeatureStore.open(where, mode="a", block_clips=4)
    store.add_clips(_clips())
    store.create_feature(
        "audio",
        dim=8,
        frame_rate=10.0,
        params={"hop": 0.1},
        chunk_mib=0.0005,
        storage_dtype="float32",
        compression="zstd",
    )
    store.attrs[f"process_{os.getpid()}"] = True
    by_id = _by_id()
    for block in store.blocks():
        try:
            with store.block_writer("audio", block, commit_seconds=0) as writer:
                for clip_id in store.pending("audio", block=block):
                    writer.write(clip_id, *audio_like(by_id[clip_id], dim=8, seed=1))
        except BlockLeasedError:
            continue


def test_two_processes_creating_and_filling_one_store_at_once(tmp_path):
    where = str(tmp_path / "shared.zarr")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    processes = [
        context.Process(target=_prepare_and_fill, args=(where, barrier)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    assert [process.exitcode for process in processes] == [0, 0]
    store = FeatureStore.open(where, mode="r")
    assert np.all(store.status("audio") == COMMITTED) and store.verify() == []
    assert sorted(key for key in store.attrs if key.startswith("process_")) == sorted(
        f"process_{process.pid}" for process in processes
    )  # no attribute lost
    assert_same_arrays(all_arrays(store), _reference(tmp_path))
    assert [p.name for p in tmp_path.iterdir() if p.name != "reference.zarr"] == ["shared.zarr"]


# -- the extraction job --------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    synth_corpus(
        out,
        clips_per_class=2,
        seconds=2.0,
        size=(64, 48),
        fps=5,
        seed=5,
        classes=("airport", "bus", "park"),
        workers=1,
    )
    return out / "development"


OPTIONS = ["--features", "logmel", "--n-mels", "32", "--workers", "0", "--progress", "log"]


def extract(root, store, *options):
    """Run ``avscene extract`` in this process; return (exit status, JSON summary)."""
    parser = cli.build_parser()
    args = parser.parse_args(["extract", str(root), str(store), "--json", *OPTIONS, *options])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = args.run(args)
    return status, json.loads(out.getvalue())


def _single_run(corpus, where, *, block_clips):
    """Every array of one uninterrupted run into a new store."""
    FeatureStore.open(where, mode="w", block_clips=block_clips).close()
    assert extract(corpus, where)[0] == 0
    return all_arrays(FeatureStore.open(where, mode="r"))


def test_extract_skips_a_block_another_writer_holds(corpus, tmp_path):
    where = tmp_path / "s.zarr"
    FeatureStore.open(where, mode="w", block_clips=2).close()
    assert extract(corpus, where, "--prepare-only")[0] == 0
    store = FeatureStore.open(where, mode="r+")
    with store.block_writer("logmel", 1):
        status, summary = extract(corpus, where)
    assert status == 1 and summary["failures"] == [] and summary["errors"] == []
    assert summary["failed_in_scope"] == 0
    [leased] = summary["leased"]
    assert (leased["feature"], leased["block"]) == ("logmel", 1)
    assert f"is leased by pid {os.getpid()}" in leased["reason"]
    assert list(FeatureStore.open(where).status("logmel")) == [1, 1, 0, 0, 1, 1]
    status, summary = extract(corpus, where)
    assert status == 0 and summary["done"] == 2 and summary["leased"] == []
    assert_same_arrays(
        all_arrays(FeatureStore.open(where, mode="r")),
        _single_run(corpus, tmp_path / "single.zarr", block_clips=2),
    )


def test_two_extract_runs_at_once_then_a_rerun_equal_one_run(corpus, tmp_path):
    where = tmp_path / "twice.zarr"
    FeatureStore.open(where, mode="w", block_clips=1).close()
    script = pathlib.Path(sys.executable).with_name("avscene")
    runs = [
        subprocess.Popen(
            [str(script), "extract", str(corpus), str(where), "--json", *OPTIONS],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [run.communicate(timeout=600) for run in runs]
    for run, (out, err) in zip(runs, results):
        assert run.returncode in (0, 1), err
        summary = json.loads(out)
        assert summary["failures"] == [] and summary["errors"] == []
        assert (run.returncode == 1) == bool(summary["leased"])
    status, _ = extract(corpus, where)
    assert status == 0
    store = FeatureStore.open(where, mode="r")
    assert store.verify() == [] and store.failures() == []
    assert_same_arrays(
        all_arrays(store), _single_run(corpus, tmp_path / "single.zarr", block_clips=1)
    )
