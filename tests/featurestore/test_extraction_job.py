"""``avscene extract`` end to end with random weights on tiny media.

Stored rows are compared with direct calls on the same files (OpenL3 port, log-mel, frames
decoded here with PyAV independently of featurestore.media.decode). Timing is never asserted: the
machine is shared.
"""

import json
import pathlib
import shutil

import numpy as np
import pytest
import soundfile

from featurestore import openl3
from featurestore.frontends import logmel
from featurestore.store import FeatureStore
from featurestore.synth import synth_corpus
from pipelines.commands import cli
from tests import helpers

FAST = ["--hop", "0.5", "--fps", "2", "--device", "cpu", "--progress", "log"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """3 development clips of 2 s (256x224 video, 10 fps) and one 1 s evaluation clip."""
    out = tmp_path_factory.mktemp("synth")
    synth_corpus(
        out,
        clips_per_class=1,
        seconds=2.0,
        size=(256, 224),
        fps=10,
        seed=3,
        eval_clips=1,
        classes=("airport", "bus", "park"),
        workers=1,
    )
    return out


def extract(root, store, weights, *options):
    """Run the command in this process; return (exit status, JSON summary)."""
    parser = cli.build_parser()
    args = parser.parse_args(
        ["extract", str(root), str(store), "--weights", str(weights), "--json", *options]
    )
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = args.run(args)
    return status, json.loads(out.getvalue())


def frames_at(path, times):
    """Frames on screen at ``times`` (last frame with pts - start_time <= t), decoded here."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        origin = float(stream.start_time * stream.time_base)
        decoded = [
            (float(f.pts * f.time_base) - origin, f.to_ndarray(format="rgb24"))
            for f in container.decode(stream)
        ]
    return np.stack([[img for t0, img in decoded if t0 <= t + 1e-9][-1] for t in times])


def direct_rows(root, clip, *, hop, center, fps, duration, models):
    """What each feature should hold for a clip, computed without the job."""
    audio, sr = soundfile.read(str(root / clip.audio), dtype="float32", always_2d=True)
    audio_model, image_model = models
    emb, stamps = openl3.audio_embeddings(
        audio, sr, model=audio_model, hop_size=hop, center=center
    )
    times = (np.arange(int(duration * fps) + 1) + 0.5) / fps
    times = times[times < duration]
    images = openl3.image_embeddings(frames_at(root / clip.video, times), model=image_model)
    mono = openl3.framing.mono_48k(audio, sr)
    mel, mel_stamps = logmel.logmel([mono])[0]
    return {
        "openl3_audio": (emb, stamps),
        "openl3_video": (images, times),
        "logmel": (mel, mel_stamps),
    }


def assert_rows_equal(store, clip_id, expected):
    for name, (values, stamps) in expected.items():
        stored, stored_stamps = store.frames(name, clip_id)
        np.testing.assert_allclose(stored_stamps, stamps, rtol=1e-12, atol=1e-12)
        scale = max(float(np.abs(values).max()), 1.0)
        np.testing.assert_allclose(
            stored, values, rtol=1e-4, atol=1e-4 * scale, err_msg=f"{name} of {clip_id}"
        )


def models(weights):
    return (
        openl3.load_audio_model(weights, device="cpu"),
        openl3.load_image_model(weights, device="cpu"),
    )


def test_synth_corpus_equals_direct_calls_and_rerun_skips(corpus, weights, tmp_path):
    store_path = tmp_path / "store"
    root = corpus / "development"
    status, summary = extract(root, store_path, weights, *FAST, "--workers", "1", "--limit", "2")
    assert status == 0 and summary["failed_in_scope"] == 0 and summary["done"] == 2
    assert summary["params"]["openl3_audio"]["model"]["random_weights"] == 7
    with FeatureStore.open(store_path) as store:
        assert set(store.features) == {"openl3_audio", "openl3_video", "logmel"}
        params = store.feature_params("openl3_audio")
        assert (
            params["hop"] == 0.5
            and params["center"] is True
            and len(params["model"]["weights_sha256"]) == 64
        )
        assert store.feature_params("openl3_video")["fps"] == 2.0
        for clip in store.clips.records():
            expected = direct_rows(
                root,
                clip,
                hop=0.5,
                center=True,
                fps=2.0,
                duration=clip.duration,
                models=models(weights),
            )
            assert_rows_equal(store, clip.clip_id, expected)
        # one clock: every second of every clip holds 2 audio and 2 video frames
        segments = store.segments(["openl3_audio", "openl3_video"], pooling="none")
        assert len(segments.clip_id) == 2 * 2
        assert np.all(segments.counts["openl3_audio"] == 2)
        assert np.all(segments.counts["openl3_video"] == 2)
        before = {c: store.frames("logmel", c)[0] for c in store.clips.clip_id}
    status, summary = extract(root, store_path, weights, *FAST, "--workers", "0", "--limit", "2")
    assert status == 0 and summary["done"] == 0 and summary["committed_in_scope"] == 2
    with FeatureStore.open(store_path) as store:
        for clip_id, values in before.items():
            np.testing.assert_array_equal(store.frames("logmel", clip_id)[0], values)


def write_meta(root, stems):
    lines = ["filename_audio\tfilename_video\tscene_label\tidentifier"]
    for stem in stems:
        scene, city, location, _ = stem.split("-")
        lines.append(f"audio/{stem}.wav\tvideo/{stem}.mp4\t{scene}\t{city}-{location}")
    (root / "meta.csv").write_text("\n".join(lines) + "\n")


def real_layout(corpus, tmp_path):
    """The synth development set with a 480,001-sample clip, a mono clip and a 44.1 kHz clip."""
    root = tmp_path / "development"
    shutil.copytree(corpus / "development", root)
    stems = sorted(p.stem for p in (root / "audio").glob("*.wav"))
    long_stem, mono_stem, cd_stem = stems
    rng = np.random.default_rng()
    helpers.write_wav(root / "audio" / f"{long_stem}.wav", rng.uniform(-0.5, 0.5, (480001, 2)))
    helpers.write_mp4(
        root / "video" / f"{long_stem}.mp4", width=320, height=260, rate=2, n_frames=20
    )
    helpers.write_wav(root / "audio" / f"{mono_stem}.wav", rng.uniform(-0.5, 0.5, (96000, 1)))
    helpers.write_wav(
        root / "audio" / f"{cd_stem}.wav",
        rng.uniform(-0.5, 0.5, (88200, 2)),
        sr=44100,
        subtype="PCM_16",
    )
    return root, stems


REAL_OPTIONS = ["--hop", "1.0", "--no-center", "--fps", "1", "--device", "cpu", "--workers", "1"]


def test_files_laid_out_like_the_real_dataset(corpus, weights, tmp_path):
    """480,001 samples, mono, 44.1 kHz, and a 1 s evaluation clip, all in one store."""
    root, (long_stem, mono_stem, cd_stem) = real_layout(corpus, tmp_path)
    store_path = tmp_path / "store"
    status, summary = extract(root, store_path, weights, *REAL_OPTIONS)
    assert status == 0, summary["failures"]
    status, summary = extract(corpus / "evaluation", store_path, weights, *REAL_OPTIONS)
    assert status == 0, summary["failures"]
    audio_model, image_model = models(weights)
    with FeatureStore.open(store_path) as store:
        assert len(store.clips) == 4 and "0" in store.clips.clip_id
        assert store.clips.duration[store.clips.positions([cd_stem])[0]] == 2.0
        values, stamps = store.frames("openl3_audio", long_stem)
        assert len(values) == 11 and stamps[-1] == 10.0  # 480,000 samples give 10
        audio, sr = soundfile.read(str(root / "audio" / f"{long_stem}.wav"), dtype="float32")
        windows, _ = openl3.frame_audio(audio, sr, hop_size=1.0, center=False)
        direct = openl3.embed_audio_frames(windows[[0, -1]], model=audio_model)
        np.testing.assert_allclose(values[[0, -1]], direct, rtol=1e-4, atol=1e-3)
        values, stamps = store.frames("openl3_video", long_stem)
        assert list(stamps) == [k + 0.5 for k in range(10)]
        direct = openl3.image_embeddings(
            frames_at(root / "video" / f"{long_stem}.mp4", [0.5, 9.5]), model=image_model
        )
        np.testing.assert_allclose(values[[0, -1]], direct, rtol=1e-4, atol=1e-3)
        assert len(store.frames("logmel", long_stem)[0]) == 1001
        assert len(store.frames("openl3_audio", "0")[0]) == 1
        assert list(store.frames("openl3_video", "0")[1]) == [0.5]
        for clip in store.clips.records():
            if clip.clip_id != long_stem:
                where = corpus / "evaluation" if clip.clip_id == "0" else root
                expected = direct_rows(
                    where,
                    clip,
                    hop=1.0,
                    center=False,
                    fps=1.0,
                    duration=clip.duration,
                    models=(audio_model, image_model),
                )
                assert_rows_equal(store, clip.clip_id, expected)


@pytest.mark.slow
def test_real_layout_every_row_equals_direct_calls(corpus, weights, tmp_path):
    root, _ = real_layout(corpus, tmp_path)
    store_path = tmp_path / "store"
    assert extract(root, store_path, weights, *REAL_OPTIONS)[0] == 0
    with FeatureStore.open(store_path) as store:
        for clip in store.clips.records():
            expected = direct_rows(
                root,
                clip,
                hop=1.0,
                center=False,
                fps=1.0,
                duration=clip.duration,
                models=models(weights),
            )
            assert_rows_equal(store, clip.clip_id, expected)


# --- bad input --------------------------------------------------------------------------

GOOD = ("bus-milan-73-1", "park-lyon-599-2")
BAD = {  # stem -> (what is wrong, features that must fail)
    "airport-vienna-582-10": ("truncated WAV", "audio"),
    "airport-vienna-582-11": ("empty WAV", "audio"),
    "airport-vienna-582-12": ("NaN samples", "audio"),
    "airport-vienna-582-13": ("0.2 s clip: audio padded to a window, no video frame", "video"),
    "airport-vienna-582-14": ("8 kHz audio", "audio"),
    "airport-vienna-582-15": ("4 audio channels", "audio"),
    "airport-vienna-582-16": ("garbage WAV", "audio"),
    "tram-paris-12-20": ("truncated mp4", "video"),
    "tram-paris-12-21": ("empty mp4", "video"),
    "tram-paris-12-22": ("mp4 without video stream", "video"),
    "tram-paris-12-23": ("64x48 video", "video"),
    "tram-paris-12-24": ("missing video file", "video"),
    "tram-paris-12-25": ("video shorter than the audio", "video"),
    "metro-lyon-30-30": ("no media at all", "both"),
}


def bad_dataset(root):
    audio, video = root / "audio", root / "video"
    audio.mkdir(parents=True)
    video.mkdir()
    rng = np.random.default_rng()

    def wav(stem, seconds=1.0, sr=48000, channels=2, subtype="PCM_24"):
        return helpers.write_wav(
            audio / f"{stem}.wav",
            rng.uniform(-0.5, 0.5, (int(seconds * sr), channels)),
            sr,
            subtype,
        )

    def mp4(stem, **options):
        spec = dict(width=256, height=224, rate=4, n_frames=4) | options
        helpers.write_mp4(video / f"{stem}.mp4", **spec)
        return video / f"{stem}.mp4"

    for stem in list(GOOD) + list(BAD):
        wav(stem)
        mp4(stem)
    stems = list(BAD)
    helpers.truncate(audio / f"{stems[0]}.wav", 0.5)
    (audio / f"{stems[1]}.wav").write_bytes(b"")
    samples = rng.uniform(-0.5, 0.5, (48000, 2))
    samples[100, 0] = np.nan
    helpers.write_wav(audio / f"{stems[2]}.wav", samples, subtype="FLOAT")
    wav(stems[3], seconds=0.2)
    wav(stems[4], sr=8000)
    wav(stems[5], channels=4)
    (audio / f"{stems[6]}.wav").write_bytes(rng.bytes(3000))
    helpers.truncate(video / f"{stems[7]}.mp4", 0.5)
    (video / f"{stems[8]}.mp4").write_bytes(b"")
    helpers.write_mp4(video / f"{stems[9]}.mp4", video=False, audio=(np.zeros((4800, 2)), 48000))
    mp4(stems[10], width=64, height=48)
    (video / f"{stems[11]}.mp4").unlink()
    mp4(stems[12], n_frames=1)
    (audio / f"{stems[13]}.wav").write_bytes(b"")
    (video / f"{stems[13]}.mp4").write_bytes(b"")
    write_meta(root, list(GOOD) + list(BAD))
    return root


def test_every_bad_input_is_reported_once_and_recorded(weights, tmp_path, caplog):
    root = bad_dataset(tmp_path / "dataset")
    store_path = tmp_path / "store"
    options = ["--hop", "1.0", "--no-center", "--fps", "1", "--device", "cpu", "--workers", "1"]
    with caplog.at_level("WARNING", logger="avscene.extract"):
        status, summary = extract(root, store_path, weights, *options)
    assert status == 1
    reported = [r.getMessage() for r in caplog.records if r.getMessage().startswith("failed:")]
    audio_features, video_features = {"openl3_audio", "logmel"}, {"openl3_video"}
    with FeatureStore.open(store_path) as store:
        for stem in GOOD:
            for name in store.features:
                store.frames(name, stem)  # committed
        recorded = {(name, clip_id): reason for name, clip_id, reason in store.failures()}
        for stem, (what, modality) in BAD.items():
            failing = {
                "audio": audio_features,
                "video": video_features,
                "both": audio_features | video_features,
            }[modality]
            assert {n for n, c in recorded if c == stem} == failing, what
            lines = [line for line in reported if f" {stem} " in line]
            assert len(lines) == len({recorded[(n, stem)] for n in failing}), (what, lines)
            assert all("\n" not in line and stem in line for line in lines)
            for name in set(store.features) - failing:  # the other modality is still stored
                store.frames(name, stem)
    assert summary["failed_in_scope"] == len(BAD)
    assert {f["clip_id"] for f in summary["failures"]} == set(BAD)
    # a rerun has nothing left to do, and still says that clips failed
    status, summary = extract(root, store_path, weights, *options)
    assert status == 1 and summary["done"] == 0 and summary["failures"] == []


# --- crash and resume, shards ------------------------------------------------------------


def copies_dataset(corpus, root, copies):
    """A development layout holding ``copies`` renamed copies of each synth clip."""
    (root / "audio").mkdir(parents=True)
    (root / "video").mkdir()
    stems = []
    for path in sorted((corpus / "development" / "audio").glob("*.wav")):
        scene, city, location, _ = path.stem.split("-")
        for _ in range(copies):
            stem = f"{scene}-{city}-{location}-{900 + len(stems)}"
            shutil.copy(path, root / "audio" / f"{stem}.wav")
            shutil.copy(
                corpus / "development" / "video" / f"{path.stem}.mp4",
                root / "video" / f"{stem}.mp4",
            )
            stems.append(stem)
    write_meta(root, stems)
    return stems


def children(pid):
    import pathlib

    found = []
    for task in pathlib.Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(c) for c in task.read_text().split()]
    return found


def alive(pid):
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text().split()
    return stat[2] != "Z"


def committed(store_path, name):
    try:
        with FeatureStore.open(store_path) as store:
            return int((store.status(name) == 1).sum())
    except Exception:  # a write in progress: try again
        return -1


def store_contents(store_path):
    with FeatureStore.open(store_path) as store:
        assert store.verify() == []
        contents = {
            "clips": store.clips.records(),
            "failures": store.failures(),
            "params": {n: store.feature_params(n) for n in store.features},
        }
        for name in store.features:
            assert np.all(store.status(name) == 1)
            contents[name] = {c: store.frames(name, c) for c in store.clips.clip_id}
    return contents


@pytest.mark.slow
def test_sigkill_then_rerun_equals_an_uninterrupted_run(corpus, weights, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = tmp_path / "dataset"
    stems = copies_dataset(corpus, root, 3)  # 9 clips of 2 s
    options = [
        "--features",
        "openl3_audio,logmel",
        "--hop",
        "1.0",
        "--batch",
        "2",
        "--device",
        "cpu",
        "--weights",
        str(weights),
        "--progress",
        "log",
    ]
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    for path in (killed, reference):
        FeatureStore.open(path, mode="w", block_clips=2).close()
    script = Path(sys.executable).with_name("avscene")
    process = subprocess.Popen(
        [str(script), "extract", str(root), str(killed), "--workers", "1", *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if committed(killed, "openl3_audio") >= 2:
            break
        time.sleep(0.1)
    workers = children(process.pid)
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert 2 <= committed(killed, "openl3_audio") < len(stems)
    with FeatureStore.open(killed) as store:
        complete = int(((store.status("openl3_audio") == 1) & (store.status("logmel") == 1)).sum())
    for pid in workers:  # decoding workers notice and leave
        for _ in range(100):
            if not alive(pid):
                break
            time.sleep(0.1)
        assert not alive(pid), f"worker {pid} outlived the killed job"
    status, summary = extract(
        root, killed, weights, *options[:-4], "--device", "cpu", "--workers", "0"
    )
    assert status == 0 and summary["done"] == len(stems) - complete
    status, _ = extract(
        root, reference, weights, *options[:-4], "--device", "cpu", "--workers", "1"
    )
    assert status == 0
    got, want = store_contents(killed), store_contents(reference)
    assert got["clips"] == want["clips"] and got["params"] == want["params"]
    assert got["failures"] == want["failures"] == []
    for name in ("openl3_audio", "logmel"):
        for clip_id, (values, stamps) in want[name].items():
            np.testing.assert_array_equal(got[name][clip_id][1], stamps)
            np.testing.assert_allclose(got[name][clip_id][0], values, rtol=1e-5, atol=1e-5)


def test_shards_fill_disjoint_blocks_of_one_store(corpus, weights, tmp_path):
    root = tmp_path / "dataset"
    stems = copies_dataset(corpus, root, 2)  # 6 clips, 3 blocks of 2
    sharded, whole = tmp_path / "sharded", tmp_path / "whole"
    for path in (sharded, whole):
        FeatureStore.open(path, mode="w", block_clips=2).close()
    options = ["--features", "logmel", "--n-mels", "32", "--workers", "0"]
    with pytest.raises(Exception, match="--prepare-only"):
        extract(root, sharded, weights, *options, "--shard", "0/2")
    assert extract(root, sharded, weights, *options, "--prepare-only")[0] == 0
    status, first = extract(root, sharded, weights, *options, "--shard", "0/2")
    assert status == 0 and first["done"] == 4  # blocks 0 and 2
    with FeatureStore.open(sharded) as store:
        assert list(store.status("logmel")) == [1, 1, 0, 0, 1, 1]
    status, second = extract(root, sharded, weights, *options, "--shard", "1/2")
    assert status == 0 and second["done"] == 2
    assert extract(root, whole, weights, *options)[0] == 0
    got, want = store_contents(sharded), store_contents(whole)
    assert got["clips"] == want["clips"]
    for clip_id in stems:
        np.testing.assert_array_equal(got["logmel"][clip_id][0], want["logmel"][clip_id][0])


def test_changed_parameters_are_refused(corpus, weights, tmp_path):
    from featurestore.errors import ProvenanceMismatchError

    store_path = tmp_path / "store"
    options = ["--features", "logmel", "--workers", "0", "--limit", "1"]
    assert extract(corpus / "development", store_path, weights, *options)[0] == 0
    with pytest.raises(ProvenanceMismatchError, match="n_mels"):
        extract(corpus / "development", store_path, weights, *options, "--n-mels", "64")


@pytest.mark.parametrize(
    "argv",
    [
        ["--features", "mfcc"],
        ["--shard", "2/2"],
        ["--shard", "x"],
        ["--hop", "0"],
        ["--clip-timeout", "-1"],
        ["--clip-timeout", "nan"],
        ["--min-duration", "-0.1"],
    ],
)
def test_bad_usage_exits_2(argv, tmp_path):
    with pytest.raises(SystemExit) as stop:
        cli.main(["extract", str(tmp_path), str(tmp_path / "s"), *argv])
    assert stop.value.code == 2


def test_storage_options_reach_the_store(corpus, weights, tmp_path):
    store_path = tmp_path / "store"
    status, _ = extract(
        corpus / "development",
        store_path,
        weights,
        "--features",
        "logmel",
        "--n-mels",
        "16",
        "--workers",
        "0",
        "--limit",
        "2",
        "--storage-dtype",
        "float16",
        "--compression",
        "zstd",
    )
    assert status == 0
    with FeatureStore.open(store_path) as store:
        attrs = store.feature_attrs("logmel")
        assert (attrs["storage_dtype"], attrs["compression"]) == ("float16", "zstd")
        values, _ = store.frames("logmel", store.clips.clip_id[0])
        assert values.dtype == np.float32


def test_a_run_records_the_stored_sizes(corpus, weights, tmp_path):
    """Block writers change no metadata; the run records the sizes that info over HTTP reads."""
    from featurestore.store.sizes import measure, recorded

    store_path = tmp_path / "store"
    status, _ = extract(
        corpus / "development",
        store_path,
        weights,
        "--features",
        "logmel",
        "--n-mels",
        "16",
        "--workers",
        "0",
        "--limit",
        "2",
    )
    assert status == 0
    with FeatureStore.open(store_path) as store:
        sizes = recorded(store._group, store.label)
        assert sizes == measure(store._group) and sizes["features/logmel/values"] > 0
