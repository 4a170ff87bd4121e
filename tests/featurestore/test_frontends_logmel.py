"""Log-mel in torch against an independent float64 NumPy/SciPy computation on fresh random audio."""

import json

import numpy as np
import pytest
import scipy.signal

from featurestore.frontends import logmel, mel_filterbank


def numpy_logmel(samples, *, sr, n_mels, n_fft, win_length, hop_length, amin=1e-10):
    """Float64 reference: centred zero-padded frames, periodic Hann, |rfft|^2, Slaney mel, dB."""
    x = np.asarray(samples, dtype=np.float64)
    x = x.mean(axis=1) if x.ndim == 2 else x
    window = np.zeros(n_fft)
    left = (n_fft - win_length) // 2
    window[left : left + win_length] = scipy.signal.get_window("hann", win_length, fftbins=True)
    padded = np.pad(x, n_fft // 2)
    n_frames = 1 + len(x) // hop_length
    frames = np.stack([padded[k * hop_length : k * hop_length + n_fft] for k in range(n_frames)])
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel = power @ mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float64)
    return 10 * np.log10(np.maximum(mel, amin)), np.arange(n_frames) * hop_length / sr


def random_clips(rng):
    return [
        rng.uniform(-0.5, 0.5, (48000, 2)).astype(np.float32),  # 1 s stereo
        rng.normal(0, 0.1, 17761).astype(np.float32),  # 0.37 s mono, odd length
        np.concatenate([np.zeros(9600), rng.uniform(-1, 1, 4800)])[:, None].astype(np.float32),
        rng.uniform(-0.2, 0.2, 300).astype(np.float32),  # shorter than n_fft / 2
    ]


def check_against_numpy(out, clips, params):
    for (values, stamps), clip in zip(out, clips):
        ref, ref_stamps = numpy_logmel(
            clip,
            sr=params["sample_rate"],
            n_mels=params["n_mels"],
            n_fft=params["n_fft"],
            win_length=params["win_length"],
            hop_length=params["hop_length"],
            amin=params["amin"],
        )
        assert values.dtype == np.float32 and values.shape == ref.shape
        assert stamps.dtype == np.float64
        np.testing.assert_allclose(stamps, ref_stamps, rtol=0, atol=1e-12)
        loud = ref > -60  # float32 rounding dominates near the floor; 1e-4 dB above (seen 1e-5)
        np.testing.assert_allclose(values[loud], ref[loud], atol=1e-4, rtol=0)
        np.testing.assert_allclose(values, ref, atol=1e-2, rtol=0)


def test_defaults_match_numpy_and_batching_changes_nothing():
    rng = np.random.default_rng()
    clips = random_clips(rng)
    params = logmel.logmel_params()
    assert (params["n_mels"], params["win_length"], params["n_fft"], params["hop_length"]) == (
        128,
        1920,
        1920,
        480,
    )
    batched = logmel.logmel(clips, params)
    check_against_numpy(batched, clips, params)
    for clip, (values, stamps) in zip(clips, batched):
        alone, alone_stamps = logmel.logmel([clip], params)[0]
        np.testing.assert_array_equal(alone_stamps, stamps)
        np.testing.assert_allclose(alone, values, atol=1e-4, rtol=0)


def test_silence_sits_on_the_floor():
    values, _ = logmel.logmel([np.zeros(4800, np.float32)])[0]
    np.testing.assert_array_equal(values, -100.0)


@pytest.mark.parametrize(
    "options",
    [
        dict(n_mels=64, win_length=1024, n_fft=2048, hop_length=320),
        dict(sample_rate=16000, n_mels=40, win_length=400, hop_length=160, fmin=20.0, fmax=7600.0),
    ],
)
def test_other_parameters_match_numpy(options):
    rng = np.random.default_rng()
    params = logmel.logmel_params(**options)
    clips = [
        rng.uniform(-0.5, 0.5, (params["sample_rate"] // 2, 2)).astype(np.float32),
        rng.uniform(-0.5, 0.5, 7001).astype(np.float32),
    ]
    out = logmel.logmel(clips, params)
    for (values, stamps), clip in zip(out, clips):
        mono = clip.mean(axis=1) if clip.ndim == 2 else clip
        fbank = mel_filterbank(
            sr=params["sample_rate"],
            n_fft=params["n_fft"],
            n_mels=params["n_mels"],
            fmin=params["fmin"],
            fmax=params["fmax"],
        )
        window = np.zeros(params["n_fft"])
        left = (params["n_fft"] - params["win_length"]) // 2
        window[left : left + params["win_length"]] = scipy.signal.get_window(
            "hann", params["win_length"], fftbins=True
        )
        padded = np.pad(mono.astype(np.float64), params["n_fft"] // 2)
        hop = params["hop_length"]
        frames = np.stack(
            [padded[k * hop : k * hop + params["n_fft"]] for k in range(1 + len(mono) // hop)]
        )
        ref = 10 * np.log10(np.maximum(np.abs(np.fft.rfft(frames * window)) ** 2 @ fbank, 1e-10))
        loud = ref > -60
        np.testing.assert_allclose(values[loud], ref[loud], atol=1e-4, rtol=0)
        np.testing.assert_allclose(stamps, np.arange(len(ref)) * hop / params["sample_rate"])


def test_frame_counts_and_timestamps_follow_the_clock():
    params = logmel.logmel_params()
    assert logmel.frame_count(480000, params) == 1001
    assert logmel.frame_count(480001, params) == 1001
    assert logmel.frame_count(48000, params) == 101
    stamps = logmel.frame_timestamps(480000, params)
    assert stamps[0] == 0.0 and stamps[-1] == pytest.approx(10.0) and np.all(np.diff(stamps) > 0)


def test_params_are_json_and_validated():
    params = logmel.logmel_params(n_mels=64)
    assert json.loads(json.dumps(params)) == params
    assert params["fmax"] == 24000.0 and params["amin"] == 1e-10
    with pytest.raises(ValueError):
        logmel.logmel_params(win_length=4096, n_fft=2048)
    with pytest.raises(ValueError):
        logmel.logmel_params(hop_length=0)
