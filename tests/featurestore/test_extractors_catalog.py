"""The extractor catalog: built-in entries, and extractors of installed packages found through
the entry point group ``avscene.extractors``.

Each installed package here is real for ``importlib.metadata``: a package and a
``*.dist-info`` folder (``METADATA``, ``entry_points.txt``) written into ``tmp_path`` and put
on ``sys.path``. The working plugin computes a per-window RMS and peak of the audio; its stored
rows are compared with the same numbers computed from the files in
``test_extractors_interface.py``.
"""

import contextlib
import io
import json
import sys
import textwrap
from importlib import metadata

import numpy as np
import pytest

from featurestore.errors import UsageError
from featurestore.extraction import Plan, plan_extractors
from featurestore.extractors import CATALOG, builtin, check_name, names, official_file, plugins
from featurestore.store import FeatureStore
from pipelines.commands import cli
from tests import helpers
from tests.featurestore.test_extractors_interface import HOP, expected_rms

PLUGIN = """
import functools
import numpy as np
from featurestore.extractors import AUDIO, Extractor, FeatureInput, frame_windows

RATE, WINDOW = 16000, 0.5

def prepare(audio, clip, *, hop):
    windows, stamps = frame_windows(audio.at(RATE), RATE, window_seconds=WINDOW,
                                    hop_seconds=hop, center=True)
    return FeatureInput(windows, np.ones(len(stamps), np.int64), stamps)

def load(*, device, batch):
    def embed(slices):
        x = np.concatenate([np.asarray(s) for s in slices]).astype(np.float64)
        return np.stack([np.sqrt(np.mean(x ** 2, axis=1)), np.abs(x).max(axis=1)], axis=1)
    return embed

def rms_peak(name, *, weights=None, hop=0.1, **options):
    return Extractor(name=name, modality=AUDIO, frame_rate=1 / hop,
                     timestamps="window centre j*hop", dim=2,
                     params={"rate": RATE, "window": WINDOW, "hop": hop, "stat": "rms,peak"},
                     prepare=functools.partial(prepare, hop=hop), load=load,
                     info={"weights": weights})
"""


def install(tmp_path, monkeypatch, distribution, entry_points, module=None):
    """Install ``distribution`` 0.1 into a fresh folder on sys.path: the package of the same
    name with ``module`` as its ``__init__.py``, and entry points ``name -> object``."""
    site = tmp_path / f"site-{distribution}"
    info = site / f"{distribution}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
    lines = [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("[avscene.extractors]\n" + "\n".join(lines) + "\n")
    if module is not None:
        (site / distribution).mkdir()
        (site / distribution / "__init__.py").write_text(textwrap.dedent(module))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, distribution, raising=False)
    return site


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng()
    lines = ["audio"]
    for i, seconds in enumerate([1.0, 2.3, 0.7]):
        helpers.write_wav(
            root / f"a{i}.wav", helpers.noise(seconds, sr=48000, seed=int(rng.integers(1 << 30)))
        )
        lines.append(f"a{i}.wav")
    (root / "clips.csv").write_text("\n".join(lines) + "\n")
    return root / "clips.csv"


def main(argv):
    """``avscene ARGV`` in this process: (exit status, stdout, stderr lines)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main([str(a) for a in argv])
        except SystemExit as exited:
            status = exited.code
    return status, out.getvalue(), err.getvalue().strip().splitlines()


# -- the built-in entries ------------------------------------------------------------------------


def test_each_builtin_entry_states_its_extractors_modality_and_weight_file(corpus):
    names_ = (
        "openl3_audio",
        "openl3_video",
        "logmel",
        "efficientnet_b0",
        "hear:tests.hear_module",
    )
    for name, extractor in zip(names_, plan_extractors(Plan(features=names_), random_weights=3)):
        known = CATALOG.get(name)
        modality = "audio" if known is None else known.modality
        assert extractor.modality == modality, name
        weights = extractor.info.get("weights_path")
        if known is not None and known.official_file is not None:
            assert weights.endswith("/" + known.official_file), name
    assert official_file("resnet50") == "resnet50-11ad3fa6.pth"
    assert official_file("panns_cnn14") == "Cnn14_mAP=0.431.pth"
    assert official_file("logmel") is None


def test_an_unknown_name_is_one_line_naming_the_choices():
    for call in (check_name, official_file, builtin):
        with pytest.raises(UsageError) as raised:
            call("resnet51")
        message = str(raised.value)
        assert "\n" not in message and message.startswith("unknown feature 'resnet51'")
        assert "resnet50" in message and "panns_cnn14" in message and "hear:<module>" in message


# -- an installed plugin -------------------------------------------------------------------------


def test_an_installed_extractor_runs_through_avscene_extract(corpus, tmp_path, monkeypatch):
    install(tmp_path, monkeypatch, "avsplugin_rms", {"rms_peak": "avsplugin_rms:rms_peak"}, PLUGIN)
    store = tmp_path / "s.zarr"
    status, out, err = main(
        [
            "extract",
            corpus,
            store,
            "--features",
            "rms_peak,logmel",
            "--hop",
            HOP,
            "--workers",
            1,
            "--device",
            "cpu",
            "--progress",
            "log",
            "--json",
        ]
    )
    assert status == 0, err
    summary = json.loads(out)
    assert summary["features"] == ["rms_peak", "logmel"] and summary["done"] == 3
    with FeatureStore.open(store, mode="r") as opened:
        params = opened.feature_params("rms_peak")
        assert params == {
            "rate": 16000,
            "window": 0.5,
            "hop": HOP,
            "stat": "rms,peak",
            "plugin": {
                "distribution": "avsplugin_rms",
                "version": "0.1",
                "entry_point": "rms_peak = avsplugin_rms:rms_peak",
            },
        }
        for i in range(3):
            values, stamps = expected_rms(corpus.parent / f"a{i}.wav")
            got, got_stamps = opened.frames("rms_peak", f"a{i}")
            np.testing.assert_allclose(got_stamps, stamps, atol=1e-12)
            np.testing.assert_allclose(got, values, rtol=1e-5, atol=1e-6)
    status, out, err = main(["info", store, "--json"])
    assert status == 0 and "avsplugin_rms" in json.dumps(json.loads(out)), err


def test_plugins_are_read_for_a_listing_or_an_unknown_name_and_imported_when_built(
    tmp_path, monkeypatch
):
    install(
        tmp_path, monkeypatch, "avsplugin_lazy", {"rms_lazy": "avsplugin_lazy:rms_peak"}, PLUGIN
    )
    real = metadata.entry_points
    reads = []

    def counted(**kwargs):
        reads.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(metadata, "entry_points", counted)
    parser = cli.build_parser()
    parser.parse_args(
        [
            "extract",
            "r",
            "s",
            "--features",
            "openl3_audio,resnet50,hear:x.y",
            "--weights",
            "/w,resnet50=/w/r.pth",
        ]
    )
    assert reads == []  # building the parser, built-in names: nothing read
    args = parser.parse_args(
        ["extract", "r", "s", "--features", "rms_lazy,logmel", "--weights", "rms_lazy=/w/p.bin"]
    )
    assert args.features == ("rms_lazy", "logmel") and args.weights == {"rms_lazy": "/w/p.bin"}
    assert reads and "avsplugin_lazy" not in sys.modules
    status, out, _ = main(["extract", "--help"])
    assert status == 0 and "rms_lazy" in " ".join(out.split())
    assert "rms_lazy" in names() and "avsplugin_lazy" not in sys.modules
    extractor = builtin("rms_lazy", weights=args.weights, hop=0.5)
    assert "avsplugin_lazy" in sys.modules
    assert extractor.info == {"weights": "/w/p.bin"} and extractor.params["hop"] == 0.5


# -- refusals ----------------------------------------------------------------------------------


def test_a_plugin_taking_a_builtin_name_is_refused(corpus, tmp_path, monkeypatch):
    install(
        tmp_path,
        monkeypatch,
        "avsplugin_clash",
        {"openl3_audio": "avsplugin_clash:rms_peak", "rms_clash": "avsplugin_clash:rms_peak"},
        PLUGIN,
    )
    with pytest.raises(
        UsageError,
        match="distribution avsplugin_clash 0.1: its "
        "avscene.extractors entry point 'openl3_audio' takes a "
        "built-in feature name; avscene refuses it",
    ):
        plugins()
    status, _, err = main(["extract", corpus, tmp_path / "s", "--features", "rms_clash"])
    assert status == 2 and err[0].startswith("usage: avscene extract")  # argparse's usage
    assert err[-1].startswith(
        "avscene extract: error: argument --features: distribution "
        "avsplugin_clash 0.1: its avscene.extractors entry point "
        "'openl3_audio' takes a built-in"
    )
    assert not (tmp_path / "s").exists() and "avsplugin_clash" not in sys.modules
    status, out, _ = main(["extract", "--help"])
    assert status == 0 and "installed ones refused" in out
    assert builtin("logmel").name == "logmel"  # built-in names never read the plugins


@pytest.mark.parametrize(
    "names_, fragment",
    [
        ({"hear-mod": "avsplugin_reserved:rms_peak"}, "'hear-mod' takes a built-in feature name"),
        (
            {"bad/name": "avsplugin_reserved:rms_peak"},
            "entry point: feature name 'bad/name' must be",
        ),
    ],
)
def test_a_plugin_name_that_cannot_be_a_feature_is_refused(
    tmp_path, monkeypatch, names_, fragment
):
    install(tmp_path, monkeypatch, "avsplugin_reserved", names_, PLUGIN)
    with pytest.raises(UsageError) as raised:
        check_name("anything")
    assert "\n" not in str(raised.value)
    assert str(raised.value).startswith("distribution avsplugin_reserved 0.1: ")
    assert fragment in str(raised.value)


def test_two_distributions_declaring_one_name_are_refused(tmp_path, monkeypatch):
    install(
        tmp_path, monkeypatch, "avsplugin_one", {"rms_twice": "avsplugin_one:rms_peak"}, PLUGIN
    )
    install(
        tmp_path, monkeypatch, "avsplugin_two", {"rms_twice": "avsplugin_two:rms_peak"}, PLUGIN
    )
    with pytest.raises(
        UsageError,
        match="avsplugin_(one|two) 0.1 and distribution "
        "avsplugin_(one|two) 0.1 both declare the extractor "
        "'rms_twice'",
    ):
        check_name("rms_twice")


BROKEN = {
    "import": (
        "avsplugin_broken:rms_peak",
        "import numpy\nraise ImportError('no module named torchaudio')\n",
        "cannot import avsplugin_broken:rms_peak (ImportError: no module named torchaudio)",
    ),
    "missing": (
        "avsplugin_broken.absent:rms_peak",
        "",
        "cannot import avsplugin_broken.absent:rms_peak (ModuleNotFoundError: No module "
        "named 'avsplugin_broken.absent')",
    ),
    "not_callable": (
        "avsplugin_broken:rms_peak",
        "rms_peak = 42\n",
        "avsplugin_broken:rms_peak is not callable (a value of type int)",
    ),
    "wrong_type": (
        "avsplugin_broken:rms_peak",
        "def rms_peak(name, **options):\n    return {'name': name}\n",
        "avsplugin_broken:rms_peak returned a value of type dict, not a "
        "featurestore.extractors.Extractor",
    ),
    "wrong_name": (
        "avsplugin_broken:other",
        PLUGIN + "def other(name, **options):\n    return rms_peak('rms', **options)\n",
        "avsplugin_broken:other returned an extractor named 'rms'; it must be named 'rms_broken'",
    ),
    "raises": (
        "avsplugin_broken:rms_peak",
        "def rms_peak(name, *, weights):\n    return None\n",
        "avsplugin_broken:rms_peak failed (TypeError: rms_peak() got an unexpected "
        "keyword argument",
    ),
    "own_plugin_key": (
        "avsplugin_broken:other",
        PLUGIN + "import dataclasses\n"
        "def other(name, **options):\n"
        "    made = rms_peak(name, **options)\n"
        "    return dataclasses.replace(made, params={'plugin': 'mine'})\n",
        "its params hold the key 'plugin', which avscene fills in",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_plugin_is_one_line_naming_its_distribution(corpus, tmp_path, monkeypatch, case):
    target, module, fragment = BROKEN[case]
    install(tmp_path, monkeypatch, "avsplugin_broken", {"rms_broken": target}, module)
    monkeypatch.delitem(sys.modules, "avsplugin_broken.absent", raising=False)
    status, _, err = main(
        [
            "extract",
            corpus,
            tmp_path / "s",
            "--features",
            "rms_broken",
            "--workers",
            0,
            "--device",
            "cpu",
        ]
    )
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(
        "avscene extract: error: extractor 'rms_broken' of distribution avsplugin_broken 0.1: "
    )
    assert fragment in err[0]
    assert not (tmp_path / "s").exists()
