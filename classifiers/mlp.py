"""Multi-layer perceptron classifier trained with PyTorch (CPU or GPU), predicting with numpy.

Chosen over ``sklearn.neural_network.MLPClassifier`` because the same network trains faster in
torch on CPU (bf16 autocast where the hardware has it; figures: docs/benchmarks.md) and torch
brings BatchNorm, weight decay and a GPU when one is present.
Without torch, :meth:`TorchMLPClassifier.fit` raises ImportError naming the fix; fitted models
still load and predict without torch.

:func:`baseline_network` configures the DCASE 2021 Task 1B per-modality network ``l3_dense``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin

from classifiers import dcase_networks
from classifiers.fitting import start_fit
from classifiers.linear import softmax
from classifiers.protocols import log_softmax
from classifiers.scaling import maybe_standardize


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """MLP: per hidden layer Linear, BatchNorm, ReLU, Dropout; Adam on cross-entropy.

    Parameters
    ----------
    hidden : tuple of int
        Hidden layer widths.
    dropout : float
    batch_norm : bool
    learning_rate, weight_decay : float
        Adam's settings.
    batch_size : int
    max_epochs : int
    patience : int or None
        Early stopping after this many epochs without a lower validation loss.
    validation_fraction : float
        Held out of the training rows for keeping the best epoch when ``fit`` gets no
        ``eval_set``: whole locations when ``groups`` is given, else stratified rows. 0 disables.
    drop_last : bool
        Drop each epoch's incomplete last batch (the baseline does).
    bf16 : bool
        bfloat16 autocast in training (parameters stay float32).
    standardize : bool
        Z-score the features with training statistics first.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
    n_jobs : int or None
        torch CPU threads while fitting (None: torch's default).
    random_state : int or None
    val_loss : {"rows", "batches"}
        Validation loss as the exact mean over rows, or the baseline's mean of per-batch losses
        (see :func:`classifiers.dcase_networks.train_network`).
    ties : {"first", "last"}
        Which epoch is kept when several share the lowest validation loss ("last": the
        baseline's rule).

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
    kinds_ : list of str, the module kinds of the network
    state_ : dict of ndarray, the network's weights (best validation epoch)
    history_ : list of dict, per-epoch ``train_loss`` and ``val_loss``
    best_epoch_ : int
    module_ : torch.nn.Sequential, the trained network (only in the fitting process; not pickled)
    """

    def __init__(
        self,
        *,
        hidden: Sequence[int] = (256,),
        dropout: float = 0.2,
        batch_norm: bool = True,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 512,
        max_epochs: int = 10,
        patience: int | None = None,
        validation_fraction: float = 0.1,
        drop_last: bool = True,
        bf16: bool = False,
        standardize: bool = True,
        device: str = "auto",
        n_jobs: int | None = None,
        random_state: int | None = None,
        val_loss: str = "rows",
        ties: str = "first",
    ) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.drop_last = drop_last
        self.bf16 = bf16
        self.standardize = standardize
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.val_loss = val_loss
        self.ties = ties

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        groups: ArrayLike | None = None,
        eval_set: tuple[ArrayLike, ArrayLike] | None = None,
    ) -> Self:
        """Fit on ``X`` (n_rows, dim), ``y`` (n_rows,); see the class doc for groups/eval_set."""
        torch = dcase_networks.import_torch("TorchMLPClassifier")
        X_fit, y_fit, X_val, y_val, seed = start_fit(self, X, y, groups=groups, eval_set=eval_set)
        with dcase_networks.torch_threads(self.n_jobs), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = dcase_networks.build_mlp(
                X_fit.shape[1],
                tuple(self.hidden),
                len(self.classes_),
                dropout=self.dropout,
                batch_norm=self.batch_norm,
            )
            self.history_ = dcase_networks.train_network(
                module,
                X_fit,
                y_fit,
                X_val=X_val,
                y_val=y_val,
                learning_rate=self.learning_rate,
                weight_decay=self.weight_decay,
                batch_size=self.batch_size,
                max_epochs=self.max_epochs,
                patience=self.patience,
                drop_last=self.drop_last,
                bf16=self.bf16,
                device=self.device,
                seed=seed,
                val_loss=self.val_loss,
                ties=self.ties,
            )
        self.module_ = module.cpu().eval()
        self.kinds_ = dcase_networks.module_kinds(module)
        self.state_ = dcase_networks.state_to_numpy(module)
        self.best_epoch_ = dcase_networks.best_epoch(self.history_, ties=self.ties)
        self.n_features_in_ = X_fit.shape[1]
        return self

    def transform_hidden(self, X: ArrayLike, *, n_modules: int | None) -> NDArray[Any]:
        """Return the outputs of the first ``n_modules`` modules (eval mode), shape (n_rows, width)."""
        X = maybe_standardize(X, self.scaler_)
        return dcase_networks.numpy_forward(self.kinds_, self.state_, X, n_modules=n_modules)

    def decision_function(self, X: ArrayLike) -> NDArray[Any]:
        """Return the logits, shape (n_rows, n_classes)."""
        return self.transform_hidden(X, n_modules=None)

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Return class probabilities, shape (n_rows, n_classes), columns in ``classes_`` order."""
        return softmax(self.decision_function(X).astype(np.float64))

    def predict_log_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Return the log-softmax of the logits, shape (n_rows, n_classes), float64."""
        return log_softmax(self.decision_function(X))

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Return the most probable class of each row."""
        return self.classes_[self.decision_function(X).argmax(axis=1)]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("module_", None)  # numpy weights in state_ are the portable copy
        return state


#: The DCASE 2021 Task 1B baseline's per-modality network and training (train/train.py).
BASELINE_NETWORK: dict[str, Any] = {
    "hidden": (512, 128, 64),
    "dropout": 0.2,
    "batch_norm": True,
    "learning_rate": 1e-4,
    "weight_decay": 1e-4,
    "batch_size": 64,
    "max_epochs": 199,
    "drop_last": True,
    "standardize": True,
}


def baseline_network(**overrides: Any) -> TorchMLPClassifier:
    """Return a :class:`TorchMLPClassifier` configured as the baseline ``l3_dense`` network.

    512-512-128-64-10 (for 512-d input) with BatchNorm, ReLU, Dropout 0.2; Adam lr 1e-4,
    weight decay 1e-4, batch 64, epochs 1..199 (``range(1, 200)``), lowest validation loss kept.
    ``overrides`` replace any of these (e.g. fewer epochs to fit a time budget).
    """
    return TorchMLPClassifier(**{**BASELINE_NETWORK, **overrides})
