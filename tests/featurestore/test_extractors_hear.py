"""HEAR-API modules as features: ``--features hear:tests.hear_module`` through the command.

:mod:`tests.hear_module` is a HEAR module written for the tests (a fixed projection of 25 ms
frames at 16 kHz). Stored rows are compared with the projection computed here in NumPy on the
file read with soundfile and resampled to 16 kHz; timestamps with the module's frame centres
(``k * 10`` ms) in seconds.
"""

import contextlib
import io
import json

import numpy as np
import pytest
import soundfile

from featurestore.extractors import builtin
from featurestore.media import resample
from featurestore.provenance import sha256_file
from featurestore.store import FeatureStore
from pipelines.commands import cli
from tests import helpers

MODULE = "tests.hear_module"
NAME = "hear-" + MODULE


@pytest.fixture(scope="module")
def projection(tmp_path_factory):
    path = tmp_path_factory.mktemp("hear") / "projection.npy"
    np.save(path, np.random.default_rng().normal(size=(8, 400)).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    lines = ["audio"]
    for i, seconds in enumerate([1.0, 2.35, 1.0, 0.3]):
        rate = 44100 if i == 1 else 48000
        helpers.write_wav(root / f"a{i}.wav", helpers.noise(seconds, sr=rate, seed=i), sr=rate)
        lines.append(f"a{i}.wav")
    (root / "clips.csv").write_text("\n".join(lines) + "\n")
    return root / "clips.csv"


def expected_rows(path, projection):
    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1, dtype=np.float32)
    if rate != 48000:
        mono = resample(mono, rate, 48000)
    signal = np.concatenate([np.zeros(200), resample(mono, 48000, 16000), np.zeros(200)])
    n = 1 + (len(signal) - 400) // 160
    frames = np.stack([signal[k * 160 : k * 160 + 400] for k in range(n)])
    return frames @ np.load(projection).astype(np.float64).T, np.arange(n) * 0.01


def run(argv):
    args = cli.build_parser().parse_args([str(a) for a in argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = args.run(args)
    return status, json.loads(out.getvalue())


def test_extractor_reads_the_module_and_records_its_provenance(projection):
    extractor = builtin("hear:" + MODULE, weights={"hear:" + MODULE: projection})
    assert (extractor.name, extractor.modality, extractor.dim) == (NAME, "audio", 8)
    assert extractor.frame_rate == pytest.approx(100.0)
    params = extractor.params
    assert (params["module"], params["module_version"], params["sample_rate"]) == (
        MODULE,
        "0.3",
        16000,
    )
    assert params["weights_sha256"] == sha256_file(projection)
    assert params["dtype"] == "float32"
    assert "milliseconds" in params["timestamps"]


def test_hear_rows_through_the_command_equal_numpy(corpus, projection, tmp_path):
    store = tmp_path / "store"
    argv = [
        "extract",
        corpus,
        store,
        "--features",
        f"hear:{MODULE},logmel",
        "--weights",
        f"hear:{MODULE}={projection}",
        "--device",
        "cpu",
        "--workers",
        "1",
        "--json",
        "--progress",
        "log",
    ]
    status, summary = run(argv)
    assert status == 0 and summary["features"] == [NAME, "logmel"]
    assert summary["params"][NAME]["weights_sha256"] == sha256_file(projection)
    with FeatureStore.open(store, mode="r") as opened:
        for i in range(4):
            values, stamps = opened.frames(NAME, f"a{i}")
            expected, expected_stamps = expected_rows(corpus.parent / f"a{i}.wav", projection)
            np.testing.assert_allclose(stamps, expected_stamps, atol=1e-9)
            np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-4)
    status, again = run(argv)  # resume: nothing left to do
    assert status == 0 and again["done"] == 0


def test_unknown_module_is_bad_usage(corpus, tmp_path, capsys):
    status = cli.main(
        [
            "extract",
            str(corpus),
            str(tmp_path / "s"),
            "--features",
            "hear:no_such_hear_module",
            "--device",
            "cpu",
        ]
    )
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hear:no_such_hear_module: cannot import the module" in err[0]
