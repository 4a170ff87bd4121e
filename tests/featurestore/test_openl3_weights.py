"""OpenL3 weight files: order by layer_names/weight_names only, bytes or str attributes, shape
checks, finding real weights, random weights that say so."""

import json
import logging

import h5py
import numpy as np
import pytest

from featurestore import openl3
from featurestore.errors import WeightsFormatError, WeightsNotFoundError
from featurestore.openl3 import architecture as arch
from featurestore.openl3 import weights as wf
from featurestore.provenance import sha256_file
from tests.helpers import REFERENCE_DIR, renumbered_copy

REFERENCE = REFERENCE_DIR
needs_reference = pytest.mark.needs_reference(REFERENCE)


@pytest.fixture(scope="module")
def random_audio_file(tmp_path_factory):
    return openl3.random_weights_file(
        tmp_path_factory.mktemp("w") / "random_audio.h5", kind="audio", seed=5
    )


@pytest.mark.parametrize(
    "first_suffix,text,top",
    [(0, "str", True), (8, "bytes", False), (8, "str", True), (0, "bytes", False)],
)
def test_layer_order_comes_from_layer_names(random_audio_file, tmp_path, first_suffix, text, top):
    original, _ = wf.load_weights(random_audio_file, "audio")
    copy = renumbered_copy(
        random_audio_file,
        tmp_path / "copy.h5",
        first_suffix=first_suffix,
        text=text,
        top_level_group=top,
    )
    if first_suffix == 8:  # h5py's alphabetical order really is wrong for this file
        with h5py.File(copy, "r") as handle:
            assert [k for k in handle if k.startswith("conv2d")][:2] == ["conv2d_10", "conv2d_11"]
    loaded, _ = wf.load_weights(copy, "audio")
    assert len(loaded) == len(original) == 16
    for got, want in zip(loaded, original):
        assert all(np.array_equal(g, w) for g, w in zip(got, want))


@needs_reference
def test_written_layout_matches_the_official_files(random_audio_file):
    with (
        h5py.File(REFERENCE / "openl3_audio_mel256_env.h5", "r") as ref,
        h5py.File(random_audio_file, "r") as ours,
    ):
        assert list(ref.attrs["layer_names"]) == list(ours.attrs["layer_names"])
        for name in ref.attrs["layer_names"]:
            name = name.decode()
            assert list(ref[name].attrs["weight_names"]) == list(ours[name].attrs["weight_names"])


@needs_reference
def test_layer_names_generator_matches_reference_files():
    for kind in arch.KINDS:
        with h5py.File(REFERENCE / f"openl3_{kind}_mel256_env.h5", "r") as ref:
            names = [n.decode() for n in ref.attrs["layer_names"]]
        assert arch.keras_layer_names(kind) == names


def test_shape_errors_name_file_and_layer(random_audio_file, tmp_path):
    arrays, _ = wf.load_weights(random_audio_file, "audio")
    arrays[5][0] = arrays[5][0][:, :, :, :100]  # conv2d_3's kernel, 128 -> 100 outputs
    bad = wf.write_keras_weights(tmp_path / "bad.h5", "audio", arrays)
    with pytest.raises(WeightsFormatError, match=r"bad\.h5.*'conv2d_3'.*\(3, 3, 64, 100\)"):
        wf.load_weights(bad, "audio")


def test_wrong_network_count_and_garbage(random_audio_file, tmp_path):
    with pytest.raises(WeightsFormatError, match="audio weight file, not the image"):
        wf.load_weights(random_audio_file, "image")
    with h5py.File(random_audio_file, "r") as src, h5py.File(tmp_path / "short.h5", "w") as dst:
        names = list(src.attrs["layer_names"])[:-1]  # drop the embedding layer
        dst.attrs["layer_names"] = np.array(names)
        for name in names:
            src.copy(src[name.decode()], dst, name.decode())
    with pytest.raises(WeightsFormatError, match="15 layers with weights"):
        wf.load_weights(tmp_path / "short.h5", "audio")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(WeightsFormatError, match="junk.h5"):
        wf.load_weights(tmp_path / "junk.h5", "audio")
    with h5py.File(tmp_path / "nolayers.h5", "w"):
        pass
    with pytest.raises(WeightsFormatError, match="layer_names"):
        wf.load_weights(tmp_path / "nolayers.h5", "audio")


def test_random_weights_are_labelled(random_audio_file, caplog):
    with caplog.at_level(logging.WARNING):
        model = openl3.load_audio_model(
            random_audio_file, input_repr="mel128", embedding_size=6144
        )
    assert "RANDOM" in caplog.text and "meaningless" in caplog.text
    prov = model.provenance
    assert prov["random_weights"] == 5
    assert prov["weights_sha256"] == sha256_file(random_audio_file)
    assert (prov["input_repr"], prov["content_type"], prov["embedding_size"]) == (
        "mel128",
        "env",
        6144,
    )
    assert json.loads(json.dumps(prov)) == prov


@needs_reference
def test_real_weights_are_not_labelled_random():
    model = openl3.load_audio_model(REFERENCE / "openl3_audio_mel256_env.h5")
    assert model.provenance["random_weights"] is None
    assert model.provenance["input_repr"] == "mel256"  # from the file name
    assert model.provenance["content_type"] == "env"


def test_input_repr_from_random_file_and_conflicts(tmp_path):
    path = openl3.random_weights_file(tmp_path / "w.h5", kind="audio", input_repr="linear", seed=1)
    assert openl3.load_audio_model(path).input_repr == "linear"
    with pytest.raises(WeightsFormatError, match="input_repr='linear'"):
        openl3.load_audio_model(path, input_repr="mel256")
    named = tmp_path / "openl3_audio_mel128_music.h5"
    openl3.random_weights_file(named, kind="audio", seed=1)
    model = openl3.load_audio_model(named)
    assert (model.input_repr, model.content_type) == ("mel128", "music")
    with pytest.raises(WeightsFormatError, match="content_type"):
        openl3.load_audio_model(named, content_type="env")
    with pytest.raises(ValueError):
        openl3.load_audio_model(named, embedding_size=8192)


def _clean_env(monkeypatch):
    monkeypatch.delenv(wf.ENV_VAR, raising=False)
    monkeypatch.setattr(wf.importlib.util, "find_spec", lambda name: None)


def test_find_explicit_file_directory_and_env(tmp_path, monkeypatch):
    _clean_env(monkeypatch)
    target = openl3.random_weights_file(tmp_path / "openl3_image_mel256_env.h5", kind="image")
    assert openl3.find_weights("image", weights=target) == target
    assert openl3.find_weights("image", weights=tmp_path) == target
    monkeypatch.setenv(wf.ENV_VAR, str(tmp_path))
    assert openl3.find_weights("image") == target
    model = openl3.load_image_model(None)
    assert model.provenance["weights_path"] == str(target)


def test_find_in_installed_openl3_package(tmp_path, monkeypatch):
    monkeypatch.delenv(wf.ENV_VAR, raising=False)
    package = tmp_path / "site" / "openl3"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    target = openl3.random_weights_file(package / "openl3_audio_mel256_env.h5", kind="audio")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert openl3.find_weights("audio") == target


def test_not_found_says_where_and_how(tmp_path, monkeypatch):
    _clean_env(monkeypatch)
    with pytest.raises(WeightsNotFoundError) as info:
        openl3.load_audio_model(None, input_repr="mel128", content_type="music")
    message = str(info.value)
    assert "\n" not in message
    for part in (
        "openl3_audio_mel128_music.h5",
        wf.ENV_VAR,
        "pip install openl3",
        "github.com/marl/openl3",
    ):
        assert part in message
    with pytest.raises(WeightsNotFoundError, match="nowhere"):
        openl3.load_audio_model(tmp_path / "nowhere.h5")
    with pytest.raises(FileNotFoundError):  # also the built-in class
        openl3.find_weights("audio", weights=tmp_path)
