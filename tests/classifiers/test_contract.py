"""One contract for every estimator and fusion mode: the scikit-learn protocol, end to end.

Checked for each: constructor stores hyperparameters only (clone, get_params/set_params,
nested ``<member>__<param>`` for fusions), fit returns self with ``classes_`` in sorted label order,
probabilities of the right shape summing to 1, reproducible with a fixed random_state, a round
trip through the data format of run directories (JSON + npz without pickle + LightGBM text), a
joblib round trip (process pools pickle estimators), inside an sklearn Pipeline, and inside
GridSearchCV with GroupKFold.
"""

import io
import json

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from classifiers import systems
from classifiers.boosting import LightGBMClassifier
from classifiers.calibration import TemperatureScaledClassifier
from classifiers.fusion import LateFusion
from classifiers.linear import LogisticClassifier
from classifiers.persistence import ESTIMATORS, dump_estimator, load_estimator
from classifiers.scaling import NormalisedClassifier
from tests.helpers import small_av

pytestmark = pytest.mark.usefixtures("single_thread")

DIMS = {"audio": 8, "video": 8}


def system(model, fusion, features=("audio", "video")):
    return lambda: systems.make_system(
        {f: DIMS[f] for f in features}, dict.fromkeys(features, model), fusion, preset="fast"
    )


def mixed_late():
    return LateFusion(
        [
            ("audio", LogisticClassifier(max_iter=50), slice(0, 8)),
            (
                "video",
                LightGBMClassifier(
                    n_components=4, n_estimators=10, min_child_samples=5, random_state=0
                ),
                slice(8, 16),
            ),
        ],
        fit_weights=True,
        random_state=0,
    )


# (id, factory, a parameter grid for GridSearchCV)
CASES = [
    ("lr", system("lr", "early"), {"C": [0.1, 1.0]}),
    ("mlp", system("mlp", "early"), {"hidden": [(16,), (32,)]}),
    ("lgbm", system("lgbm", "early"), {"num_leaves": [3, 7]}),
    ("baseline-audio", system("baseline", "none", ("audio",)), {"max_epochs": [1, 2]}),
    ("late", system("lr", "late"), {"audio__C": [0.1, 1.0]}),
    ("weighted-mixed", mixed_late, {"video__num_leaves": [3, 7]}),
    ("stack", system("lr", "stack"), {"n_splits": [2, 3]}),
    ("proposed", system("baseline", "proposed"), {"max_epochs": [1, 2]}),
    (
        "temperature-lr",
        lambda: TemperatureScaledClassifier(LogisticClassifier(max_iter=50), random_state=0),
        {"estimator__C": [0.1, 1.0]},
    ),
    (
        "normalised-lr",
        lambda: NormalisedClassifier(LogisticClassifier(max_iter=50)),
        {"estimator__C": [0.1, 1.0]},
    ),
    (
        "normalised-given-baseline",
        lambda: NormalisedClassifier(
            systems.make_estimator(
                "baseline",
                preset="fast",
                overrides={"standardize": False, "val_loss": "batches", "ties": "last"},
            ),
            mean=np.full(16, 0.5),
            std=np.full(16, 2.0),
        ),
        {"estimator__max_epochs": [1, 2]},
    ),
    (
        "normalised-proposed",
        lambda: NormalisedClassifier(system("baseline", "proposed")()),
        {"estimator__max_epochs": [1, 2]},
    ),
]


def test_every_estimator_class_has_a_case():
    covered = set()
    for _, factory, _ in CASES:
        stack = [factory()]
        while stack:
            estimator = stack.pop()
            covered.add(type(estimator).__name__)
            stack += [
                v for v in estimator.get_params(deep=False).values() if hasattr(v, "get_params")
            ]
            stack += [member for _, member, _ in getattr(estimator, "estimators", [])]
    assert set(ESTIMATORS) - {"ZScore"} <= covered


@pytest.fixture(scope="module")
def data():
    X, y, groups, _ = small_av(seed=3)
    if X.shape[1] != 16:
        raise RuntimeError("test data must have 8 + 8 columns")
    return X, y, groups


def through_files(estimator, folder):
    """The estimator written as JSON + npz + text files and read back (no pickle anywhere)."""
    tree, arrays, texts = dump_estimator(estimator)
    (folder / "tree.json").write_text(json.dumps(tree))
    np.savez(folder / "arrays.npz", **arrays)
    with np.load(folder / "arrays.npz", allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    return load_estimator(
        json.loads((folder / "tree.json").read_text()),
        arrays,
        {key: str(text) for key, text in texts.items()},
    )


@pytest.mark.parametrize("name, factory, grid", CASES, ids=[c[0] for c in CASES])
def test_estimator_contract(name, factory, grid, data, tmp_path):
    X, y, groups = data
    estimator = factory()
    params = estimator.get_params(deep=False)
    assert clone(estimator).get_params(deep=False).keys() == params.keys()
    key = next(iter(grid))
    estimator.set_params(**{key: grid[key][0]})
    assert estimator.get_params(deep=True)[key] == grid[key][0]

    fitted = clone(estimator).fit(X, y, groups=groups)
    assert list(fitted.classes_) == sorted(set(y))
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), len(fitted.classes_))
    assert np.all(proba >= 0) and np.allclose(proba.sum(axis=1), 1.0)
    assert set(fitted.predict(X)) <= set(fitted.classes_)
    assert fitted.score(X, y) > 1.0 / len(fitted.classes_)  # better than chance on its data

    again = clone(estimator).fit(X, y, groups=groups)
    np.testing.assert_allclose(again.predict_proba(X), proba, rtol=1e-5, atol=1e-6)

    loaded = through_files(fitted, tmp_path)
    assert type(loaded) is type(fitted) and list(loaded.classes_) == list(fitted.classes_)
    np.testing.assert_allclose(loaded.predict_proba(X), proba, rtol=1e-12, atol=1e-12)
    assert loaded.get_params(deep=False).keys() == params.keys()

    buffer = io.BytesIO()
    joblib.dump(fitted, buffer)
    buffer.seek(0)
    np.testing.assert_allclose(joblib.load(buffer).predict_proba(X), proba, rtol=1e-6, atol=1e-7)

    pipeline = Pipeline([("scale", StandardScaler()), ("model", clone(estimator))])
    pipeline.fit(X, y, model__groups=groups)
    assert pipeline.predict_proba(X).shape == proba.shape

    search = GridSearchCV(
        clone(estimator),
        grid,
        cv=GroupKFold(n_splits=3),
        scoring="neg_log_loss",
        error_score="raise",
    )
    search.fit(X, y, groups=groups)
    assert search.best_params_[key] in grid[key]
    assert np.isfinite(search.best_score_)


def test_integer_labels_and_eval_set():
    X, y, groups, _ = small_av(seed=4)
    labels = np.unique(y, return_inverse=True)[1] * 10
    model = LogisticClassifier(max_iter=30).fit(
        X[:200], labels[:200], eval_set=(X[200:], labels[200:])
    )
    assert list(model.classes_) == [0, 10, 20, 30]
    assert model.predict(X).dtype.kind == "i"


def test_eval_set_with_unseen_label_is_refused():
    X, y, _, _ = small_av(seed=5)
    model = systems.make_estimator("mlp", preset="fast")
    with pytest.raises(ValueError, match="never saw"):
        model.fit(X[:100], y[:100], eval_set=(X[100:110], np.array(["nope"] * 10)))


def test_single_class_is_refused():
    X, _, _, _ = small_av(seed=6)
    with pytest.raises(ValueError, match="at least 2 classes"):
        LogisticClassifier().fit(X, np.array(["park"] * len(X)))


def test_system_vocabulary_errors():
    with pytest.raises(ValueError, match="need a fusion mode"):
        systems.make_system(DIMS, {"audio": "lr", "video": "lr"}, "none")
    with pytest.raises(ValueError, match="baseline networks"):
        systems.make_system(DIMS, {"audio": "lr", "video": "lr"}, "proposed")
    with pytest.raises(ValueError, match="one model"):
        systems.make_system(DIMS, {"audio": "lr", "video": "lgbm"}, "early")
    assert systems.parse_models("video=lgbm,audio=lr", ["openl3_audio", "openl3_video"]) == {
        "openl3_audio": "lr",
        "openl3_video": "lgbm",
    }
    with pytest.raises(ValueError, match="matches 2"):
        systems.parse_models("openl3=lr", ["openl3_audio", "openl3_video"])
