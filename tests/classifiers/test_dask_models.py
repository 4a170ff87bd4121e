"""Lazy store views and Dask estimators, on dask's synchronous scheduler (no cluster).

References are independent: ``FeatureStore.segments`` / ``read`` for the views, scikit-learn's
LogisticRegression on float64 data for the logistic regression, LightGBM's own early-stopping
callback and recorded multi-logloss for the boosting helpers.
"""

import dask
import dask.array as da
import numpy as np
import pytest

from classifiers.dask_models import (
    DaskLogisticClassifier,
    _prefix_losses_block,
    early_stopping_iteration,
    lazy_zscore,
    mix_classes,
)
from classifiers.scaling import ZScore
from featurestore.datasets import Clip
from featurestore.errors import StoreFormatError
from featurestore.store import FeatureStore
from featurestore.store.dask_views import dask_frames, dask_segments

SCENES = ("airport", "bus", "park")


@pytest.fixture(autouse=True)
def synchronous():
    with dask.config.set(scheduler="sync"):
        yield


def write_store(path, *, n_clips=23, block_clips=4, seed=None, storage_dtype="float32"):
    """A store with two features of random frames at 10 Hz and 4 Hz, 3-10 s clips and 1 s clips;
    one clip failed for "audio", one left pending for "video", one clip with a gap of a second."""
    rng = np.random.default_rng(seed)
    clips = []
    for c in range(n_clips):
        scene = SCENES[c % 3]
        eval_clip = c % 7 == 6
        clips.append(
            Clip(
                clip_id=f"clip{c:03d}",
                audio=f"audio/{c}.wav",
                video=f"video/{c}.mp4",
                scene="" if eval_clip else scene,
                city=f"city{c % 2}",
                location=f"city{c % 2}-{c % 5}",
                folds=("eval",) if eval_clip else (("evaluate",) if c % 5 == 0 else ("train",)),
                duration=1.0 if eval_clip else float(rng.integers(3, 11)) + rng.uniform(0, 0.9),
            )
        )
    store = FeatureStore.open(path, mode="w", block_clips=block_clips)
    store.add_clips(clips)
    for name, rate, dim in (("audio", 10.0, 5), ("video", 4.0, 3)):
        store.create_feature(
            name,
            dim=dim,
            frame_rate=rate,
            params={"name": name},
            storage_dtype=storage_dtype,
            chunk_mib=0.001,
        )
        for block in store.blocks():
            with store.block_writer(name, block) as writer:
                for clip_id in block.clip_ids:
                    c = int(clip_id[4:])
                    if (name, c) == ("audio", 4):
                        writer.fail(clip_id, "unreadable")
                        continue
                    if (name, c) == ("video", 9):
                        continue
                    duration = clips[c].duration
                    times = (np.arange(int(duration * rate)) + 0.5) / rate
                    if c == 2:
                        times = times[(times < 1) | (times >= 2)]
                    writer.write(
                        clip_id, rng.standard_normal((len(times), dim)).astype(np.float32), times
                    )
    store.close()
    return path


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("store") / "store")


@pytest.mark.parametrize("pooling", ["mean", "max", "meanstd", "center"])
def test_segments_equal_the_in_memory_view(store_path, pooling):
    path = store_path
    with FeatureStore.open(path) as store:
        for names, selection, fold in (
            (["audio", "video"], None, None),
            (["video"], None, "train"),
            (["audio", "video"], np.arange(3, 17), "train"),
        ):
            chosen = store.select(fold=fold) if fold else None
            if selection is not None:
                chosen = np.intersect1d(selection, chosen)
            want = store.segments(names, selection=chosen, pooling=pooling)
            got = dask_segments(path, names, selection=selection, fold=fold, pooling=pooling)
            assert len(got) == len(want) > 0
            for column in ("clip_id", "second", "scene", "city", "location", "position"):
                np.testing.assert_array_equal(getattr(got, column), getattr(want, column))
            X = got.X()
            assert X.chunks[0] == tuple(c for c in X.chunks[0] if c)  # known, non-empty
            np.testing.assert_array_equal(X.compute(), want.X())
            for name in names:
                np.testing.assert_array_equal(got.X([name]).compute(), want.X([name]))
            if selection is None and fold is None:  # the gap: no segment 1 for clip002
                assert set(got.second[got.clip_id == "clip002"]) >= {0, 2}
                assert 1 not in set(got.second[got.clip_id == "clip002"])
                assert not {"clip004", "clip009"} & set(got.clip_id)  # failed, pending


def test_frames_equal_read_and_float16_is_read_as_float32(tmp_path):
    path = write_store(tmp_path / "store", storage_dtype="float16", block_clips=3)
    with FeatureStore.open(path) as store:
        selection = store.select(fold="train")
        want = store.read("audio", selection=selection)
    got = dask_frames(path, "audio", selection=selection)
    assert got.values.dtype == np.float32
    np.testing.assert_array_equal(got.values.compute(), want.values)
    np.testing.assert_array_equal(got.timestamps.compute(), want.timestamps)
    np.testing.assert_array_equal(got.positions, want.positions)
    np.testing.assert_array_equal(got.counts, want.counts)


def test_bad_requests_are_refused(store_path):
    path = store_path
    with pytest.raises(StoreFormatError, match="pooling"):
        dask_segments(path, ["audio"], pooling="none")
    with pytest.raises(StoreFormatError, match="no feature 'mfcc'"):
        dask_segments(path, ["mfcc"])
    with pytest.raises(StoreFormatError, match="outside"):
        dask_segments(path, ["audio"], selection=[70])
    assert len(dask_segments(path, ["audio"], fold="test")) == 0


# -- estimators -------------------------------------------------------------------------------


def blobs(n_rows, dim, n_classes, rng):
    y = rng.integers(0, n_classes, n_rows)
    centres = rng.standard_normal((n_classes, dim)) * 1.5
    X = (centres[y] + rng.standard_normal((n_rows, dim)) * 2 + 3).astype(np.float32)
    return X, np.array([f"c{k}" for k in range(n_classes)])[y]


def test_zscore_statistics_equal_the_in_memory_scaler():
    rng = np.random.default_rng()
    X = (rng.standard_normal((500, 6)) * [1, 2, 3, 0, 5, 1e-9] + 100).astype(np.float32)
    want = ZScore().fit(X)
    got = lazy_zscore(da.from_array(X, chunks=(77, 6)))
    np.testing.assert_allclose(got.mean_, want.mean_, rtol=1e-12)
    np.testing.assert_allclose(got.scale_, want.scale_, rtol=1e-9)
    np.testing.assert_array_equal(got.scale_[[3, 5]], [1.0, 1.0])


@pytest.mark.parametrize("C", [1.0, 0.05])
def test_logistic_regression_has_sklearns_optimum(C):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng()
    X, y = blobs(600, 7, 4, rng)
    got = DaskLogisticClassifier(C=C, max_iter=1000, tol=1e-9).fit(
        da.from_array(X, chunks=(101, 7)), da.from_array(y, chunks=101)
    )
    assert got.converged_
    standardised = ZScore().fit(X).transform(X).astype(np.float64)
    want = LogisticRegression(C=C, max_iter=5000, tol=1e-12).fit(
        standardised, np.unique(y, return_inverse=True)[1]
    )
    np.testing.assert_allclose(got.coef_, want.coef_, atol=1e-5)
    np.testing.assert_allclose(got.intercept_, want.intercept_, atol=1e-5)
    local = got.to_local()
    assert type(local).__name__ == "LogisticClassifier"
    proba = local.predict_proba(X)
    np.testing.assert_allclose(proba, want.predict_proba(standardised), atol=1e-6)
    np.testing.assert_allclose(got.predict_proba(da.from_array(X, chunks=50)).compute(), proba)
    np.testing.assert_array_equal(got.classes_, np.unique(y))


def test_two_classes_are_sklearns_binomial_fit_at_twice_c():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng()
    X, y = blobs(300, 4, 2, rng)
    got = DaskLogisticClassifier(C=0.3, max_iter=1000, tol=1e-9).fit(X, y)
    standardised = ZScore().fit(X).transform(X).astype(np.float64)
    want = LogisticRegression(C=0.6, max_iter=5000, tol=1e-12).fit(standardised, y)
    np.testing.assert_allclose(got.predict_proba(X), want.predict_proba(standardised), atol=1e-6)


def lightgbm_curve(rng, rounds=40):
    """A booster grown without early stopping, its recorded validation multi-logloss, data."""
    import lightgbm

    X, y = blobs(700, 5, 3, rng)
    y = np.unique(y, return_inverse=True)[1]
    params = {
        "objective": "multiclass",
        "num_class": 3,
        "learning_rate": 0.5,
        "num_leaves": 15,
        "min_data_in_leaf": 3,
        "verbosity": -1,
        "seed": 1,
        "deterministic": True,
        "num_threads": 1,
    }
    train = lightgbm.Dataset(X[:500], y[:500])
    valid = lightgbm.Dataset(X[500:], y[500:], reference=train)
    recorded = {}
    booster = lightgbm.train(
        params,
        train,
        num_boost_round=rounds,
        valid_sets=[valid],
        callbacks=[lightgbm.record_evaluation(recorded)],
    )
    return booster, np.array(recorded["valid_0"]["multi_logloss"]), X, y, params


def test_blockwise_prefix_losses_equal_lightgbms_recorded_metric():
    booster, recorded, X, y, _ = lightgbm_curve(np.random.default_rng())
    Z = da.from_array(X[500:], chunks=70)
    parts = Z.map_blocks(
        _prefix_losses_block,
        da.from_array(y[500:], chunks=70)[:, None],
        booster,
        3,
        len(recorded),
        1,
        dtype=np.float64,
        chunks=(1, len(recorded)),
        meta=np.empty((0, 0)),
    )
    np.testing.assert_allclose(parts.sum(axis=0).compute() / 200, recorded, rtol=1e-6)


@pytest.mark.parametrize("rounds", [1, 3, 8])
def test_best_iteration_follows_lightgbms_early_stopping(rounds):
    import lightgbm

    booster, recorded, X, y, params = lightgbm_curve(np.random.default_rng(5), rounds=60)
    train = lightgbm.Dataset(X[:500], y[:500])
    stopped = lightgbm.train(
        params,
        train,
        num_boost_round=60,
        valid_sets=[lightgbm.Dataset(X[500:], y[500:], reference=train)],
        callbacks=[lightgbm.early_stopping(rounds, verbose=False)],
    )
    assert early_stopping_iteration(recorded, rounds) == stopped.best_iteration
    assert early_stopping_iteration(np.arange(5.0)[::-1], 2) == 5


def test_rows_are_dealt_so_that_every_chunk_holds_every_class():
    rng = np.random.default_rng()
    y = np.repeat(np.arange(3), [40, 50, 7])
    Z = da.from_array(np.arange(97.0)[:, None], chunks=10)
    mixed, labels = mix_classes(Z, y, 3, seed=4)
    values = mixed.compute()[:, 0].astype(int)
    np.testing.assert_array_equal(labels, y[values])  # rows and labels stay together
    assert sorted(values.tolist()) == list(range(97))
    assert len(mixed.chunks[0]) == 7  # the rarest class has 7 rows
    bounds = np.cumsum((0,) + mixed.chunks[0])
    assert all(set(labels[a:b]) == {0, 1, 2} for a, b in zip(bounds[:-1], bounds[1:]))
    one, labels = mix_classes(Z, np.repeat(np.arange(3), [48, 48, 1]), 3, seed=4)
    assert len(one.chunks[0]) == 1 and sorted(one.compute()[:, 0]) == list(range(97))
    y = rng.permutation(np.tile(np.arange(3), 40))
    for start in range(0, 120, 30):
        y[start : start + 3] = [0, 1, 2]
    Z = da.from_array(np.arange(120.0)[:, None], chunks=30)
    same, labels = mix_classes(Z, y, 3, seed=4)
    assert same is Z and labels is y
