"""Grouped splits never leak a location; fractions and coverage as documented."""

import numpy as np
import pytest

from classifiers import splits


def random_groups(seed):
    rng = np.random.default_rng(seed)
    n_groups = int(rng.integers(8, 60))
    sizes = rng.integers(1, 40, n_groups)
    groups = np.repeat([f"loc{g}-{rng.integers(1000)}" for g in range(n_groups)], sizes)
    labels = np.repeat(rng.integers(0, 5, n_groups), sizes)
    order = rng.permutation(len(groups))  # rows of a location need not be adjacent
    flip = rng.random(len(groups)) < 0.05  # a few rows disagree with their location's label
    labels = np.where(flip, rng.integers(0, 5, len(groups)), labels)
    return labels[order], groups[order]


@pytest.mark.parametrize("seed", range(25))
def test_location_split_never_leaks(seed):
    y, groups = random_groups(seed)
    fraction = float(np.random.default_rng(seed).uniform(0.05, 0.5))
    train, val = splits.location_split(y, groups, val_fraction=fraction, random_state=seed)
    assert len(splits.shared_groups(groups, train, val)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(y)))
    assert len(train) > 0


def test_location_split_validates_every_class_with_two_locations():
    groups = np.repeat([f"g{i}" for i in range(40)], 30)
    y = np.repeat(np.arange(10), 120)  # 4 locations per class
    train, val = splits.location_split(y, groups, val_fraction=0.1, random_state=0)
    assert set(y[val]) == set(range(10)) and set(y[train]) == set(range(10))
    assert len(val) == 10 * 30  # one location of four is the closest to 10%


def test_location_split_is_reproducible_and_seed_dependent():
    y, groups = random_groups(99)
    a = splits.location_split(y, groups, random_state=1)
    b = splits.location_split(y, groups, random_state=1)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    others = [splits.location_split(y, groups, random_state=s)[1] for s in range(2, 6)]
    assert any(not np.array_equal(a[1], o) for o in others)


@pytest.mark.parametrize("seed", range(15))
def test_group_kfold_partitions_groups(seed):
    y, groups = random_groups(seed)
    n_splits = int(np.random.default_rng(seed).integers(2, 6))
    folds = splits.group_kfold(groups, n_splits=n_splits, random_state=seed)
    tested = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(tested), np.arange(len(groups)))  # every row tested once
    for train, test in folds:
        assert len(splits.shared_groups(groups, train, test)) == 0
        assert len(train) + len(test) == len(groups)


@pytest.mark.parametrize("seed", range(5))
def test_group_kfold_with_labels_keeps_every_class_in_every_training_part(seed):
    rng = np.random.default_rng(seed)
    n_classes, n_splits = int(rng.integers(2, 8)), int(rng.integers(2, 5))
    per_class = rng.integers(2, 6, n_classes)              # >= 2 locations per class
    groups, y = [], []
    for c, n_locations in enumerate(per_class):
        for loc in range(n_locations):
            rows = int(rng.integers(1, 30))
            groups += [f"c{c}-l{loc}"] * rows
            y += [f"class{c}"] * rows
    groups, y = np.array(groups), np.array(y)
    n_splits = min(n_splits, len(np.unique(groups)))
    folds = splits.group_kfold(groups, n_splits=n_splits, y=y, random_state=seed)
    assert sorted(np.concatenate([held for _, held in folds]).tolist()) == list(range(len(y)))
    for fit_rows, held_rows in folds:
        assert len(splits.shared_groups(groups, fit_rows, held_rows)) == 0
        assert set(y[fit_rows]) == set(y)


def test_group_kfold_refuses_too_many_splits():
    with pytest.raises(ValueError, match="n_splits"):
        splits.group_kfold(["a", "a", "b"], n_splits=3)


def test_stratified_row_split_keeps_each_class_in_training():
    y = np.array([0] * 10 + [1] * 1 + [2] * 5)
    train, val = splits.stratified_row_split(y, val_fraction=0.5, random_state=0)
    assert set(y[train]) == {0, 1, 2}
    assert len(np.intersect1d(train, val)) == 0
