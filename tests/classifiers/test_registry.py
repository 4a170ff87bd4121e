"""The model registry: one class and one registration make a model of ``avscene train --model``.

A nearest-centroid classifier written here is registered in-process and goes through the
command line exactly as the built-in models do (train, the run directory's data files, evaluate,
predict); registrations that lack a preset or a fitted-attribute declaration fail when made,
in one line; a model file may name only registered classes and hold only declared kinds.
"""

import csv
import json

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from classifiers import presets, registry, systems
from classifiers.linear import softmax
from classifiers.persistence import ESTIMATORS, dump_estimator, load_estimator
from featurestore.errors import ModelFormatError
from featurestore.store import FeatureStore
from pipelines.commands import cli
from tests.pipelines.test_train import build_store

pytestmark = pytest.mark.usefixtures("single_thread")

FEATURES = ["openl3_audio", "openl3_video"]


class CentroidClassifier(ClassifierMixin, BaseEstimator):
    """Class probabilities from the squared distances to the class means of the training rows."""

    def __init__(self, *, scale=1.0, random_state=None, n_jobs=None):
        self.scale = scale
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X, y, *, groups=None, eval_set=None):
        X = np.asarray(X, dtype=np.float64)
        self.classes_, index = np.unique(np.asarray(y), return_inverse=True)
        self.centroids_ = np.stack([X[index == k].mean(axis=0) for k in range(len(self.classes_))])
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X):
        return centroid_proba(np.asarray(X, dtype=np.float64), self.centroids_, self.scale)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def centroid_proba(X, centroids, scale):
    distances = ((X[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return softmax(-scale * distances)


SETTINGS = {
    "fast": {"scale": 0.5},
    "default": {"scale": 0.5},
    "small": {"scale": 0.2},
    "paper": {"scale": 0.1},
    "dcase2021": None,
}


@pytest.fixture
def centroid():
    """The centroid model registered for one test (and removed after it)."""
    yield registry.register(
        "centroid",
        estimator=CentroidClassifier,
        presets=SETTINGS,
        fitted={"classes_": "array", "centroids_": "array", "n_features_in_": "json"},
    )
    registry.MODELS.pop("centroid", None)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("store") / "features.zarr")[0]


def read_output(path):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    return rows[0], rows[1:]


def test_a_registered_model_trains_saves_loads_and_predicts_through_the_cli(
    centroid, store_path, tmp_path, capsys
):
    run_dir, output = tmp_path / "run", tmp_path / "evaluate.csv"
    assert (
        cli.main(
            [
                "train",
                str(store_path),
                "--features",
                ",".join(FEATURES),
                "--model",
                "centroid",
                "--fusion",
                "early",
                "--preset",
                "small",
                "--no-temperature",
                "--out",
                str(run_dir),
            ]
        )
        == 0
    )
    record = json.loads((run_dir / "run.json").read_text())
    assert record["system"]["models"] == dict.fromkeys(FEATURES, "centroid")
    tree = json.loads((run_dir / "model.json").read_text())["estimator"]
    assert tree["class"] == "CentroidClassifier" and tree["params"]["scale"] == 0.2
    assert tree["fitted"]["centroids_"] == {"array": "m.centroids_"}
    with np.load(run_dir / "model.npz", allow_pickle=False) as arrays:
        centroids, classes = arrays["m.centroids_"], arrays["m.classes_"]

    with open(run_dir / "split.csv", newline="") as handle:
        training = {row["clip_id"] for row in csv.DictReader(handle) if row["role"] == "train"}
    with FeatureStore.open(store_path, mode="r") as store:
        fold = store.segments(FEATURES, selection=store.select(fold="train"))
        test = store.segments(FEATURES, selection=store.select(fold="evaluate"))
        X, scenes = fold.X(FEATURES).astype(np.float64), np.asarray(fold.y).astype(str)
        rows = np.isin(np.asarray(fold.clip_id).astype(str), list(training))
        expected = np.stack([X[rows & (scenes == c)].mean(axis=0) for c in classes])
        np.testing.assert_allclose(centroids, expected, rtol=1e-10)
        X_test = test.X(FEATURES).astype(np.float64)

    assert (
        cli.main(
            ["predict", str(run_dir), str(store_path), "--fold", "evaluate", "--out", str(output)]
        )
        == 0
    )
    header, predicted = read_output(output)
    proba = np.array([[float(value) for value in row[2:]] for row in predicted])
    columns = [header.index(c) - 2 for c in classes.astype(str)]
    np.testing.assert_allclose(
        proba[:, columns], centroid_proba(X_test, centroids, 0.2), atol=1e-12
    )
    capsys.readouterr()
    assert cli.main(["evaluate", str(run_dir), str(store_path), "--bootstrap", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["segment"]["accuracy"] > 0.5


def test_a_registered_model_serves_in_fusions_and_in_the_help(
    centroid, store_path, tmp_path, capsys
):
    run_dir = tmp_path / "late"
    assert (
        cli.main(
            [
                "train",
                str(store_path),
                "--features",
                ",".join(FEATURES),
                "--model",
                "audio=centroid,video=lr",
                "--fusion",
                "weighted",
                "--preset",
                "fast",
                "--out",
                str(run_dir),
            ]
        )
        == 0
    )
    assert cli.main(["evaluate", str(run_dir), str(store_path), "--bootstrap", "0"]) == 0
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "lr, mlp, lgbm, baseline, centroid" in " ".join(capsys.readouterr().out.split())
    assert presets.get_preset("small")["centroid"] == {"scale": 0.2}
    assert "centroid" not in presets.get_preset("dcase2021")


def test_an_unregistered_model_cannot_be_trained_nor_loaded(
    centroid, store_path, tmp_path, capsys
):
    run_dir = tmp_path / "run"
    options = [
        "train",
        str(store_path),
        "--features",
        "openl3_audio",
        "--model",
        "centroid",
        "--preset",
        "fast",
        "--out",
        str(run_dir),
    ]
    assert cli.main(options) == 0
    registry.MODELS.pop("centroid")
    capsys.readouterr()
    assert cli.main(["evaluate", str(run_dir), str(store_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert "unknown estimator class 'CentroidClassifier'" in error
    assert len(error.splitlines()) == 1
    assert cli.main([*options[:-1], str(tmp_path / "again")]) == 2
    error = capsys.readouterr().err.strip()
    assert "unknown model 'centroid'; choose from lr, mlp, lgbm, baseline" in error
    assert len(error.splitlines()) == 1


def register_centroid(**changes):
    entry = {
        "estimator": CentroidClassifier,
        "presets": SETTINGS,
        "fitted": {"classes_": "array", "centroids_": "array", "n_features_in_": "json"},
        **changes,
    }
    return registry.register("centroid", **entry)


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"presets": {k: v for k, v in SETTINGS.items() if k != "paper"}},
            "model 'centroid' gives no settings for preset 'paper' (every model gives each of fast, "
            "default, small, paper, dcase2021 a dict, or None where the preset does not train it)",
        ),
        (
            {"presets": {**SETTINGS, "quick": {}}},
            "model 'centroid' gives settings for unknown preset 'quick'",
        ),
        (
            {"presets": {**SETTINGS, "fast": 0.5}},
            "model 'centroid' gives preset 'fast' a float, not a dict or None",
        ),
        ({"fitted": {}}, "model 'centroid' declares no fitted attributes to write"),
        ({"fitted": {"centroids_": "array"}}, "model 'centroid' declares no fitted attributes"),
        (
            {"fitted": {"classes_": "array", "centroids_": "npz"}},
            "model 'centroid' writes fitted attribute 'centroids_' as 'npz'; choose from array, json, "
            "estimator, lightgbm",
        ),
        (
            {"fitted": {"classes_": "array", "centroids": "array"}},
            "model 'centroid' declares fitted attribute 'centroids'; fitted attributes end in _",
        ),
        (
            {"transient": ("centroids_",)},
            "model 'centroid' declares 'centroids_' both fitted and transient",
        ),
        (
            {"transient": "centroids_"},
            "model 'centroid' gives transient as something else than a tuple of attribute names",
        ),
        (
            {"estimator": "classifiers.centroid:CentroidClassifier"},
            "model 'centroid' names its estimator in classifiers.centroid, which does not exist",
        ),
        (
            {"estimator": "tests.classifiers.test_registry:CentroidClassifier"},
            "model 'centroid' names its estimator as 'tests.classifiers.test_registry:Centroid",
        ),
    ],
)
def test_an_incomplete_registration_fails_when_made_in_one_line(changes, message):
    with pytest.raises(ValueError) as error:
        register_centroid(**changes)
    assert str(error.value).startswith(f"classifiers.registry: {message}")
    assert "\n" not in str(error.value)
    assert "centroid" not in registry.MODELS


def test_a_model_is_registered_once_and_under_a_command_line_name(centroid):
    with pytest.raises(ValueError, match="model 'centroid' is registered twice"):
        register_centroid()
    with pytest.raises(ValueError, match="model 'Near-C' needs a name of lower-case letters"):
        registry.register(
            "Near-C", estimator=CentroidClassifier, presets=SETTINGS, fitted={"classes_": "array"}
        )
    with pytest.raises(
        ValueError, match="model 'mlp2' writes TorchMLPClassifier differently from model 'mlp'"
    ):
        registry.register(
            "mlp2",
            estimator="classifiers.mlp:TorchMLPClassifier",
            presets=SETTINGS,
            fitted={"classes_": "array"},
        )
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'presets'"):
        registry.register("nc", estimator=CentroidClassifier, fitted={"classes_": "array"})
    assert list(registry.MODELS) == ["lr", "mlp", "lgbm", "baseline", "centroid"]


def test_a_preset_that_does_not_train_a_model_says_so(centroid):
    with pytest.raises(ValueError, match="^--preset dcase2021 does not train --model centroid$"):
        systems.make_estimator("centroid", preset="dcase2021")
    with pytest.raises(ValueError, match="^unknown preset 'nope'"):
        systems.make_estimator("centroid", preset="nope")
    estimator = systems.make_estimator("centroid", preset="paper", random_state=3, n_jobs=1)
    assert estimator.get_params() == {"scale": 0.1, "random_state": 3, "n_jobs": 1}


def test_a_fitted_attribute_left_out_of_the_declaration_is_refused_when_written():
    registry.register(
        "centroid",
        estimator=CentroidClassifier,
        presets=SETTINGS,
        fitted={"classes_": "array", "n_features_in_": "json"},
    )
    try:
        X = np.random.default_rng(0).standard_normal((20, 3))
        fitted = CentroidClassifier().fit(X, np.repeat(["a", "b"], 10))
        with pytest.raises(ModelFormatError) as error:
            dump_estimator(fitted)
    finally:
        registry.MODELS.pop("centroid")
    assert str(error.value) == (
        "CentroidClassifier.centroids_ is fitted but its declaration "
        "neither writes it nor calls it transient (classifiers.registry)"
    )


def test_the_closed_list_follows_the_registry_and_the_kinds_hold_on_both_sides(centroid):
    assert ESTIMATORS["CentroidClassifier"] is CentroidClassifier
    X = np.random.default_rng(1).standard_normal((30, 4))
    fitted = CentroidClassifier(scale=0.3).fit(X, np.repeat(["a", "b", "c"], 10))
    tree, arrays, texts = dump_estimator(fitted)
    again = load_estimator(tree, arrays, texts)
    np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))

    fitted.centroids_ = {"mean": fitted.centroids_, "scaler": fitted}  # an estimator inside
    with pytest.raises(
        ModelFormatError,
        match=r"^m\.centroids_\.scaler holds an estimator, "
        r"but its class writes it as array$",
    ):
        dump_estimator(fitted)
    forged = json.loads(json.dumps(tree))
    forged["fitted"]["centroids_"] = {"estimator": {"class": "ZScore", "params": {}, "fitted": {}}}
    with pytest.raises(
        ModelFormatError,
        match="^CentroidClassifier.centroids_ holds an "
        "estimator, but its class writes it as array$",
    ):
        load_estimator(forged, arrays, texts)
    forged["fitted"]["n_features_in_"] = {"array": "m.centroids_"}
    del forged["fitted"]["centroids_"]
    with pytest.raises(
        ModelFormatError,
        match="^CentroidClassifier.n_features_in_ holds an "
        "array, but its class writes it as json$",
    ):
        load_estimator(forged, arrays, texts)
