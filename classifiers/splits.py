"""Validation splits grouped by recording location, and grouped K-fold.

Segments of one location are consecutive cuts of one ~5-minute recording, and city is
confounded with scene: a row-wise random split leaks a recording into both sides and flatters
every model. The DCASE 2021 Task 1B baseline (``create_data/split_data.py``) holds out about 10%
of each scene's files as whole locations: :func:`dcase2021_split` is its rule, re-stated;
:func:`location_split` is avscene's own per-class variant.
"""

import random

import numpy as np

#: The seed of Python's ``random`` in the baseline's ``split_data.py``.
DCASE2021_SEED = 30


def _majority_label(y, group_index, n_groups):
    """Return the most frequent label of each group (ties: the smaller label index)."""
    _, y_index = np.unique(y, return_inverse=True)
    counts = np.zeros((n_groups, y_index.max() + 1), dtype=np.int64)
    np.add.at(counts, (group_index, y_index), 1)
    return counts.argmax(axis=1)


def location_split(y, groups, *, val_fraction=0.1, random_state=0):
    """Split rows into training and validation sets made of whole locations.

    Per class (each location counts for its majority label), locations are drawn in random
    order into the validation side; the number drawn brings the validation rows of the class
    closest to ``val_fraction``, with at least one location (so every class is validated) and at
    least one left for training. A class recorded at a single location stays wholly in training.
    (The baseline's ``split_data.py`` fills the training side up to ``1 - val_fraction`` instead,
    which leaves no validation location for classes with few, large locations.)

    Parameters
    ----------
    y : array-like, shape (n_rows,)
        Class labels (any comparable type).
    groups : array-like, shape (n_rows,)
        Location of each row.
    val_fraction : float in [0, 1)
    random_state : int or None

    Returns
    -------
    train_rows, val_rows : ndarray of int, sorted row indices; no location appears in both.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    y = np.asarray(y)
    group_names, group_index = np.unique(np.asarray(groups), return_inverse=True)
    if len(y) != len(group_index):
        raise ValueError(f"y has {len(y)} rows but groups has {len(group_index)}")
    group_label = _majority_label(y, group_index, len(group_names))
    group_size = np.bincount(group_index, minlength=len(group_names))
    rng = np.random.default_rng(random_state)
    in_val = np.zeros(len(group_names), dtype=bool)
    if val_fraction == 0.0:
        return np.arange(len(y)), np.zeros(0, dtype=np.int64)
    for label in np.unique(group_label):
        members = rng.permutation(np.flatnonzero(group_label == label))
        if len(members) < 2:
            continue
        target = val_fraction * group_size[members].sum()
        filled = np.cumsum(group_size[members])[:-1]  # val prefixes of 1 .. n-1 locations
        n_val = int(np.argmin(np.abs(filled - target))) + 1
        in_val[members[:n_val]] = True
    val_row = in_val[group_index]
    return np.flatnonzero(~val_row), np.flatnonzero(val_row)


def dcase2021_split(scenes, location_keys, *, val_fraction=0.1, seed=DCASE2021_SEED):
    """Split clips as the DCASE 2021 Task 1B baseline's ``split_data.py`` does.

    The rule: one ``random.Random(seed)`` stream for the whole split. Scenes are visited in
    sorted order. Within a scene the clips are grouped by location key and the groups are put in
    sorted order of their keys (string order: ``"1000"`` comes before ``"6"``), numbered 0..G-1.
    Numbers are then drawn with ``random.choice`` from those still unused, each drawn group
    going to training, until training holds at least ``int((1 - val_fraction) * n_scene)``
    clips (at least one group is always drawn). The groups never drawn are validation.

    The baseline keys a location by the number in the file name only
    (``filename.split('-')[2]``), so the same number recorded in two cities is one group; pass
    such keys to reproduce its split.

    Parameters
    ----------
    scenes : array-like of str, shape (n_clips,)
    location_keys : array-like, shape (n_clips,)
        Compared as strings.
    val_fraction : float in [0, 1)
    seed : int

    Returns
    -------
    train_rows, val_rows : ndarray of int, sorted row indices
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    scenes = np.asarray(scenes).astype(str)
    keys = np.asarray(location_keys).astype(str)
    if len(scenes) != len(keys):
        raise ValueError(f"scenes has {len(scenes)} rows but location_keys has {len(keys)}")
    stream = random.Random(seed)
    in_val = np.zeros(len(scenes), dtype=bool)
    for scene in sorted(set(scenes.tolist())):
        rows = np.flatnonzero(scenes == scene)
        names, sizes = np.unique(keys[rows], return_counts=True)  # sorted as strings
        unused = list(range(len(names)))
        wanted, taken = int((1 - val_fraction) * len(rows)), 0
        while True:
            drawn = stream.choice(unused)
            unused.remove(drawn)
            taken += int(sizes[drawn])
            if taken >= wanted:
                break
        in_val[rows] = np.isin(keys[rows], names[unused])
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)


def stratified_row_split(y, *, val_fraction=0.1, random_state=0):
    """Split rows at random, per class (use only when no grouping is known).

    Returns ``(train_rows, val_rows)``; every class keeps at least one training row.
    """
    y = np.asarray(y)
    rng = np.random.default_rng(random_state)
    val_rows = []
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        n_val = min(int(round(val_fraction * len(rows))), len(rows) - 1)
        val_rows.append(rows[:n_val])
    val_rows = np.sort(np.concatenate(val_rows))
    train = np.ones(len(y), dtype=bool)
    train[val_rows] = False
    return np.flatnonzero(train), val_rows


def group_kfold(groups, *, n_splits=5, y=None, random_state=None):
    """Return ``n_splits`` (train_rows, test_rows) pairs; each group lies in exactly one test fold.

    Groups are shuffled (``random_state``; None keeps sorted order like sklearn's GroupKFold),
    then assigned largest first to the fold with the fewest rows, which balances fold sizes.
    With labels ``y``, a group (location) first goes to a fold holding the fewest groups of its
    majority class, so each class's locations spread over the folds and every fold's training
    part keeps the classes that have at least two locations.

    Parameters
    ----------
    groups : array-like, shape (n_rows,)
    n_splits : int, at most the number of distinct groups
    y : array-like, shape (n_rows,), optional
    """
    group_names, group_index = np.unique(np.asarray(groups), return_inverse=True)
    if not 2 <= n_splits <= len(group_names):
        raise ValueError(f"n_splits={n_splits} needs between 2 and {len(group_names)} groups")
    size = np.bincount(group_index)
    label = (
        np.zeros(len(group_names), dtype=np.int64)
        if y is None
        else _majority_label(np.asarray(y), group_index, len(group_names))
    )
    order = np.arange(len(group_names))
    if random_state is not None:
        order = np.random.default_rng(random_state).permutation(order)
    order = order[np.argsort(-size[order], kind="stable")]
    fold_of_group = np.empty(len(group_names), dtype=np.int64)
    fold_rows = np.zeros(n_splits, dtype=np.int64)
    class_groups = np.zeros((label.max() + 1, n_splits), dtype=np.int64)
    for g in order:
        fold = int(np.lexsort((fold_rows, class_groups[label[g]]))[0])
        fold_of_group[g] = fold
        fold_rows[fold] += size[g]
        class_groups[label[g], fold] += 1
    fold_of_row = fold_of_group[group_index]
    return [
        (np.flatnonzero(fold_of_row != k), np.flatnonzero(fold_of_row == k))
        for k in range(n_splits)
    ]


def shared_groups(groups, rows_a, rows_b):
    """Return the sorted groups that occur in both row sets (empty when the split is clean)."""
    groups = np.asarray(groups)
    return np.intersect1d(groups[rows_a], groups[rows_b])
