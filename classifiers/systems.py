"""Build an estimator from (features, model per feature, fusion mode, preset): the CLI's vocabulary.

The literature's systems as configurations (DCASE 2021 Task 1B baseline repository):

=========================  =======================================================
audio only / video only    ``model="baseline", fusion="none"`` on one feature
early A-V fusion           ``model="baseline", fusion="early"`` (1024-d input)
late fusion                ``fusion="late"`` (averaged probabilities)
proposed = DCASE baseline  ``model="baseline", fusion="proposed"``
=========================  =======================================================

Beyond them: any model per feature (``{"openl3_video": "lgbm", "openl3_audio": "lr"}``),
``fusion="weighted"`` (late fusion with weights fitted on validation data) and ``fusion="stack"``.
"""

from classifiers import registry
from classifiers.fusion import LateFusion, ProposedFusion, StackingFusion
from classifiers.presets import check_recipe, get_preset

#: The models, by ``--model`` name (:data:`classifiers.registry.MODELS`, the same dict).
MODELS = registry.MODELS
FUSIONS = ("none", "early", "late", "weighted", "stack", "proposed")


def make_estimator(model, *, preset="default", random_state=0, n_jobs=None, overrides=None):
    """Return an unfitted estimator for ``model`` (a name of :data:`MODELS`) with a preset's
    settings (its registry entry's).

    ``n_jobs`` (None: each estimator's own default) sets the threads of the estimator's library;
    ``overrides`` (dict) replaces preset settings.
    """
    params = {**registry.settings(model, preset), **(overrides or {})}
    params["random_state"] = random_state
    if n_jobs is not None:
        params["n_jobs"] = n_jobs
    return registry.model(model).make(**params)


def parse_models(spec, features):
    """Return ``{feature: model}`` from ``"lr"`` or ``"video=lgbm,audio=lr"``.

    A key names a feature exactly or by a substring that matches exactly one feature
    (``video`` -> ``openl3_video``). Every feature needs a model.
    """
    spec = spec.strip()
    if "=" not in spec:
        return dict.fromkeys(features, spec)
    models = {}
    for item in spec.split(","):
        key, _, model = item.partition("=")
        key, model = key.strip(), model.strip()
        matches = [f for f in features if f == key] or [f for f in features if key in f]
        if len(matches) != 1:
            raise ValueError(
                f"--model key {key!r} matches {len(matches)} of the features {list(features)}"
            )
        models[matches[0]] = model
    missing = [f for f in features if f not in models]
    if missing:
        raise ValueError(f"--model gives no model for feature {missing[0]!r}")
    return models


def feature_columns(dims):
    """Return ``{feature: slice}`` for features side by side in ``{feature: dim}`` order."""
    columns, start = {}, 0
    for feature, dim in dims.items():
        columns[feature] = slice(start, start + int(dim))
        start += int(dim)
    return columns


def make_system(dims, models, fusion, *, preset="default", random_state=0, n_jobs=None):
    """Return the estimator of a system over the concatenated features.

    Parameters
    ----------
    dims : dict ``{feature: dim}`` in column order of X
    models : dict ``{feature: model}`` (see :func:`parse_models`)
    fusion : one of :data:`FUSIONS`
    preset : str
    random_state : int
    n_jobs : int or None
    """
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; choose from {', '.join(FUSIONS)}")
    features = list(dims)
    kinds = sorted({models[f] for f in features})
    check_recipe(preset, kinds, fusion)
    if fusion == "none" and len(features) != 1:
        raise ValueError(
            f"{len(features)} features need a fusion mode (early, late, weighted, stack, proposed)"
        )
    if fusion != "none" and len(features) < 2:
        raise ValueError(f"fusion {fusion!r} needs at least two features")
    if fusion in ("none", "early"):
        if len(kinds) != 1:
            raise ValueError(f"fusion {fusion!r} fits one model on all features, got {kinds}")
        return make_estimator(kinds[0], preset=preset, random_state=random_state, n_jobs=n_jobs)
    if fusion == "proposed" and kinds != ["baseline"]:
        raise ValueError(
            f"fusion 'proposed' trains baseline networks per feature, got models {kinds}"
        )
    columns = feature_columns(dims)
    settings = get_preset(preset).get(fusion, {})
    member_overrides = settings.pop("members", {})
    members = [
        (
            f,
            make_estimator(
                models[f],
                preset=preset,
                random_state=random_state,
                n_jobs=n_jobs,
                overrides=member_overrides.get(models[f]),
            ),
            columns[f],
        )
        for f in features
    ]
    if fusion in ("late", "weighted"):
        return LateFusion(members, fit_weights=fusion == "weighted", random_state=random_state)
    if fusion == "stack":
        return StackingFusion(members, random_state=random_state, **settings)
    if n_jobs is not None:
        settings["n_jobs"] = n_jobs
    return ProposedFusion(members, random_state=random_state, **settings)
