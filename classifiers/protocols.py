"""Test protocols of the DCASE 2021 Task 1B baseline on frame-level predictions.

The baseline scores a clip of N OpenL3 frames in two ways (``train/test_DCASE.py``,
``train/test.py`` of ``shanwangshan/TAU-urban-audio-visual-scenes``):

- **1-s segments, a frame pick.** A 10-s clip gives ten "1-s" predictions, each the softmax of
  ONE frame: frame ``int(x)`` for ``x`` in ``np.linspace(0, N, 10, endpoint=False)`` (frames 0,
  9, 19, 28, 38, 48, 57, 67, 76, 86 of 96). :func:`frame_pick` generalises the ten to the clip's
  number of segments S (the store's segment rule), so a 1-s clip is scored on frame 0.
- **The clip decision.** The label is the arg-max of the per-frame log-softmax summed over ALL
  the clip's frames; the clip's probabilities are the per-frame softmax averaged over all
  frames (:func:`clip_decision`). The arg-max of the summed log-probabilities can differ from
  the arg-max of the averaged probabilities.

Arrays in, arrays out; the rows of a clip need not be adjacent.
"""

import numpy as np

#: The values a run records under ``protocol`` (``run.json``).
ROWS = ("segments", "frames")
SEGMENT_RULES = ("pooled", "frame-pick")
CLIP_RULES = ("sum-proba", "sum-log-softmax")


def frame_pick(n_frames, n_segments):
    """Frame indices scored as the 1-s segments of each clip.

    Parameters
    ----------
    n_frames : array-like of int, shape (n_clips,)
        Frames of each clip (N >= 1).
    n_segments : array-like of int, shape (n_clips,)
        Segments of each clip (S >= 1).

    Returns
    -------
    clip : ndarray of int, shape (sum(S),)
        The clip (index into the inputs) of each picked frame, clips in input order.
    frame : ndarray of int, shape (sum(S),)
        The frame index within its clip: ``int(x) for x in np.linspace(0, N, S,
        endpoint=False)``, in segment order.
    """
    n_frames = np.asarray(n_frames, dtype=np.int64)
    n_segments = np.asarray(n_segments, dtype=np.int64)
    if n_frames.shape != n_segments.shape or n_frames.ndim != 1:
        raise ValueError(
            f"n_frames {n_frames.shape} and n_segments {n_segments.shape} must be "
            "1-D arrays of one length"
        )
    if n_frames.size and (n_frames.min() < 1 or n_segments.min() < 1):
        raise ValueError("every clip needs at least one frame and one segment")
    clip = np.repeat(np.arange(len(n_frames)), n_segments)
    frame = np.empty(len(clip), dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(n_segments)[:-1]]).astype(np.int64)
    pairs, inverse = np.unique(
        np.stack([n_frames, n_segments], axis=1), axis=0, return_inverse=True
    )
    inverse = inverse.reshape(-1)
    for k, (frames, segments) in enumerate(pairs):  # one linspace per distinct (N, S)
        picks = np.linspace(0, frames, segments, endpoint=False).astype(np.int64)
        frame[starts[inverse == k][:, None] + np.arange(segments)] = picks
    return clip, frame


def clip_decision(log_proba, clip_index, n_clips):
    """The baseline's clip decision from per-frame log-probabilities.

    Parameters
    ----------
    log_proba : ndarray, shape (n_frames, n_classes)
        Per-frame log-softmax.
    clip_index : ndarray of int, shape (n_frames,)
        The clip of each frame, in ``0 .. n_clips - 1``; every clip needs a frame.
    n_clips : int

    Returns
    -------
    clip_proba : ndarray, shape (n_clips, n_classes), float64
        The per-frame softmax averaged over each clip's frames.
    clip_pred : ndarray of int, shape (n_clips,)
        The arg-max of each clip's summed log-softmax.
    """
    log_proba = np.asarray(log_proba, dtype=np.float64)
    clip_index = np.asarray(clip_index, dtype=np.int64)
    counts = np.bincount(clip_index, minlength=n_clips)
    if counts.size != n_clips or (counts == 0).any():
        raise ValueError(f"every one of the {n_clips} clips needs at least one frame")
    summed = np.zeros((n_clips, log_proba.shape[1]))
    np.add.at(summed, clip_index, log_proba)
    proba = np.zeros_like(summed)
    np.add.at(proba, clip_index, np.exp(log_proba))
    return proba / counts[:, None], summed.argmax(axis=1)


def log_softmax(logits):
    """Row-wise log-softmax in float64, shape of ``logits``."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
