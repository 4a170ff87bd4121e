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
    per_class = rng.integers(2, 6, n_classes)  # >= 2 locations per class
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


# -- the DCASE 2021 baseline's split (split_data.py), worked by hand -------------------------


def tiny_fold():
    """Two scenes; park has location number 5 in two cities (one group for the baseline)."""
    names = [
        "bus-lisbon-10-1",
        "bus-lisbon-10-2",
        "bus-lyon-7-3",
        "bus-milan-8-4",
        "bus-paris-9-5",
        "bus-paris-9-6",
        "bus-paris-9-7",
        "park-lisbon-5-8",
        "park-lisbon-5-9",
        "park-lyon-5-10",
        "park-lyon-5-11",
        "park-milan-12-12",
        "park-vienna-3-13",
    ]
    order = np.random.default_rng(4).permutation(len(names))  # row order is irrelevant
    names = [names[i] for i in order]
    scenes = [name.split("-")[0] for name in names]
    numbers = [name.split("-")[2] for name in names]
    return np.array(names), np.array(scenes), np.array(numbers)


def test_dcase2021_split_worked_by_hand():
    import random

    # The draws of Python's random seeded 30: choice(seq) is seq[randrange(len(seq))].
    stream = random.Random(30)
    assert [stream.randrange(n) for n in (4, 3, 2, 3, 2)] == [2, 2, 0, 2, 0]
    # bus (first in sorted order): groups in string order "10"(2) "7"(1) "8"(1) "9"(3) = 0..3,
    # 7 clips, training needs int(0.9 * 7) = 6. Draw 2 of [0,1,2,3] -> "8" (training holds 1
    # clip), draw 2 of [0,1,3] -> 3 = "9" (4 clips), draw 0 of [0,1] -> "10" (6): enough.
    # Left for validation: "7".
    # park: groups "12"(1) "3"(1) "5"(4: lisbon and lyon) = 0..2, 6 clips, needs int(5.4) = 5.
    # Draw 2 of [0,1,2] -> "5" (4 clips), draw 0 of [0,1] -> "12" (5): enough. Left: "3".
    names, scenes, numbers = tiny_fold()
    train, val = splits.dcase2021_split(scenes, numbers, val_fraction=0.1, seed=30)
    assert sorted(names[val]) == ["bus-lyon-7-3", "park-vienna-3-13"]
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(names)))
    in_train = set(names[train])
    assert {"park-lisbon-5-8", "park-lyon-5-10"} <= in_train  # one number, one group


def test_dcase2021_split_one_number_in_two_cities_moves_together():
    names, scenes, numbers = tiny_fold()
    for seed in range(40):
        train, val = splits.dcase2021_split(scenes, numbers, val_fraction=0.5, seed=seed)
        sides = {
            ("train" if i in set(train) else "val") for i, n in enumerate(numbers) if n == "5"
        }
        assert len(sides) == 1, seed
        assert not set(numbers[train]) & set(numbers[val])


def test_dcase2021_split_fills_training_first():
    names, scenes, numbers = tiny_fold()
    train, val = splits.dcase2021_split(scenes, numbers, val_fraction=0.0)
    assert len(val) == 0 and len(train) == len(names)
    # a scene of one location: the first draw fills training, nothing is left to validate
    train, val = splits.dcase2021_split(["bus"] * 5, ["1"] * 5, val_fraction=0.9)
    assert len(val) == 0
    for seed in range(20):
        train, val = splits.dcase2021_split(scenes, numbers, val_fraction=0.4, seed=seed)
        for scene in ("bus", "park"):
            n = int(np.sum(scenes == scene))
            assert np.sum(scenes[train] == scene) >= int(0.6 * n)
    with pytest.raises(ValueError, match="val_fraction"):
        splits.dcase2021_split(scenes, numbers, val_fraction=1.0)
