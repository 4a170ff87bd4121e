"""Random-but-structured audio and video segment features for tests and benchmarks.

The structure mirrors what matters for classifiers and fusion on TAU Urban Audio-Visual Scenes:

- classes are complementary across modalities: audio confuses the class pairs (0, 1), (2, 3), ...
  and video the pairs (1, 2), (3, 4), ..., (K-1, 0), so each modality alone confuses every class
  with one neighbour while the two together separate all of them;
- every location adds its own offset (a recording's acoustic/visual signature) and every clip
  another one, so segments of a clip are correlated and a row-wise split leaks locations;
- each location belongs to one city and one class; some cities lack some classes.
"""

import numpy as np

from featurestore.datasets import SCENES


def class_names(n_classes):
    """The DCASE scene names for 10 classes, else ``class0``, ``class1``, ..."""
    return list(SCENES) if n_classes == len(SCENES) else [f"class{k}" for k in range(n_classes)]


def make_av_features(
    *,
    n_clips=400,
    segments_per_clip=10,
    dim_audio=64,
    dim_video=64,
    n_classes=10,
    locations_per_class=6,
    n_cities=5,
    pair_separation=4.0,
    within_pair_separation=1.2,
    location_scale=0.35,
    clip_scale=0.35,
    random_state=0,
):
    """Return a dict of per-segment arrays (all rows aligned, float32 features).

    Parameters
    ----------
    n_clips : int
        Clips, spread evenly over classes and their locations.
    segments_per_clip : int
    dim_audio, dim_video : int
    n_classes : int, even
    locations_per_class : int
    n_cities : int
    pair_separation : float
        Distance (in noise standard deviations) between class-pair prototypes in each modality.
    within_pair_separation : float
        Distance between the two classes of a confusable pair (small: hard without the other
        modality).
    location_scale, clip_scale : float
        Standard deviation (per dimension, relative to the unit segment noise) of the location
        and clip offsets.
    random_state : int

    Returns
    -------
    dict with ``audio`` (n, dim_audio), ``video`` (n, dim_video), ``y`` (class names),
    ``clip_id``, ``second``, ``location``, ``city`` (all shape (n,), n = n_clips * segments_per_clip)
    """
    if n_classes % 2:
        raise ValueError(f"n_classes must be even, got {n_classes}")
    rng = np.random.default_rng(random_state)
    names = class_names(n_classes)
    pair_audio = np.arange(n_classes) // 2
    pair_video = ((np.arange(n_classes) + 1) % n_classes) // 2

    def prototypes(dim, pair):
        centre = rng.standard_normal((n_classes // 2, dim)) * pair_separation / np.sqrt(2 * dim)
        own = rng.standard_normal((n_classes, dim)) * within_pair_separation / np.sqrt(2 * dim)
        return centre[pair] + own

    proto = {
        "audio": prototypes(dim_audio, pair_audio),
        "video": prototypes(dim_video, pair_video),
    }
    dims = {"audio": dim_audio, "video": dim_video}
    n_locations = n_classes * locations_per_class
    location_class = np.repeat(np.arange(n_classes), locations_per_class)
    location_city = rng.integers(0, n_cities, n_locations)
    location_offset = {
        m: rng.standard_normal((n_locations, d)) * location_scale for m, d in dims.items()
    }
    clip_location = np.arange(n_clips) % n_locations
    clip_offset = {m: rng.standard_normal((n_clips, d)) * clip_scale for m, d in dims.items()}
    row_clip = np.repeat(np.arange(n_clips), segments_per_clip)
    row_location = clip_location[row_clip]
    row_class = location_class[row_location]
    out = {}
    for m, d in dims.items():
        values = rng.standard_normal((len(row_clip), d), dtype=np.float32)
        values += (
            proto[m][row_class] + location_offset[m][row_location] + clip_offset[m][row_clip]
        ).astype(np.float32)
        out[m] = values
    cities = np.array([f"city{c}" for c in range(n_cities)])
    location_names = np.array([f"{cities[location_city[g]]}-{g}" for g in range(n_locations)])
    clip_names = np.array(
        [
            f"{names[location_class[g]]}-{location_names[g]}-{c}"
            for c, g in enumerate(clip_location)
        ]
    )
    out.update(
        {
            "y": np.array(names)[row_class],
            "clip_id": clip_names[row_clip],
            "second": np.tile(np.arange(segments_per_clip), n_clips),
            "location": location_names[row_location],
            "city": cities[location_city[row_location]],
        }
    )
    return out
