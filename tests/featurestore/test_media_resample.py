"""featurestore.media.resample against resampy 0.2.2 (kaiser_best) itself, on fresh random signals."""

import warnings

import numpy as np
import pytest

from featurestore.media.resample import kaiser_best_table, resample
from tests.helpers import REFERENCE_DIR

REFERENCE = REFERENCE_DIR / "audio_stereo_44k1.npz"


@pytest.fixture(scope="module")
def resampy():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = pytest.importorskip("resampy", reason="resampy 0.2.2 (dev extra) not installed")
    if not module.version.version.startswith("0.2."):
        pytest.skip(f"need resampy 0.2.x as the reference, found {module.version.version}")
    return module


def test_rebuilt_table_equals_resampys_within_an_ulp(resampy):
    shipped = resampy.filters.load_filter("kaiser_best")
    table, num_table = kaiser_best_table()
    assert num_table == shipped[1] == 512
    assert table.shape == shipped[0].shape == (64 * 512 + 1,)
    # differences of at most 2**-52 (one float64 ulp of 1.0), in entries near zero or the peak
    assert np.abs(table - shipped[0]).max() <= 2.0**-52
    assert (table != shipped[0]).sum() < 100  # libm rounding in a few of 32,769 entries


@pytest.mark.parametrize("sr_orig", [44100, 32000, 22050, 16000, 96000, 8000, 47999])
def test_float32_bit_exact(resampy, sr_orig):
    rng = np.random.default_rng(sr_orig)
    x = (rng.standard_normal(int(sr_orig * 0.4) + rng.integers(0, 100)) * 0.3).astype(np.float32)
    expected = resampy.resample(x, sr_orig, 48000, filter="kaiser_best")
    got = resample(x, sr_orig, 48000)
    assert got.dtype == np.float32 and got.shape == (int(len(x) * 48000 / sr_orig),)
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("sr_orig,sr_new", [(44100, 48000), (96000, 48000), (48000, 22050)])
def test_float64_within_an_ulp_of_the_table(resampy, sr_orig, sr_new):
    x = np.random.default_rng(1).uniform(-1, 1, 9000)
    expected = resampy.resample(x, sr_orig, sr_new, filter="kaiser_best")
    got = resample(x, sr_orig, sr_new)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-14)


def test_axis_and_channels(resampy):
    x = np.random.default_rng(2).standard_normal((3, 5000)).astype(np.float32)
    expected = resampy.resample(x, 32000, 48000, axis=1, filter="kaiser_best")
    assert np.array_equal(resample(x, 32000, 48000, axis=1), expected)
    assert np.array_equal(resample(x.T, 32000, 48000, axis=0), expected.T)


@pytest.mark.needs_reference(REFERENCE)
def test_openl3_reference_mixdown_and_resampling_bit_exact():
    data = np.load(REFERENCE)
    mono = np.mean(data["audio"], axis=1)
    assert np.array_equal(resample(mono, int(data["sr"]), 48000), data["audio_48k_mono"])


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        resample(np.zeros(10, np.float32), 48000, 0)
    with pytest.raises(ValueError):
        resample(np.zeros(1, np.float32), 48000, 16000)
    with pytest.raises(TypeError):
        resample(np.zeros(100, np.int16), 44100, 48000)
