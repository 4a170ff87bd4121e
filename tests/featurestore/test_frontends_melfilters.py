"""Slaney mel filterbank: bit-equal to librosa's (via the kapre reference matrix) and to an
independent float64 construction for other parameters."""

import numpy as np
import pytest

from featurestore.frontends.melfilters import hz_to_mel, mel_filterbank, mel_to_hz
from tests.helpers import REFERENCE_DIR

REFERENCE = REFERENCE_DIR / "kapre_mel_filterbank.npz"


@pytest.mark.needs_reference(REFERENCE)
def test_equals_librosa_matrix_bit_for_bit():
    expected = np.load(REFERENCE)["mel_filterbank"]  # librosa 0.10.2, (1025, 256)
    weights = mel_filterbank(sr=48000, n_fft=2048, n_mels=256, fmin=0.0, fmax=None)
    assert weights.dtype == np.float32 and weights.shape == (1025, 256)
    assert np.array_equal(weights, expected)


def slaney_mel(hz):
    """Slaney's scale written independently: 3 mel per 200 Hz below 1 kHz, log above."""
    hz = np.asarray(hz, dtype=np.float64)
    return np.where(
        hz < 1000, 3 * hz / 200, 15 + 27 * np.log(np.maximum(hz, 1e-9) / 1000) / np.log(6.4)
    )


def independent_filterbank(sr, n_fft, n_mels, fmin, fmax):
    """Triangles in Hz between mel-spaced edges, each scaled to unit area x 2 / width."""
    mels = np.linspace(slaney_mel(fmin), slaney_mel(fmax), n_mels + 2)
    edges = np.where(mels < 15, 200 * mels / 3, 1000 * 6.4 ** ((mels - 15) / 27))
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    out = np.zeros((len(freqs), n_mels))
    for band in range(n_mels):
        left, centre, right = edges[band : band + 3]
        rise = (freqs - left) / (centre - left)
        fall = (right - freqs) / (right - centre)
        out[:, band] = np.clip(np.minimum(rise, fall), 0, None) * 2 / (right - left)
    return out


@pytest.mark.parametrize(
    "sr,n_fft,n_mels,fmin,fmax",
    [
        (48000, 2048, 128, 0.0, None),
        (44100, 1024, 64, 50.0, 14000.0),
        (16000, 512, 40, 0.0, 8000.0),
        (22050, 2048, 96, 300.0, None),
    ],
)
def test_matches_independent_construction(sr, n_fft, n_mels, fmin, fmax):
    weights = mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    expected = independent_filterbank(sr, n_fft, n_mels, fmin, fmax or sr / 2)
    assert weights.shape == (n_fft // 2 + 1, n_mels) and weights.dtype == np.float32
    np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-6 * expected.max())


def test_scale_round_trip_and_known_points():
    hz = np.array([0.0, 100.0, 999.0, 1000.0, 1001.0, 8000.0, 24000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, rtol=1e-12)
    np.testing.assert_allclose(hz_to_mel([200.0 / 3, 1000.0]), [1.0, 15.0])
    np.testing.assert_allclose(hz_to_mel(hz), slaney_mel(hz), rtol=1e-12)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        mel_filterbank(sr=0, n_fft=512, n_mels=10)
