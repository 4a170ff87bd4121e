"""Named hyperparameter presets as plain dicts: ``fast`` (tests), ``default``, ``small``, ``paper``,
``dcase2021``.

Each preset maps a model or fusion name to keyword arguments of its estimator:

- ``lr`` -> :class:`classifiers.linear.LogisticClassifier`
- ``mlp`` -> :class:`classifiers.mlp.TorchMLPClassifier`
- ``lgbm`` -> :class:`classifiers.boosting.LightGBMClassifier`
- ``baseline`` -> overrides of :func:`classifiers.mlp.baseline_network` (the architecture is fixed)
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

PRESETS = {
    "fast": {
        "lr": {"C": 1.0, "max_iter": 50},
        "mlp": {"hidden": (32,), "max_epochs": 6, "batch_size": 64, "learning_rate": 3e-3},
        "lgbm": {"n_components": 8, "n_estimators": 20, "learning_rate": 0.3, "num_leaves": 7,
                 "min_child_samples": 5, "bagging_fraction": 0.8},
        "baseline": {"max_epochs": 4, "batch_size": 64, "learning_rate": 1e-3},
        "proposed": {"max_epochs": 4, "batch_size": 64, "learning_rate": 1e-3},
        "stack": {"n_splits": 3},
    },
    "default": {
        "lr": {"C": 1.0, "max_iter": 40},
        "mlp": {"hidden": (256,), "max_epochs": 6, "batch_size": 1024, "learning_rate": 2e-3,
                "patience": 2},
        "lgbm": {"n_components": 64, "n_estimators": 100, "learning_rate": 0.2, "num_leaves": 15,
                 "bagging_fraction": 0.3, "feature_fraction": 0.5, "early_stopping_rounds": 10},
        "baseline": {"max_epochs": 4, "batch_size": 1024, "learning_rate": 2e-3},
        "proposed": {"max_epochs": 5, "batch_size": 1024, "learning_rate": 2e-3, "patience": 2,
                     "members": {"baseline": {"max_epochs": 3}}},
        "stack": {"n_splits": 3, "members": {"lr": {"max_iter": 20}}},
    },
    "small": {
        "lr": {"C": 1.0, "max_iter": 200},
        "mlp": {"hidden": (256,), "max_epochs": 60, "batch_size": 64, "learning_rate": 1e-3,
                "patience": 8},
        "lgbm": {"n_components": 32, "n_estimators": 200, "learning_rate": 0.1, "num_leaves": 7,
                 "min_child_samples": 5, "bagging_fraction": 0.8, "feature_fraction": 0.5,
                 "early_stopping_rounds": 20},
        "baseline": {"max_epochs": 60, "batch_size": 64, "learning_rate": 1e-3, "patience": 8},
        "proposed": {"max_epochs": 60, "batch_size": 64, "learning_rate": 1e-3, "patience": 8},
        "stack": {"n_splits": 3},
    },
    "paper": {
        "lr": {"C": 1.0, "max_iter": 200},
        "mlp": {"hidden": (512, 128), "max_epochs": 50, "batch_size": 256, "learning_rate": 1e-3,
                "patience": 10},
        "lgbm": {"n_components": None, "n_estimators": 500, "learning_rate": 0.05,
                 "num_leaves": 31, "bagging_fraction": 0.8, "feature_fraction": 0.25,
                 "early_stopping_rounds": 30},
        "baseline": {},
        "proposed": {"max_epochs": 99, "batch_size": 64, "learning_rate": 1e-4},
        "stack": {"n_splits": 5},
    },
    "dcase2021": {
        "baseline": {"max_epochs": 199, "batch_size": 64, "learning_rate": 1e-4,
                     "weight_decay": 1e-4, "drop_last": True, "standardize": False,
                     "val_loss": "batches", "ties": "last", "validation_fraction": 0.0},
        "proposed": {"max_epochs": 99, "batch_size": 64, "learning_rate": 1e-4,
                     "weight_decay": 1e-4, "drop_last": True, "val_loss": "batches",
                     "ties": "last", "validation_fraction": 0.0},
    },
}

#: Presets that are whole recipes (frame-level rows, fixed normalisation, their own split and
#: test protocol), with the models and fusions they cover.
RECIPES = {"dcase2021": {"models": ("baseline",), "fusions": ("none", "early", "proposed")}}


def get_preset(name):
    """Return a deep copy of preset ``name``; ValueError naming the known presets otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def check_recipe(name, models, fusion):
    """ValueError (one line) when a recipe preset is asked for a model or fusion it lacks."""
    recipe = RECIPES.get(name)
    if recipe is None:
        return
    bad = sorted(set(models) - set(recipe["models"]))
    if bad or fusion not in recipe["fusions"]:
        raise ValueError(f"--preset {name} is the DCASE 2021 baseline recipe: --model "
                         f"{' or '.join(recipe['models'])} with --fusion "
                         f"{', '.join(recipe['fusions'])} (got model {', '.join(bad) or 'baseline'}"
                         f", fusion {fusion})")
