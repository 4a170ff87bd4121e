"""Named hyperparameter presets as plain dicts: ``fast`` (tests), ``default``, ``small``, ``paper``,
``dcase2021``.

Each preset maps a model or fusion name to keyword arguments of its estimator. A model's
settings under every preset sit in its entry of :mod:`classifiers.registry` (``lr``, ``mlp``,
``lgbm``, and ``baseline``: overrides of :func:`classifiers.mlp.baseline_network`, whose
architecture is fixed); the fusions' are here (:data:`FUSION_SETTINGS`):

- ``proposed`` -> the head of :class:`classifiers.fusion.ProposedFusion`
- ``stack`` -> :class:`classifiers.fusion.StackingFusion`

Inside ``proposed`` and ``stack``, an optional ``members`` dict overrides the settings of the
per-modality models used there (the fusion trains several of them, so the budget asks for less
of each: 3 epochs per branch, 20 L-BFGS iterations per fold model, which the meta-classifier or
the head compensates for).

``default`` is sized so every single experiment on TAU-sized features (86,000 x 1024 training
rows) stays within ~30 s on 2 cores (see benchmarks/bench_classifiers.py): the baseline network
keeps its architecture, Adam and weight decay, but trains 4 epochs with batch 1024 at lr 2e-3
instead of up to 199 epochs with batch 64 at lr 1e-4 (~5 s per epoch per branch on one core here;
batch 64 costs ~7 s per epoch); stacking uses 3 grouped folds (2 folds saved ~20% of the time
but raised the benchmark's test log loss from 0.34 to 0.40). ``small`` suits corpora of a few thousand segments (the demo's): batch 64 and enough epochs,
with early stopping on the validation locations, for the networks to converge. ``paper`` restores the baseline's
training settings (hours on a CPU) and 5-fold stacking, on per-second segments.

``dcase2021`` is the baseline recipe (``--model baseline`` with ``--fusion none``, ``early`` or
``proposed`` only): the settings of its ``train/train.py`` and ``train_combine/train.py`` (Adam
lr 1e-4, weight decay 1e-4, batch 64, ``drop_last``, 199 epochs per network and 99 for the
fusion head, validation loss as the mean of per-batch losses, ties to the later epoch) and no
standardisation inside the networks: the pipeline normalises every frame first
(:class:`classifiers.scaling.NormalisedClassifier`) and trains on frames, not segments
(:data:`RECIPES`).
"""

import copy

from classifiers import registry

#: The fusions' settings per preset (each model's settings: its entry in
#: :mod:`classifiers.registry`).
FUSION_SETTINGS = {
    "fast": {
        "proposed": {"max_epochs": 4, "batch_size": 64, "learning_rate": 1e-3},
        "stack": {"n_splits": 3},
    },
    "default": {
        "proposed": {
            "max_epochs": 5,
            "batch_size": 1024,
            "learning_rate": 2e-3,
            "patience": 2,
            "members": {"baseline": {"max_epochs": 3}},
        },
        "stack": {"n_splits": 3, "members": {"lr": {"max_iter": 20}}},
    },
    "small": {
        "proposed": {"max_epochs": 60, "batch_size": 64, "learning_rate": 1e-3, "patience": 8},
        "stack": {"n_splits": 3},
    },
    "paper": {
        "proposed": {"max_epochs": 99, "batch_size": 64, "learning_rate": 1e-4},
        "stack": {"n_splits": 5},
    },
    "dcase2021": {
        "proposed": {
            "max_epochs": 99,
            "batch_size": 64,
            "learning_rate": 1e-4,
            "weight_decay": 1e-4,
            "drop_last": True,
            "val_loss": "batches",
            "ties": "last",
            "validation_fraction": 0.0,
        },
    },
}
if set(FUSION_SETTINGS) != set(registry.PRESETS):
    raise ValueError(
        "classifiers.presets: FUSION_SETTINGS needs exactly the presets of "
        f"classifiers.registry.PRESETS ({', '.join(registry.PRESETS)})"
    )

#: Presets that are whole recipes (frame-level rows, fixed normalisation, their own split and
#: test protocol), with the fusions they cover; they train the models that give them settings.
RECIPES = {"dcase2021": {"fusions": ("none", "early", "proposed")}}


def get_preset(name):
    """Return a deep copy of preset ``name``: ``{model or fusion: keyword arguments}``.

    The models are those of :data:`classifiers.registry.MODELS` that the preset trains.
    ValueError naming the known presets for an unknown name.
    """
    registry.check_preset(name)
    models = {
        model: entry.presets[name]
        for model, entry in registry.MODELS.items()
        if entry.presets[name] is not None
    }
    return copy.deepcopy({**models, **FUSION_SETTINGS[name]})


def check_recipe(name, models, fusion):
    """ValueError (one line) when a recipe preset is asked for a model or fusion it lacks."""
    recipe = RECIPES.get(name)
    if recipe is None:
        return
    trained = [
        model for model, entry in registry.MODELS.items() if entry.presets[name] is not None
    ]
    bad = sorted(set(models) - set(trained))
    if bad or fusion not in recipe["fusions"]:
        raise ValueError(
            f"--preset {name} is the DCASE 2021 baseline recipe: --model "
            f"{' or '.join(trained)} with --fusion "
            f"{', '.join(recipe['fusions'])} (got model {', '.join(bad or models)}"
            f", fusion {fusion})"
        )
