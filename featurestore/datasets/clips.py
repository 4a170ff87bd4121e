"""The clip record shared by manifests, the extraction job and the feature store."""

from dataclasses import dataclass, replace

#: Fold names. ``train``/``evaluate``/``test`` come from ``evaluation_setup/fold1_*.csv`` of the
#: development set; ``eval`` marks clips of the (unlabelled) challenge evaluation set.
FOLDS = ("train", "evaluate", "test", "eval")


@dataclass(frozen=True)
class Clip:
    """One audio-visual clip of a dataset.

    Attributes
    ----------
    clip_id : str
        Unique id: the media file stem (``airport-lisbon-1000-40000``; ``0`` in the evaluation set).
    audio, video : str or None
        Media paths relative to the dataset root, POSIX separators (``audio/<stem>.wav``);
        None when the manifest has no such modality.
    scene : str
        Scene label, ``""`` when unlabelled.
    city : str
        Lower-case city, ``""`` when unknown.
    location : str
        Recording-location identifier ``<city>-<location_id>`` (``lisbon-1000``), ``""`` when unknown.
        Validation splits group by this, never by row.
    folds : tuple of str
        Fold memberships (see :data:`FOLDS`); a clip may be in several (``evaluate`` and ``test``).
    duration : float or None
        Length in seconds, filled in by probing the media; None until then.
    """

    clip_id: str
    audio: str | None
    video: str | None
    scene: str = ""
    city: str = ""
    location: str = ""
    folds: tuple[str, ...] = ()
    duration: float | None = None

    def with_duration(self, seconds):
        """Return a copy with ``duration`` set."""
        return replace(self, duration=float(seconds))
