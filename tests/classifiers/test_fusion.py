"""Fusion modes: they beat each single modality on complementary features; the proposed net's
architecture; fitted weights; stacking's out-of-fold predictions."""

import numpy as np
import pytest

from classifiers import metrics, splits, systems
from classifiers.fusion import (
    LateFusion,
    ProposedFusion,
    StackingFusion,
    fit_fusion_weights,
)
from classifiers.linear import LogisticClassifier
from classifiers.mlp import baseline_network
from classifiers.synthetic import make_av_features

pytestmark = pytest.mark.usefixtures("single_thread")

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def corpus():
    data = make_av_features(
        n_clips=500,
        segments_per_clip=4,
        dim_audio=24,
        dim_video=24,
        locations_per_class=6,
        random_state=11,
    )
    X = np.concatenate([data["audio"], data["video"]], axis=1)
    train, test = splits.location_split(
        data["y"], data["location"], val_fraction=0.3, random_state=0
    )
    return X, data, train, test


def accuracy(estimator, X, data, train, test, columns):
    estimator.fit(X[train][:, columns], data["y"][train], groups=data["location"][train])
    proba = estimator.predict_proba(X[test][:, columns])
    report = metrics.evaluate(
        data["y"][test],
        proba,
        classes=estimator.classes_,
        clip_ids=data["clip_id"][test],
        n_bootstrap=0,
    )
    return report["segment"]["accuracy"]


def test_fusion_beats_each_single_modality(corpus):
    X, data, train, test = corpus
    audio, video, both = np.arange(24), np.arange(24, 48), np.arange(48)
    single = {
        "audio": accuracy(
            systems.make_system({"a": 24}, {"a": "lr"}, "none", preset="fast"),
            X,
            data,
            train,
            test,
            audio,
        ),
        "video": accuracy(
            systems.make_system({"v": 24}, {"v": "lr"}, "none", preset="fast"),
            X,
            data,
            train,
            test,
            video,
        ),
    }
    dims = {"audio": 24, "video": 24}
    fused = {}
    for model, fusion in [
        ("lr", "early"),
        ("lr", "late"),
        ("lr", "weighted"),
        ("lr", "stack"),
        ("baseline", "proposed"),
    ]:
        estimator = systems.make_system(
            dims, {"audio": model, "video": model}, fusion, preset="fast", random_state=0
        )
        fused[f"{model}-{fusion}"] = accuracy(estimator, X, data, train, test, both)
    best_single = max(single.values())
    assert all(value > best_single + 0.05 for value in fused.values()), (single, fused)


def test_weights_favour_the_informative_modality():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 3000)
    truth = np.eye(3)[y]
    good = 0.7 * truth + 0.3 * rng.dirichlet(np.ones(3), 3000)
    noise = rng.dirichlet(np.ones(3), 3000)
    weights = fit_fusion_weights([noise, good], y)
    assert weights.sum() == pytest.approx(1.0) and weights[1] > 0.9


def test_late_fusion_average_and_fixed_weights():
    data = make_av_features(
        n_clips=80,
        segments_per_clip=3,
        dim_audio=6,
        dim_video=6,
        n_classes=4,
        locations_per_class=4,
        random_state=1,
    )
    X = np.concatenate([data["audio"], data["video"]], axis=1)
    members = [
        ("audio", LogisticClassifier(max_iter=30), slice(0, 6)),
        ("video", LogisticClassifier(max_iter=30), slice(6, 12)),
    ]
    fusion = LateFusion(members, weights=[3, 1]).fit(X, data["y"])
    np.testing.assert_allclose(fusion.weights_, [0.75, 0.25])
    audio, video = fusion.member_probas(X)
    np.testing.assert_allclose(fusion.predict_proba(X), 0.75 * audio + 0.25 * video)


def test_stacking_out_of_fold_rows_come_from_models_that_never_saw_their_location():
    data = make_av_features(
        n_clips=120,
        segments_per_clip=3,
        dim_audio=6,
        dim_video=6,
        n_classes=4,
        locations_per_class=5,
        random_state=2,
    )
    X = np.concatenate([data["audio"], data["video"]], axis=1)
    groups = data["location"]
    stack = StackingFusion(
        [
            ("audio", LogisticClassifier(max_iter=30), slice(0, 6)),
            ("video", LogisticClassifier(max_iter=30), slice(6, 12)),
        ],
        n_splits=3,
        random_state=5,
    ).fit(X, data["y"], groups=groups)
    folds = splits.group_kfold(groups, n_splits=3, y=data["y"], random_state=5)
    for k, (fit_rows, held_rows) in enumerate(folds):
        assert len(splits.shared_groups(groups, fit_rows, held_rows)) == 0
        fold_model = stack.fold_estimators_[0][k]
        np.testing.assert_allclose(
            stack.oof_proba_[held_rows, :4], fold_model.predict_proba(X[held_rows, :6]), rtol=1e-6
        )
    refit = StackingFusion(stack.estimators, n_splits=3, refit=True, random_state=5)
    assert refit.fit(X, data["y"], groups=groups).estimators_ is not None


def test_stacking_refuses_folds_that_lose_a_class():
    data = make_av_features(
        n_clips=60,
        segments_per_clip=2,
        dim_audio=4,
        dim_video=4,
        n_classes=4,
        locations_per_class=3,
        random_state=4,
    )
    X = np.concatenate([data["audio"], data["video"]], axis=1)
    groups = np.asarray(data["location"]).copy()
    lonely = data["y"] == data["y"][0]
    groups[lonely] = "only-location"  # that class now has a single location
    stack = StackingFusion(
        [
            ("audio", LogisticClassifier(max_iter=10), slice(0, 4)),
            ("video", LogisticClassifier(max_iter=10), slice(4, 8)),
        ],
        n_splits=3,
    )
    with pytest.raises(ValueError, match=f"no '{data['y'][0]}' rows"):
        stack.fit(X, data["y"], groups=groups)


def test_proposed_fusion_architecture_and_frozen_branches():
    rng = np.random.default_rng(3)
    n = 256
    y = np.array([f"class{k}" for k in rng.integers(0, 10, n)])
    y[:10] = [f"class{k}" for k in range(10)]
    X = rng.normal(size=(n, 1024)).astype(np.float32)
    branch = baseline_network(max_epochs=2, batch_size=32, learning_rate=1e-3)
    model = ProposedFusion(
        [("audio", branch, slice(0, 512)), ("video", branch, slice(512, 1024))],
        max_epochs=3,
        batch_size=32,
        learning_rate=1e-3,
        random_state=0,
    )
    model.fit(X, y, eval_set=(X[:64], y[:64]))
    nn = torch.nn
    assert model.trunk_modules_ == 5
    for trunk, fitted in zip(model.trunks_, model.branches_):
        assert [type(m) for m in trunk] == [
            nn.Linear,
            nn.BatchNorm1d,
            nn.ReLU,
            nn.Dropout,
            nn.Linear,
        ]
        assert (trunk[0].in_features, trunk[0].out_features) == (512, 512)
        assert (trunk[4].in_features, trunk[4].out_features) == (512, 128)
        assert trunk[3].p == 0.2
        assert not any(p.requires_grad for p in trunk.parameters())
        # The head's training left every frozen weight and BatchNorm statistic untouched: the
        # branch's numpy snapshot was taken when the branch finished training, before the head.
        for name, value in trunk.state_dict().items():
            if value.is_floating_point():
                np.testing.assert_array_equal(value.numpy(), fitted.state_[name])
        # The full branch is the baseline l3_dense: 512-512-128-64-10.
        widths = [
            (m.in_features, m.out_features) for m in fitted.module_ if isinstance(m, nn.Linear)
        ]
        assert widths == [(512, 512), (512, 128), (128, 64), (64, 10)]
    head = model.head_
    assert [type(m) for m in head] == [nn.Linear, nn.Linear]  # no nonlinearity between
    assert (head[0].in_features, head[0].out_features) == (256, 128)
    assert (head[1].in_features, head[1].out_features) == (128, 10)
    assert len(model.history_) == 3
    # Probabilities = softmax(head(concat(trunk_audio(z_audio), trunk_video(z_video)))).
    with torch.no_grad():
        parts = [
            trunk(torch.from_numpy(fitted.scaler_.transform(X[:20, cols])))
            for trunk, fitted, cols in zip(
                model.trunks_, model.branches_, (slice(0, 512), slice(512, 1024))
            )
        ]
        expected = torch.softmax(head(torch.cat(parts, dim=1)), dim=1).numpy()
    np.testing.assert_allclose(model.predict_proba(X[:20]), expected, rtol=1e-4, atol=1e-6)


def test_proposed_fusion_refuses_shallow_branches():
    X = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    y = np.array(["a", "b"] * 20)
    shallow = systems.make_estimator("mlp", preset="fast")
    with pytest.raises(ValueError, match="at least two hidden layers"):
        ProposedFusion([("audio", shallow, slice(0, 2)), ("video", shallow, slice(2, 4))]).fit(
            X, y
        )
