"""``avscene train ... --from-checkpoint PATH[,PATH...]``: the baseline's trained networks as a run.

Instead of training, the state dicts are read (``torch.load(..., weights_only=True)``), every
key and shape is checked against the architecture (:mod:`classifiers.dcase_checkpoints`), and the
networks become the run's fitted estimator, behind the recipe's normalisation
(:class:`~classifiers.scaling.NormalisedClassifier`). The paths, one per part:

- ``--fusion none``: the ``l3_dense(dim, 10)`` of the one feature;
- ``--fusion early``: the ``l3_dense(sum of dims, 10)`` of the features side by side;
- ``--fusion proposed``: one ``l3_dense(dim, 10)`` per feature, in ``--features`` order, then the
  ``l3_combine`` head.

Output column k is the baseline's class k: the ten scenes in alphabetical order. Each file's
sha256 goes into the run record (``checkpoints``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from featurestore.datasets import SCENES
from featurestore.errors import CheckpointError
from featurestore.provenance import sha256_file
from pipelines.jobs import runs
from pipelines.jobs.specs import TrainSpec

FUSIONS = ("none", "early", "proposed")


def parts(spec: TrainSpec, features: Sequence[str]) -> list[str]:
    """The part each ``from_checkpoint`` path is (feature names, ``"+"``-joined, or ``head``)."""
    if spec.model != "baseline" or spec.fusion not in FUSIONS:
        raise runs.RunFormatError(
            f"--from-checkpoint loads the baseline's networks: --model "
            f"baseline with --fusion {', '.join(FUSIONS)} (got --model "
            f"{spec.model} --fusion {spec.fusion})"
        )
    if spec.preset not in ("default", "dcase2021"):
        raise runs.RunFormatError(
            "--from-checkpoint uses the dcase2021 recipe's protocol; "
            f"--preset {spec.preset} does not apply"
        )
    if spec.fusion == "none" and len(features) != 1:
        raise runs.RunFormatError(f"{len(features)} features need --fusion early or proposed")
    if spec.fusion != "none" and len(features) < 2:
        raise runs.RunFormatError(f"--fusion {spec.fusion} needs at least two features")
    wanted = list(features) + ["head"] if spec.fusion == "proposed" else ["+".join(features)]
    checkpoints = spec.from_checkpoint or ()
    if len(checkpoints) != len(wanted):
        raise runs.RunFormatError(
            f"--fusion {spec.fusion} with {len(features)} features needs {len(wanted)} "
            f"checkpoints ({', '.join(wanted)}), got {len(checkpoints)}"
        )
    return wanted


def read_states(spec: TrainSpec, features: Sequence[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """``[(part, path, state dict)]`` of the ``from_checkpoint`` files, each checked readable."""
    from classifiers import dcase_networks

    loaded = []
    for part, path in zip(parts(spec, features), spec.from_checkpoint or ()):
        try:
            state = dcase_networks.read_state_dict(path)
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no such checkpoint file") from None
        except (OSError, ValueError) as error:
            raise CheckpointError(
                str(error) if str(path) in str(error) else f"{path}: {error}"
            ) from None
        loaded.append((part, str(path), state))
    return loaded


def system(
    loaded: Sequence[tuple[str, str, dict[str, Any]]],
    features: Sequence[str],
    dims: dict[str, int],
) -> Any:
    """The fitted network (or proposed fusion) of checked state dicts, over unnormalised columns."""
    from classifiers import dcase_checkpoints
    from classifiers.systems import feature_columns

    columns = feature_columns(dims)
    if len(loaded) == 1:
        part, path, state = loaded[0]
        return dcase_checkpoints.l3_dense_classifier(
            state, in_dim=sum(dims.values()), classes=list(SCENES), path=path
        )
    branches = [
        dcase_checkpoints.l3_dense_classifier(
            state, in_dim=dims[part], classes=list(SCENES), path=path
        )
        for part, path, state in loaded[:-1]
    ]
    _, head_path, head_state = loaded[-1]
    return dcase_checkpoints.proposed_fusion(
        branches,
        head_state,
        columns=[columns[f] for f in features],
        names=features,
        path=head_path,
    )


def normalised_run(network: Any, mean: ArrayLike, std: ArrayLike) -> Any:
    """The run's estimator: fixed ``(x - mean) / std`` in front of the loaded network."""
    from classifiers.scaling import NormalisedClassifier

    estimator = NormalisedClassifier(network, mean=mean, std=std)
    estimator.estimator_, estimator.classes_ = network, network.classes_
    estimator.mean_ = np.asarray(mean, dtype=np.float64)
    estimator.scale_ = np.asarray(std, dtype=np.float64)
    estimator.source_, estimator.n_features_in_ = "given", len(estimator.mean_)
    return estimator


def record(loaded: Sequence[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The run record's ``checkpoints``: part, absolute path and sha256 of every file."""
    return [
        {
            "part": part,
            "path": os.path.abspath(path),
            "sha256": sha256_file(path),
            "keys": len(state),
        }
        for part, path, state in loaded
    ]
