"""The synthetic corpus: exact TAU layout and formats, determinism, folds, and learnability that
needs both modalities (checked with features computed here, independent of featurestore)."""

import json

import numpy as np
import pytest

from featurestore.datasets import SCENES, load_manifest, parse_tau_name
from featurestore.synth.audio import SCENE_AUDIO
from featurestore.synth.corpus import (
    AUDIO_ALIKE,
    VIDEO_ALIKE,
    plan_corpus,
    synth_corpus,
)
from featurestore.synth.video import SCENE_VIDEO

SMALL = dict(
    clips_per_class=3, seconds=2.0, size=(64, 48), fps=5.0, locations_per_class=3, eval_clips=6
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    result = synth_corpus(out, seed=7, workers=1, **SMALL)
    return out, result


def read_table(path):
    lines = path.read_text().splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def decoded_frames(path):
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = (
            stream.codec_context.name,
            stream.codec_context.pix_fmt,
            stream.width,
            stream.height,
            float(stream.average_rate),
        )
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return info, np.stack(frames)


def test_development_layout_and_formats(corpus):
    import soundfile

    out, result = corpus
    dev = out / "development"
    assert result.development == dev and result.clips == 30
    header, meta = read_table(dev / "meta.csv")
    assert header == ["filename_audio", "filename_video", "scene_label", "identifier"]
    for name in ("fold1_train.csv", "fold1_evaluate.csv"):
        assert read_table(dev / "evaluation_setup" / name)[0] == header[:3]
    assert read_table(dev / "evaluation_setup" / "fold1_test.csv")[0] == header[:2]
    for audio, video, scene, identifier in meta:
        stem = audio[len("audio/") : -len(".wav")]
        assert video == f"video/{stem}.mp4"
        name, reason = parse_tau_name(stem)
        assert reason is None and name.scene == scene and name.identifier == identifier
    info = soundfile.info(str(dev / meta[0][0]))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (
        48000,
        2,
        "PCM_24",
        96000,
    )
    (codec, pix_fmt, width, height, rate), frames = decoded_frames(dev / meta[0][1])
    assert (codec, pix_fmt, width, height, rate) == ("h264", "yuv420p", 64, 48, 5.0)
    assert frames.shape == (10, 48, 64, 3)
    options = json.loads((out / "synth.json").read_text())
    assert options["seed"] == 7 and options["audio_alike"] == [list(p) for p in AUDIO_ALIKE]


def test_ids_locations_and_folds(corpus):
    out, _ = corpus
    manifest = load_manifest(out / "development")
    assert manifest.problems == []
    names = [parse_tau_name(c.clip_id)[0] for c in manifest.clips]
    segments = [n.segment_id for n in names]
    assert len(set(segments)) == len(segments)  # unique segment ids
    owners = {}
    for n in names:  # location id -> one place
        owners.setdefault(n.location_id, set()).add((n.scene, n.city))
    assert all(len(v) == 1 for v in owners.values())
    summary = manifest.summary()
    assert summary["scenes"] == dict.fromkeys(SCENES, 3)
    assert len(summary["locations"]) == 30
    for scene in SCENES:
        clips = [c for c in manifest.clips if c.scene == scene]
        assert len({c.city for c in clips}) == 3  # several cities per class
        assert {c.folds[0] for c in clips} == {"train", "evaluate"}
    train = {c.location for c in manifest.clips if "train" in c.folds}
    evaluate = {c.location for c in manifest.clips if "evaluate" in c.folds}
    assert train and evaluate and not train & evaluate
    assert summary["folds"]["test"] == summary["folds"]["evaluate"]
    assert summary["folds"]["train"] + summary["folds"]["evaluate"] == 30


def test_evaluation_layout_and_hidden_labels(corpus):
    import soundfile

    out, result = corpus
    manifest = load_manifest(out / "evaluation")
    assert manifest.kind == "tau-evaluation" and manifest.problems == []
    assert [c.clip_id for c in manifest.clips] == [str(i) for i in range(6)]
    assert all(c.folds == ("eval",) and c.scene == "" for c in manifest.clips)
    assert soundfile.info(str(out / "evaluation" / "audio" / "0.wav")).frames == 48000
    assert decoded_frames(out / "evaluation" / "video" / "0.mp4")[1].shape[0] == 5
    header, truth = read_table(result.truth)
    assert result.truth == out / "evaluation_truth.csv"
    assert header == ["filename_audio", "filename_video", "scene_label", "identifier"]
    assert [row[0] for row in truth] == [f"audio/{i}.wav" for i in range(6)]
    assert {row[2] for row in truth} <= set(SCENES)
    dev_locations = {c.location for c in load_manifest(out / "development").clips}
    assert not {row[3] for row in truth} & dev_locations  # unseen locations


def test_same_seed_same_corpus_whatever_the_workers(corpus, tmp_path):
    import soundfile

    out, _ = corpus
    again = synth_corpus(tmp_path / "again", seed=7, workers=2, **SMALL)
    other = synth_corpus(tmp_path / "other", seed=8, workers=1, **SMALL)
    for folder in ("development", "evaluation"):
        for wav in sorted((out / folder / "audio").iterdir()):
            copy = tmp_path / "again" / folder / "audio" / wav.name
            assert wav.read_bytes() == copy.read_bytes()
        for mp4 in sorted((out / folder / "video").iterdir()):
            first = decoded_frames(mp4)[1]
            np.testing.assert_array_equal(
                first, decoded_frames(again.development.parent / folder / "video" / mp4.name)[1]
            )
    meta = (out / "development" / "meta.csv").read_text()
    assert meta == (again.development / "meta.csv").read_text()
    assert meta != (other.development / "meta.csv").read_text()
    a = soundfile.read(str(out / "evaluation" / "audio" / "0.wav"))[0]
    b = soundfile.read(str(other.evaluation / "audio" / "0.wav"))[0]
    assert not np.array_equal(a, b)


def test_existing_output_is_refused_unless_overwrite(corpus, tmp_path):
    out, _ = corpus
    (tmp_path / "development").mkdir()
    with pytest.raises(FileExistsError, match="not written by synth"):
        synth_corpus(tmp_path, clips_per_class=1, seconds=1, size=(16, 16), fps=1, workers=1)
    with pytest.raises(FileExistsError, match="exists; pass overwrite"):
        synth_corpus(out, seed=7, workers=1, **SMALL)
    small = tmp_path / "small"
    synth_corpus(
        small, clips_per_class=1, seconds=1, size=(16, 16), fps=1, workers=1, classes=["park"]
    )
    result = synth_corpus(
        small,
        clips_per_class=2,
        seconds=1,
        size=(16, 16),
        fps=1,
        workers=1,
        classes=["park", "bus"],
        overwrite=True,
    )
    assert result.clips == 4 and len(list((small / "development" / "audio").iterdir())) == 4


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(size=(63, 48)), "even"),
        (dict(seconds=0.5), "seconds"),
        (dict(classes=["park", "beach"]), "classes"),
        (dict(clips_per_class=0), "clips_per_class"),
        (dict(seed=-1), "seed"),
        (dict(clips_per_class=2, locations_per_class=3), "locations_per_class"),
    ],
)
def test_bad_options(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        synth_corpus(tmp_path, **options)
    assert not (tmp_path / "development").exists()


def test_class_design_pairs():
    """Alike pairs share a recipe up to a small delta, and no pair is alike in both modalities."""
    assert set(SCENE_AUDIO) == set(SCENES) == set(SCENE_VIDEO)
    for a, b in AUDIO_ALIKE:
        assert not {(a, b), (b, a)} & set(VIDEO_ALIKE)
        ra, rb = SCENE_AUDIO[a], SCENE_AUDIO[b]
        assert {k: v for k, v in ra.items() if k != "bands"} == {
            k: v for k, v in rb.items() if k != "bands"
        }
        assert ra["bands"][:-1] == rb["bands"][:-1]
        assert max(abs(ra["bands"][-1][2]), abs(rb["bands"][-1][2])) <= 1.5  # dB
    for a, b in VIDEO_ALIKE:
        ra, rb = SCENE_VIDEO[a], SCENE_VIDEO[b]
        assert (ra["objects"], ra["flicker"]) == (rb["objects"], rb["flicker"])
        for region_a, region_b in zip(ra["regions"], rb["regions"]):
            for key in region_a:
                difference = (
                    np.subtract(region_a[key], region_b[key])
                    if key in ("top", "bottom")
                    else region_a[key] != region_b[key]
                )
                assert np.max(np.abs(difference)) <= 8, (a, b, key)
    # these need both modalities: alike with one class in audio and another in video
    for scene in ("airport", "tram", "public_square"):
        assert any(scene in p for p in AUDIO_ALIKE) and any(scene in p for p in VIDEO_ALIKE)


def test_plan_is_balanced_and_grouped():
    dev, evaluation = plan_corpus(
        SCENES, clips_per_class=10, locations_per_class=4, eval_clips=25, seed=3
    )
    assert len(dev) == 100 and len(evaluation) == 25
    per_location = {}
    for plan in dev:
        per_location.setdefault(plan.location, set()).add((plan.scene, plan.fold))
    assert all(len(v) == 1 for v in per_location.values())
    counts = np.unique([p.scene for p in evaluation], return_counts=True)[1]
    assert counts.max() - counts.min() <= 1


# --- learnability: independent features (numpy log-mel, PyAV colour/texture) + logistic regression


def mel_filters(sr, n_fft, n_mels=64, fmin=20.0, fmax=20000.0):
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    edges = 700 * (10 ** (np.linspace(mel(fmin), mel(fmax), n_mels + 2) / 2595) - 1)
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    lo, centre, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.clip(np.minimum((freqs - lo) / (centre - lo), (hi - freqs) / (hi - centre)), 0, None)


def audio_features(path):
    """Mean log-mel (64 bands) of each second, shape (n_seconds, 64)."""
    import soundfile

    x, sr = soundfile.read(str(path))
    x = x.mean(axis=1)
    n_fft, hop = 2048, 1024
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    logmel = np.log10(
        (np.abs(np.fft.rfft(frames, axis=1)) ** 2) @ mel_filters(sr, n_fft).T + 1e-10
    )
    centres = (np.arange(len(frames)) * hop + n_fft / 2) / sr
    seconds = int(len(x) / sr + 1e-6)
    return np.array(
        [logmel[(centres >= k) & (centres < k + 1)].mean(axis=0) for k in range(seconds)]
    )


def frame_features(rgb):
    """Colour means, spreads and percentiles, saturation, gradient energy at two scales."""
    f = rgb.astype(np.float32) / 255
    grey = f.mean(axis=2)
    saturation = (f.max(axis=2) - f.min(axis=2)) / (f.max(axis=2) + 1e-3)
    h, w = grey.shape[0] // 4 * 4, grey.shape[1] // 4 * 4
    coarse = grey[:h, :w].reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3))
    gradients = [
        np.abs(np.diff(image, axis=axis)).mean() for image in (grey, coarse) for axis in (0, 1)
    ]
    return np.concatenate(
        [
            f.mean(axis=(0, 1)),
            f.std(axis=(0, 1)),
            np.percentile(f.reshape(-1, 3), [10, 90], axis=0).ravel(),
            [saturation.mean(), saturation.std()],
            gradients,
        ]
    )


def video_features(path, seconds):
    import av

    rows = [[] for _ in range(seconds)]
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            k = int(frame.time + 1e-9)
            if k < seconds:
                rows[k].append(frame_features(frame.to_ndarray(format="rgb24")))
    return np.array([np.mean(r, axis=0) for r in rows])


@pytest.mark.slow
def test_fusion_beats_each_modality_on_unseen_locations(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    synth_corpus(
        tmp_path,
        clips_per_class=20,
        seconds=2,
        size=(128, 72),
        fps=4,
        seed=1,
        locations_per_class=10,
    )
    manifest = load_manifest(tmp_path / "development")
    audio, video, labels, folds = [], [], [], []
    for clip in manifest.clips:
        a = audio_features(manifest.root / clip.audio)
        audio.append(a)
        video.append(video_features(manifest.root / clip.video, len(a)))
        labels += [clip.scene] * len(a)
        folds += [clip.folds[0]] * len(a)
    audio, video = np.concatenate(audio), np.concatenate(video)
    labels, folds = np.array(labels), np.array(folds)
    train, test = folds == "train", folds == "evaluate"  # location-grouped
    scores = {}
    for name, X in (("audio", audio), ("video", video), ("fused", np.hstack([audio, video]))):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
        model.fit(X[train], labels[train])
        scores[name] = model.score(X[test], labels[test])
    print("segment accuracy on evaluate locations:", scores)
    assert scores["fused"] >= 0.9, scores
    assert 0.5 <= scores["audio"] <= scores["fused"] - 0.1, scores
    assert 0.5 <= scores["video"] <= scores["fused"] - 0.1, scores
