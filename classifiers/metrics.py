"""DCASE 2021 Task 1B metrics, clip-level aggregation, bootstrap confidence intervals.

Definitions (the 2021 evaluation: ``marmoi/dcase2021_task1a_baseline:task1a.py`` and the Task 1B
baseline's ``test_DCASE.py``):

- Probabilities are clipped to ``[1e-15, 1 - 1e-15]`` in float64 and each row renormalised to sum
  1, as scikit-learn's ``log_loss(eps=1e-15)`` did in 2021. This module does not call the installed
  scikit-learn: its ``eps`` became ``"auto"`` (dtype epsilon) in 1.2, was deprecated later and
  removed in 1.5, which now rejects rows that do not sum to 1.
- **Log loss** (the ranking metric): for each class, the mean of ``-log p[true class]`` over the
  rows of that class; then the mean over classes (macro). Classes without rows are skipped.
- **Accuracy**: class-wise averaged accuracy (mean over classes of each class's recall), as
  ``sed_eval``'s ``class_wise_average`` accuracy; overall (row) accuracy is reported too.
- **Segment level**: every 1-s segment is one prediction (the challenge unit).
  **Clip level**: by default a clip's segment probabilities are summed and renormalised; a
  caller may give the clip probabilities and decisions instead (the baseline's clip rule over
  all frames, :func:`classifiers.protocols.clip_decision`).
- **Bootstrap**: confidence intervals resample *clips* with replacement, never single segments:
  the segments of a 10-s clip are consecutive seconds of one recording and strongly correlated, so
  resampling segments would treat them as independent and give intervals that are too narrow.
"""

import numpy as np

#: Probability clipping of the 2021 evaluation (scikit-learn's former log_loss default).
EPS = 1e-15


def clip_and_normalise(proba, *, eps=EPS):
    """Return ``proba`` clipped to [eps, 1 - eps] in float64, then rows renormalised to sum 1.

    Clipping comes first, as in scikit-learn's 2021 ``log_loss``: a zero becomes 1e-15 and the
    row is divided by its new sum.
    """
    proba = np.clip(np.asarray(proba, dtype=np.float64), eps, 1.0 - eps)
    return proba / proba.sum(axis=1, keepdims=True)


def row_log_loss(y_index, proba):
    """Return ``-log p[row, y_index[row]]`` of the clipped, renormalised probabilities."""
    proba = clip_and_normalise(proba)
    return -np.log(proba[np.arange(len(proba)), np.asarray(y_index)])


def class_wise_log_loss(y_index, proba):
    """Return the mean log loss of each class's rows, shape (n_classes,); NaN for absent classes."""
    y_index = np.asarray(y_index)
    n_classes = np.asarray(proba).shape[1]
    counts = np.bincount(y_index, minlength=n_classes).astype(np.float64)
    sums = np.bincount(y_index, weights=row_log_loss(y_index, proba), minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def class_wise_accuracy(y_index, pred_index, n_classes):
    """Return each class's accuracy (recall), shape (n_classes,); NaN for absent classes."""
    matrix = confusion_matrix(y_index, pred_index, n_classes)
    counts = matrix.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.diag(matrix) / counts, np.nan)


def confusion_matrix(y_index, pred_index, n_classes):
    """Return counts, shape (n_classes, n_classes): row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_index), np.asarray(pred_index)), 1)
    return matrix


def dcase_log_loss(y_index, proba):
    """Return the DCASE log loss: class-wise log loss averaged over the classes present."""
    return float(np.nanmean(class_wise_log_loss(y_index, proba)))


def dcase_accuracy(y_index, proba):
    """Return the class-wise averaged accuracy of the arg-max predictions."""
    proba = np.asarray(proba)
    return float(np.nanmean(class_wise_accuracy(y_index, proba.argmax(axis=1), proba.shape[1])))


def clip_probabilities(proba, clip_ids):
    """Sum each clip's segment probabilities and renormalise.

    Parameters
    ----------
    proba : ndarray, shape (n_segments, n_classes)
    clip_ids : array-like, shape (n_segments,)

    Returns
    -------
    clip_proba : ndarray, shape (n_clips, n_classes), rows summing to 1
    unique_ids : ndarray, shape (n_clips,), sorted clip ids
    segment_clip : ndarray of int, shape (n_segments,), each segment's row in ``clip_proba``
    """
    unique_ids, segment_clip = np.unique(np.asarray(clip_ids), return_inverse=True)
    proba = np.asarray(proba, dtype=np.float64)
    sums = np.zeros((len(unique_ids), proba.shape[1]))
    np.add.at(sums, segment_clip, proba)
    return sums / sums.sum(axis=1, keepdims=True), unique_ids, segment_clip


def clip_labels(y_index, segment_clip, n_clips):
    """Return each clip's label index; ValueError when a clip's segments disagree."""
    y_index = np.asarray(y_index)
    labels = np.full(n_clips, -1)
    labels[segment_clip] = y_index
    if (labels[segment_clip] != y_index).any():
        clip = int(segment_clip[np.flatnonzero(labels[segment_clip] != y_index)[0]])
        raise ValueError(f"clip row {clip} has segments with different labels")
    return labels


def summarise(y_index, proba, classes, *, pred=None):
    """Return the metrics of one set of predictions as a JSON-able dict.

    ``pred`` (class indices) are the decisions scored for accuracy; default the arg-max of
    ``proba``. Keys: ``log_loss`` (DCASE, macro), ``accuracy`` (class-wise averaged),
    ``overall_log_loss``, ``overall_accuracy``, ``n``, ``per_class`` ({class: {log_loss,
    accuracy, n}}), ``confusion``.
    """
    y_index = np.asarray(y_index)
    proba = np.asarray(proba, dtype=np.float64)
    pred = proba.argmax(axis=1) if pred is None else np.asarray(pred)
    losses = class_wise_log_loss(y_index, proba)
    accuracies = class_wise_accuracy(y_index, pred, len(classes))
    counts = np.bincount(y_index, minlength=len(classes))
    return {
        "log_loss": _number(np.nanmean(losses)),
        "accuracy": _number(np.nanmean(accuracies)),
        "overall_log_loss": _number(row_log_loss(y_index, proba).mean()),
        "overall_accuracy": _number((pred == y_index).mean()),
        "n": int(len(y_index)),
        "per_class": {
            str(c): {
                "log_loss": _number(losses[k]),
                "accuracy": _number(accuracies[k]),
                "n": int(counts[k]),
            }
            for k, c in enumerate(classes)
        },
        "confusion": confusion_matrix(y_index, pred, len(classes)).tolist(),
    }


def _number(value):
    """float, or None for NaN (JSON has no NaN)."""
    value = float(value)
    return None if np.isnan(value) else value


def _bootstrap_stats(weights, label_onehot, counts, losses, corrects):
    """Per-draw macro and overall metrics from per-clip sums; weights shape (n_draws, n_clips)."""
    count = weights @ (label_onehot * counts[:, None])
    loss = weights @ (label_onehot * losses[:, None])
    correct = weights @ (label_onehot * corrects[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        class_loss = np.where(count > 0, loss / count, np.nan)
        class_acc = np.where(count > 0, correct / count, np.nan)
    total = count.sum(axis=1)
    return {
        "log_loss": np.nanmean(class_loss, axis=1),
        "accuracy": np.nanmean(class_acc, axis=1),
        "overall_log_loss": loss.sum(axis=1) / total,
        "overall_accuracy": correct.sum(axis=1) / total,
    }


def bootstrap_intervals(
    y_index,
    proba,
    segment_clip,
    clip_proba,
    clip_y,
    *,
    n_bootstrap=1000,
    confidence=0.95,
    random_state=0,
    chunk=250,
    clip_pred=None,
):
    """Percentile bootstrap intervals of the segment- and clip-level metrics, resampling clips.

    Each draw picks ``n_clips`` clips with replacement; a clip drawn twice counts all its segments
    twice. ``clip_pred``: the clips' decisions (default the arg-max of ``clip_proba``). Returns
    ``{"segment": {metric: [low, high]}, "clip": {...}}``.
    """
    n_clips, n_classes = clip_proba.shape
    onehot = np.eye(n_classes)[clip_y]
    seg_counts = np.bincount(segment_clip, minlength=n_clips).astype(np.float64)
    seg_losses = np.bincount(segment_clip, weights=row_log_loss(y_index, proba), minlength=n_clips)
    seg_correct = np.bincount(
        segment_clip, weights=(np.asarray(proba).argmax(axis=1) == y_index), minlength=n_clips
    )
    clip_losses = row_log_loss(clip_y, clip_proba)
    clip_pred = clip_proba.argmax(axis=1) if clip_pred is None else np.asarray(clip_pred)
    clip_correct = (clip_pred == clip_y).astype(np.float64)
    rng = np.random.default_rng(random_state)
    draws = {"segment": [], "clip": []}
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        picks = rng.integers(0, n_clips, size=(size, n_clips))
        flat = (np.arange(size)[:, None] * n_clips + picks).ravel()
        weights = (
            np.bincount(flat, minlength=size * n_clips).reshape(size, n_clips).astype(np.float64)
        )
        draws["segment"].append(
            _bootstrap_stats(weights, onehot, seg_counts, seg_losses, seg_correct)
        )
        draws["clip"].append(
            _bootstrap_stats(weights, onehot, np.ones(n_clips), clip_losses, clip_correct)
        )
    tail = 100.0 * (1.0 - confidence) / 2.0
    out = {}
    for level, parts in draws.items():
        out[level] = {
            metric: [
                _number(v)
                for v in np.nanpercentile(
                    np.concatenate([p[metric] for p in parts]), [tail, 100.0 - tail]
                )
            ]
            for metric in parts[0]
        }
    return out


def evaluate(
    y,
    proba,
    *,
    classes,
    clip_ids,
    cities=None,
    seen_cities=None,
    n_bootstrap=1000,
    confidence=0.95,
    random_state=0,
    clip_proba=None,
    clip_pred=None,
):
    """Evaluate segment probabilities the DCASE 2021 Task 1B way, plus CIs and a per-city breakdown.

    Parameters
    ----------
    y : array-like, shape (n_segments,), true labels (members of ``classes``)
    proba : ndarray, shape (n_segments, len(classes)), columns in ``classes`` order
    classes : sequence of labels
    clip_ids : array-like, shape (n_segments,)
    cities : array-like, shape (n_segments,) or None
    seen_cities : collection of cities present in training, or None (unknown)
    n_bootstrap : int (0 disables the intervals)
    confidence : float
    random_state : int
    clip_proba : ndarray, shape (n_clips, len(classes)), optional
        Clip probabilities in the order of ``np.unique(clip_ids)``; default: each clip's segment
        probabilities summed and renormalised.
    clip_pred : ndarray of int, shape (n_clips,), optional
        Clip decisions (column indices) in the same order; default the arg-max of the clip
        probabilities.

    Returns
    -------
    dict with ``segment`` and ``clip`` (see :func:`summarise`, plus ``ci``), ``per_city``,
    ``bootstrap`` (settings) and ``n_clips``.
    """
    classes = [str(c) for c in classes]
    column = {c: k for k, c in enumerate(classes)}
    y = np.asarray(y).astype(str)
    unknown = [label for label in np.unique(y) if label not in column]
    if unknown:
        raise ValueError(f"label {unknown[0]!r} is not among the classes {classes}")
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape != (len(y), len(classes)):
        raise ValueError(f"proba has shape {proba.shape}, expected {(len(y), len(classes))}")
    y_index = np.array([column[label] for label in y], dtype=np.int64)
    summed, clip_names, segment_clip = clip_probabilities(proba, clip_ids)
    clip_proba, clip_pred = _clip_level(summed, clip_proba, clip_pred, len(classes))
    clip_y = clip_labels(y_index, segment_clip, len(clip_names))
    report = {
        "classes": classes,
        "n_clips": int(len(clip_names)),
        "segment": summarise(y_index, proba, classes),
        "clip": summarise(clip_y, clip_proba, classes, pred=clip_pred),
    }
    if n_bootstrap:
        intervals = bootstrap_intervals(
            y_index,
            proba,
            segment_clip,
            clip_proba,
            clip_y,
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            random_state=random_state,
            clip_pred=clip_pred,
        )
        report["segment"]["ci"] = intervals["segment"]
        report["clip"]["ci"] = intervals["clip"]
    report["bootstrap"] = {
        "n": int(n_bootstrap),
        "confidence": confidence,
        "unit": "clip",
        "note": "clips resampled with replacement (segments of a clip are correlated)",
    }
    if cities is not None:
        report["per_city"] = per_city(
            y_index,
            proba,
            segment_clip,
            clip_proba,
            clip_y,
            np.asarray(cities).astype(str),
            classes,
            seen_cities,
            clip_pred=clip_pred,
        )
    return report


def _clip_level(summed, clip_proba, clip_pred, n_classes):
    """The clip probabilities and decisions to score: given ones (checked) or the defaults."""
    if clip_proba is None:
        return summed, summed.argmax(axis=1) if clip_pred is None else np.asarray(clip_pred)
    clip_proba = np.asarray(clip_proba, dtype=np.float64)
    if clip_proba.shape != summed.shape:
        raise ValueError(f"clip_proba has shape {clip_proba.shape}, expected {summed.shape}")
    clip_pred = clip_proba.argmax(axis=1) if clip_pred is None else np.asarray(clip_pred)
    if (
        clip_pred.shape != (len(summed),)
        or (clip_pred < 0).any()
        or (clip_pred >= n_classes).any()
    ):
        raise ValueError(f"clip_pred must hold {len(summed)} class indices below {n_classes}")
    return clip_proba, clip_pred


def per_city(
    y_index,
    proba,
    segment_clip,
    clip_proba,
    clip_y,
    cities,
    classes,
    seen_cities,
    *,
    clip_pred=None,
):
    """Return ``{city: {seen_in_training, n_clips, segment: {...}, clip: {...}}}``.

    Within a city, averages run over the classes recorded there (cities lack some scenes).
    """
    clip_city = np.empty(len(clip_y), dtype=object)
    clip_city[segment_clip] = cities
    out = {}
    for city in sorted(set(cities.tolist())):
        rows = cities == city
        clips = clip_city == city
        seg = summarise(y_index[rows], proba[rows], classes)
        clip = summarise(
            clip_y[clips],
            clip_proba[clips],
            classes,
            pred=None if clip_pred is None else clip_pred[clips],
        )
        out[city] = {
            "seen_in_training": None if seen_cities is None else city in set(seen_cities),
            "n_clips": int(clips.sum()),
            "segment": {k: seg[k] for k in ("log_loss", "accuracy", "overall_accuracy", "n")},
            "clip": {k: clip[k] for k in ("log_loss", "accuracy", "overall_accuracy", "n")},
        }
    return out
