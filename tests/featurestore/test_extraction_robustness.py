"""The extraction job is trustworthy to rerun: a decoder that crashes or hangs costs one clip,
failures can be retried, non-finite rows are never stored, a modality a clip has no file for is
not a failure, and short audio is taken as openl3 takes it.

Misbehaving decoders are the job's real worker functions wrapped by :mod:`worker_fakes`
(segfault or hang on one clip) and passed to the job; they run in spawned worker processes, so
a crash in this test process would end the test run. Stored rows are compared with direct
computations (log-mel of the file read with soundfile, OpenL3 on a window padded by hand).
"""

import dataclasses
import functools
import shutil

import numpy as np
import pytest
import soundfile

from featurestore import openl3
from featurestore.extraction import ExtractJob, Plan
from featurestore.extraction import runners as runners_module
from featurestore.extraction.prepare import prepare_task, probe_task
from featurestore.frontends import logmel
from featurestore.store import COMMITTED, FAILED, NOT_APPLICABLE, PENDING, FeatureStore
from tests import helpers
from tests.featurestore.test_extraction_job import extract
from tests.featurestore.worker_fakes import crash_on, hang_on

MELS = logmel.logmel_params(n_mels=16)
LOGMEL = ["--features", "logmel", "--n-mels", "16", "--device", "cpu", "--progress", "log"]


def wav_corpus(root, seconds, *, video=None):
    """``root/clips.csv`` naming ``audio/c<i>.wav`` (and ``video/c<i>.mp4`` for ``i`` in
    ``video``) for clips of ``seconds``; returns the manifest path and the clip ids."""
    (root / "audio").mkdir(parents=True)
    rows, ids = ["audio,video"], []
    for i, length in enumerate(seconds):
        clip_id = f"c{i}"
        helpers.write_wav(
            root / "audio" / f"{clip_id}.wav",
            helpers.noise(length, seed=np.random.default_rng().integers(1 << 30)),
        )
        named = ""
        if video is not None and i in video:
            (root / "video").mkdir(exist_ok=True)
            helpers.write_mp4(
                root / "video" / f"{clip_id}.mp4",
                width=256,
                height=224,
                rate=4,
                n_frames=int(4 * length) + 1,
            )
            named = f"video/{clip_id}.mp4"
        rows.append(f"audio/{clip_id}.wav,{named}")
        ids.append(clip_id)
    (root / "clips.csv").write_text("\n".join(rows) + "\n")
    return root / "clips.csv", ids


def direct_logmel(path, params=MELS):
    audio, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    assert sr == 48000
    return logmel.logmel([openl3.framing.mono_48k(audio, sr)], params)[0]


def run_job(manifest, store, **options):
    plan = Plan(features=("logmel",), logmel=MELS)
    options = {"workers": 1, "device": "cpu", "progress": "log", **options}
    return ExtractJob(manifest, store, plan, **options).run()


def assert_logmel_equals_direct(store_path, root, clip_ids):
    with FeatureStore.open(store_path) as store:
        for clip_id in clip_ids:
            values, stamps = store.frames("logmel", clip_id)
            expected, expected_stamps = direct_logmel(root / "audio" / f"{clip_id}.wav")
            np.testing.assert_array_equal(stamps, expected_stamps)
            np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-4)


# --- a decoder that crashes, a decoder that hangs -------------------------------------------


def test_a_decoder_crash_while_probing_costs_one_clip_not_the_job(tmp_path):
    """Before: probing ran in threads of the main process, so this segfault ended the job
    (and the test run) before anything was registered."""
    manifest, ids = wav_corpus(tmp_path / "data", [1.0, 1.5, 2.0, 2.5])
    store_path = tmp_path / "store"
    summary = run_job(
        manifest,
        store_path,
        probe=functools.partial(crash_on, "c1", probe_task),
        prepare=functools.partial(crash_on, "c1", prepare_task),
    )
    reason = "decoding worker died (signal 11)"
    assert summary["failures"] == [{"clip_id": "c1", "features": ["logmel"], "reason": reason}]
    assert summary["failed_in_scope"] == 1 and summary["errors"] == []
    with FeatureStore.open(store_path) as store:
        durations = dict(zip(store.clips.clip_id.tolist(), store.clips.duration.tolist()))
        assert durations == {"c0": 1.0, "c1": 2.0, "c2": 2.0, "c3": 2.5}  # median of others
        assert store.attrs["datasets"][-1]["stand_in_durations"] == ["c1"]
        assert store.failures() == [("logmel", "c1", reason)]
        assert store.verify() == []
    assert_logmel_equals_direct(store_path, tmp_path / "data", ["c0", "c2", "c3"])
    again = run_job(manifest, store_path, prepare=functools.partial(crash_on, "c1", prepare_task))
    assert again["done"] == 0 and again["failed_in_scope"] == 1  # recorded, not retried


def test_a_hanging_decoder_is_stopped_at_the_clip_timeout(tmp_path):
    manifest, ids = wav_corpus(tmp_path / "data", [1.0] * 4)
    store_path = tmp_path / "store"
    summary = run_job(
        manifest,
        store_path,
        clip_timeout=2,
        probe=functools.partial(hang_on, "c2", probe_task),
        prepare=functools.partial(hang_on, "c1", prepare_task),
    )
    reason = "decoding took longer than 2 s (worker stopped)"  # the job finished
    assert summary["failures"] == [{"clip_id": "c1", "features": ["logmel"], "reason": reason}]
    assert summary["committed_in_scope"] == 3 and summary["failed_in_scope"] == 1
    with FeatureStore.open(store_path) as store:
        assert store.failures() == [("logmel", "c1", reason)]
        # the probe of c2 hung too: registered with the stand-in (here its true length)
        assert store.attrs["datasets"][-1]["stand_in_durations"] == ["c2"]
        assert list(store.status("logmel")) == [COMMITTED, FAILED, COMMITTED, COMMITTED]
    assert_logmel_equals_direct(store_path, tmp_path / "data", ["c0", "c2", "c3"])


# --- --retry-failed ------------------------------------------------------------------------


def store_contents(store_path):
    """What a store holds for its readers: clips, failures, params, every clip's frames."""
    with FeatureStore.open(store_path) as store:
        assert store.verify() == []
        contents = {
            "clips": store.clips.records(),
            "failures": store.failures(),
            "params": {n: store.feature_params(n) for n in store.features},
            "status": {n: store.status(n).tolist() for n in store.features},
        }
        for name in store.features:
            contents[name] = {
                c: store.frames(name, c)
                for c in store.clips.clip_id
                if store.status(name)[store.clips.positions([c])[0]] == COMMITTED
            }
    return contents


def test_retry_failed_runs_a_transient_failure_again(weights, tmp_path):
    root = tmp_path / "data"
    manifest, ids = wav_corpus(root, [1.0, 1.5, 1.0], video={0, 1, 2})
    options = [
        "--features",
        "openl3_video,logmel",
        "--n-mels",
        "16",
        "--fps",
        "1",
        "--device",
        "cpu",
        "--workers",
        "1",
        "--progress",
        "log",
    ]
    hidden = tmp_path / "c1.mp4"
    shutil.move(root / "video" / "c1.mp4", hidden)  # a share not mounted yet
    store_path = tmp_path / "store"
    status, first = extract(manifest, store_path, weights, *options)
    assert status == 1
    assert [(f["clip_id"], f["features"]) for f in first["failures"]] == [("c1", ["openl3_video"])]
    assert first["failures"][0]["reason"] == "video/c1.mp4: file not found"
    shutil.move(hidden, root / "video" / "c1.mp4")
    status, plain = extract(manifest, store_path, weights, *options)
    assert status == 1 and plain["done"] == 0 and plain["retried"] == 0  # still failed
    status, retried = extract(manifest, store_path, weights, *options, "--retry-failed")
    assert status == 0 and retried["retried"] == 1 and retried["done"] == 1
    assert retried["failed_in_scope"] == 0 and retried["failures"] == []
    clean = tmp_path / "clean"
    assert extract(manifest, clean, weights, *options)[0] == 0
    got, want = store_contents(store_path), store_contents(clean)
    assert got["clips"] == want["clips"] and got["params"] == want["params"]
    assert got["failures"] == want["failures"] == [] and got["status"] == want["status"]
    for name in ("openl3_video", "logmel"):
        assert sorted(got[name]) == sorted(want[name]) == ids
        for clip_id, (values, stamps) in want[name].items():
            np.testing.assert_array_equal(got[name][clip_id][1], stamps)
            np.testing.assert_allclose(got[name][clip_id][0], values, rtol=1e-5, atol=1e-5)
    status, after = extract(manifest, store_path, weights, *options, "--retry-failed")
    assert status == 0 and after["retried"] == 0 and after["done"] == 0


def test_block_writer_retry_and_not_applicable(tmp_path):
    clips = helpers.make_clips(6)
    with helpers.new_store(tmp_path / "s", clips, block_clips=3) as store:
        block = store.blocks()[0]
        ids = [str(c) for c in block.clip_ids]
        with store.block_writer("audio", block) as writer:
            values, stamps = helpers.audio_like(clips[0], dim=8, seed=1)
            assert writer.write(ids[0], values, stamps)
            assert writer.fail(ids[1], "bad file")
            assert writer.not_applicable(ids[2], "no audio file")
        assert list(store.status("audio")[:3]) == [COMMITTED, FAILED, NOT_APPLICABLE]
        assert store.pending("audio", block=block) == []
        info = store.info()["features"]["audio"]
        assert (info["committed"], info["failed"], info["not_applicable"], info["pending"]) == (
            1,
            1,
            1,
            3,
        )
        assert store.verify() == []
        with store.block_writer("audio", block) as writer:
            assert not writer.retry(ids[0]) and not writer.retry(ids[2])  # only failures
            assert writer.retry(ids[1])
        assert list(store.status("audio")[:3]) == [COMMITTED, PENDING, NOT_APPLICABLE]
        assert store.failures() == [] and store.pending("audio", block=block) == [ids[1]]
        np.testing.assert_array_equal(store.frames("audio", ids[0])[0], values)
        assert store.verify() == []


# --- non-finite rows -------------------------------------------------------------------------


def poisoned(length, row, value):
    """A ``load_runners`` whose log-mel rows of the clip of ``length`` samples hold ``value``
    in ``row``."""
    real = runners_module.load_runners

    def load_runners(extractors, **kwargs):
        loaded = real(extractors, **kwargs)
        runner = loaded["logmel"]

        def run(slices):
            parts = [runner.run([chunk]) for chunk in slices]
            for chunk, part in zip(slices, parts):
                if len(chunk[0]) == length:
                    part[row, 1] = value
            return np.concatenate(parts)

        return {**loaded, "logmel": dataclasses.replace(runner, run=run)}

    return load_runners


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_rows_fail_the_clip_and_nothing_is_written(value, monkeypatch, tmp_path):
    root = tmp_path / "data"
    manifest, ids = wav_corpus(root, [1.0, 1.5, 2.0])
    monkeypatch.setattr(runners_module, "load_runners", poisoned(72000, 7, value))
    store_path = tmp_path / "store"
    status, summary = extract(manifest, store_path, "unused", *LOGMEL, "--workers", "0")
    reason = "non-finite values in rows 7 (1 of 151 rows)"
    assert status == 1
    assert summary["failures"] == [{"clip_id": "c1", "features": ["logmel"], "reason": reason}]
    with FeatureStore.open(store_path) as store:
        assert store.failures() == [("logmel", "c1", reason)]
        with pytest.raises(Exception, match="failed"):
            store.frames("logmel", "c1")
        assert store.verify() == []
        rows = store.read("logmel")
        assert np.isfinite(rows.values).all() and np.isfinite(rows.timestamps).all()
    assert_logmel_equals_direct(store_path, root, ["c0", "c2"])


# --- not applicable is not failed ------------------------------------------------------------


def test_audio_only_csv_corpus_is_not_a_video_failure(weights, tmp_path):
    """Before: every clip was reported as failed for openl3_video, and the exit status was 1."""
    manifest, ids = wav_corpus(tmp_path / "data", [1.0, 0.75, 1.25, 2.0])
    options = [
        "--hop",
        "0.5",
        "--fps",
        "1",
        "--n-mels",
        "16",
        "--device",
        "cpu",
        "--workers",
        "1",
        "--progress",
        "log",
    ]
    store_path = tmp_path / "store"
    status, summary = extract(manifest, store_path, weights, *options)
    assert status == 0 and summary["failures"] == [] and summary["failed_in_scope"] == 0
    assert summary["not_applicable"] == {"openl3_audio": 0, "openl3_video": 4, "logmel": 0}
    assert summary["committed_in_scope"] == 4 and summary["done"] == 4
    with FeatureStore.open(store_path) as store:
        assert list(store.status("openl3_video")) == [NOT_APPLICABLE] * 4
        info = store.info()["features"]
        assert info["openl3_video"]["not_applicable"] == 4 and info["openl3_video"]["pending"] == 0
        assert info["openl3_audio"]["committed"] == info["logmel"]["committed"] == 4
        assert store.failures() == [] and store.verify() == []
        reasons = {str(r) for r in store._feature("openl3_video").reason[:]}
        assert reasons == {"the manifest names no video file"}
    status, again = extract(manifest, store_path, weights, *options)
    assert status == 0 and again["done"] == 0  # not pending either


def test_a_named_but_missing_file_fails_an_unnamed_one_does_not_apply(weights, tmp_path):
    root = tmp_path / "data"
    manifest, ids = wav_corpus(root, [1.0, 1.0, 1.0], video={0, 2})
    (root / "video" / "c2.mp4").unlink()
    options = [
        "--features",
        "openl3_video,logmel",
        "--fps",
        "1",
        "--n-mels",
        "16",
        "--device",
        "cpu",
        "--workers",
        "1",
        "--progress",
        "log",
    ]
    store_path = tmp_path / "store"
    status, summary = extract(manifest, store_path, weights, *options)
    assert status == 1
    assert summary["not_applicable"] == {"openl3_video": 1, "logmel": 0}
    assert summary["failures"] == [
        {"clip_id": "c2", "features": ["openl3_video"], "reason": "video/c2.mp4: file not found"}
    ]
    with FeatureStore.open(store_path) as store:
        assert list(store.status("openl3_video")) == [COMMITTED, NOT_APPLICABLE, FAILED]
        assert list(store.status("logmel")) == [COMMITTED] * 3


# --- short audio -----------------------------------------------------------------------------


@pytest.mark.parametrize("center", [True, False])
def test_audio_shorter_than_a_window_is_padded_as_openl3_does(center, weights, tmp_path):
    """Before: anything under 0.5 s was refused. openl3 0.4.2 pads it to one window: centring
    prepends 24,000 zeros, then zeros fill the window to 48,000 samples."""
    root = tmp_path / "data"
    manifest, _ = wav_corpus(root, [0.2, 1.0])
    helpers.write_wav(root / "audio" / "c1.wav", np.zeros((0, 2)))  # empty: still a failure
    options = [
        "--features",
        "openl3_audio,logmel",
        "--n-mels",
        "16",
        "--device",
        "cpu",
        "--workers",
        "1",
        "--progress",
        "log",
        "--center" if center else "--no-center",
    ]
    status, summary = extract(manifest, tmp_path / "store", weights, *options)
    assert status == 1
    assert [(f["clip_id"], f["reason"]) for f in summary["failures"]] == [
        ("c1", "audio/c1.wav: audio has zero samples")
    ]
    audio, sr = soundfile.read(str(root / "audio" / "c0.wav"), dtype="float32")
    mono = audio.mean(axis=1, dtype=np.float32)
    assert sr == 48000 and len(mono) == 9600
    window = np.zeros(48000, np.float32)
    start = 24000 if center else 0
    window[start : start + len(mono)] = mono
    direct = openl3.embed_audio_frames(window[None], model=openl3.load_audio_model(weights))
    with FeatureStore.open(tmp_path / "store") as store:
        values, stamps = store.frames("openl3_audio", "c0")
        assert stamps.tolist() == [0.0]
        np.testing.assert_allclose(values, direct, rtol=1e-4, atol=1e-4)
        mels, mel_stamps = store.frames("logmel", "c0")
        expected, expected_stamps = logmel.logmel([mono], MELS)[0]
        np.testing.assert_array_equal(mel_stamps, expected_stamps)
        np.testing.assert_allclose(mels, expected, rtol=1e-5, atol=1e-4)
