"""Types the jobs share: paths (:data:`PathLike`), run records (:data:`RunRecord`) and the
input of the training jobs (:class:`TrainSpec`).

``avscene train`` builds a :class:`TrainSpec` from its options;
:func:`pipelines.jobs.training.train` (in this process) and
:func:`pipelines.jobs.dask_training.train` (on a Dask cluster) take it and return the run record
(:data:`RunRecord`, what ``run.json`` holds).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

#: A path as the job takes it: a string or an ``os.PathLike``.
PathLike = str | os.PathLike
#: A run record: what ``run.json`` holds.
RunRecord = dict[str, Any]


def _command_line() -> str:
    return "avscene " + " ".join(sys.argv[1:])


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainSpec:
    """Everything a training job reads: the options of ``avscene train``, typed.

    Attributes
    ----------
    store : str
        Feature store: a directory or an fsspec URL.
    features : tuple of str
        Feature names, in column order.
    out : path
        The run directory to write.
    model : str
        One model for every feature (``lr``) or one per feature (``video=lgbm,audio=lr``).
    fusion, preset, pooling : str
        As :func:`classifiers.systems.make_system` and the store's segment poolings take them.
    train_fold : str
        Fold of the store to train on.
    val_fraction : float
        Share of training rows held out as whole locations (0: none).
    split : path, optional
        A split file (``clip_id,role`` or the baseline's ``val.csv``).
    from_checkpoint : tuple of paths, optional
        The baseline's state dicts to make the run from instead of training.
    mean_std : tuple of (feature key, path), optional
        ``global_mean_std.npz`` files of the recipe's normalisation.
    temperature : bool
        Fit a temperature on the validation segments.
    seed : int
        Random seed of splits and models.
    threads : int, optional
        CPU threads of this process (None: the libraries' own choice).
    overwrite : bool
        Replace an existing run directory.
    dask : str, optional
        Address of a Dask scheduler (:func:`pipelines.jobs.dask_training.train`).
    dask_local : int, optional
        Worker processes of a local Dask cluster.
    command : str
        The command line recorded in ``run.json`` (default: this process's arguments).
    """

    store: str
    features: tuple[str, ...]
    out: PathLike
    model: str = "lr"
    fusion: str = "none"
    preset: str = "default"
    pooling: str = "mean"
    train_fold: str = "train"
    val_fraction: float = 0.1
    split: PathLike | None = None
    from_checkpoint: tuple[PathLike, ...] | None = None
    mean_std: tuple[tuple[str, PathLike], ...] | None = None
    temperature: bool = True
    seed: int = 0
    threads: int | None = None
    overwrite: bool = False
    dask: str | None = None
    dask_local: int | None = None
    command: str = dataclasses.field(default_factory=_command_line)

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))

    @property
    def uses_dask(self) -> bool:
        """Whether the spec asks for a Dask cluster (:mod:`pipelines.jobs.dask_training`)."""
        return bool(self.dask or self.dask_local)
