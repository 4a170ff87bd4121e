"""The DCASE 2021 Task 1B baseline networks in PyTorch, their training loop, and numpy inference.

Networks (``shanwangshan/TAU-urban-audio-visual-scenes``, ``train/model.py`` and
``train_combine/model_combine.py``):

- ``l3_dense(emb_dim, 10)``: Linear(emb_dim, 512)-BN-ReLU-Dropout(0.2)-Linear(512, 128)-BN-ReLU-
  Dropout(0.2)-Linear(128, 64)-BN-ReLU-Dropout(0.2)-Linear(64, 10) -- :func:`l3_dense`.
- ``l3_combine(256, 10)``: Linear(256, 128) -> Linear(128, 10), no nonlinearity between -- applied
  to the concatenated outputs of the first 5 modules of the frozen audio and video ``l3_dense``
  nets (Linear 512->512, BN, ReLU, Dropout, Linear 512->128) -- :func:`proposed_head`.

Training (:func:`train_network`): cross-entropy, Adam, optional weight decay, shuffled batches with
``drop_last``, the state with the lowest validation loss kept. The baseline's own selection
(``train/train.py``) keeps the later epoch on a tie (``ties="last"``) and measures the
validation loss as the mean of per-batch losses over shuffled batches with ``drop_last``
(``val_loss="batches"``); avscene's default is the exact mean over all validation rows and the
earlier epoch on a tie.

:func:`read_state_dict` reads a saved PyTorch state dict (the baseline's checkpoints) with
``torch.load(weights_only=True)``, never unpickling anything else.

torch is imported inside the functions only. A trained network is kept as a numpy state dict plus
a list of module kinds; :func:`numpy_forward` runs it without torch (eval mode: BatchNorm with
running statistics, Dropout off), so fitted models pickle small, load on machines without torch or
GPU, and predict with numpy.
"""

import copy

import numpy as np

from featurestore.errors import TorchMissingError

#: Epsilon of torch.nn.BatchNorm1d (default), used by the numpy forward pass.
BATCHNORM_EPS = 1e-5

#: Module kinds understood by :func:`numpy_forward`.
KINDS = ("linear", "batchnorm", "relu", "dropout")


def import_torch(who):
    """Return the torch module, or raise ImportError saying who needs it and what to do."""
    try:
        import torch
    except ImportError as error:
        raise TorchMissingError(
            f"{who} needs PyTorch (pip install 'avscene[extract]' or torch); "
            "the models 'lr' and 'lgbm' work without it"
        ) from error
    return torch


def resolve_device(device):
    """Return a torch.device: ``"auto"`` picks CUDA when available, else CPU."""
    torch = import_torch("a torch network")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_mlp(in_dim, hidden, n_classes, *, dropout=0.2, batch_norm=True):
    """Return ``nn.Sequential``: per hidden width Linear, [BatchNorm1d], ReLU, Dropout; then Linear.

    Parameters
    ----------
    in_dim : int
    hidden : sequence of int (may be empty: a linear softmax model)
    n_classes : int
    """
    nn = import_torch("build_mlp").nn
    modules, width = [], in_dim
    for size in hidden:
        modules.append(nn.Linear(width, size))
        if batch_norm:
            modules.append(nn.BatchNorm1d(size))
        modules += [nn.ReLU(), nn.Dropout(dropout)]
        width = size
    modules.append(nn.Linear(width, n_classes))
    return nn.Sequential(*modules)


def l3_dense(in_dim=512, n_classes=10):
    """The baseline per-modality network 512-512-128-64-10 (BatchNorm, ReLU, Dropout 0.2)."""
    return build_mlp(in_dim, (512, 128, 64), n_classes, dropout=0.2, batch_norm=True)


def proposed_head(in_dim=256, n_classes=10, *, hidden=128):
    """The baseline's fusion head ``l3_combine``: Linear(in_dim, 128) -> Linear(128, n_classes)."""
    nn = import_torch("proposed_head").nn
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.Linear(hidden, n_classes))


def module_kinds(module):
    """Return the kind (one of :data:`KINDS`) of each child of a Sequential."""
    nn = import_torch("module_kinds").nn
    types = {
        nn.Linear: "linear",
        nn.BatchNorm1d: "batchnorm",
        nn.ReLU: "relu",
        nn.Dropout: "dropout",
    }
    kinds = []
    for child in module:
        if type(child) not in types:
            raise TypeError(f"no numpy forward for module {type(child).__name__}")
        kinds.append(types[type(child)])
    return kinds


def state_to_numpy(module):
    """Return ``{name: ndarray}`` copies (CPU, float32) of the module's parameters and buffers."""
    return {
        name: value.detach().cpu().numpy().copy()
        for name, value in module.state_dict().items()
        if value.is_floating_point()
    }


def numpy_forward(kinds, state, X, *, n_modules=None):
    """Run the first ``n_modules`` modules (all by default) of a Sequential in eval mode with numpy.

    Parameters
    ----------
    kinds : list of str, one of :data:`KINDS` per module
    state : dict, the module's numpy state (:func:`state_to_numpy`); keys ``"<index>.<name>"``
    X : ndarray, shape (n_rows, in_dim)

    Returns
    -------
    ndarray, shape (n_rows, out_dim), float32 (logits when the last module is the output layer)
    """
    out = np.asarray(X, dtype=np.float32)
    for index, kind in enumerate(kinds[:n_modules]):
        if kind == "linear":
            out = out @ state[f"{index}.weight"].T + state[f"{index}.bias"]
        elif kind == "batchnorm":
            scale = state[f"{index}.weight"] / np.sqrt(
                state[f"{index}.running_var"] + BATCHNORM_EPS
            )
            out = (out - state[f"{index}.running_mean"]) * scale + state[f"{index}.bias"]
        elif kind == "relu":
            out = np.maximum(out, 0.0)
        # dropout: identity in eval mode
    return out


def _batches(n_rows, batch_size, generator, *, drop_last):
    """Yield index tensors of a shuffled epoch; never a batch of one row (BatchNorm needs two)."""
    torch = import_torch("training")
    order = torch.randperm(n_rows, generator=generator)
    batch_size = min(batch_size, n_rows)
    stop = n_rows - n_rows % batch_size if drop_last else n_rows
    for start in range(0, stop, batch_size):
        batch = order[start : start + batch_size]
        if len(batch) > 1:
            yield batch


#: How :func:`train_network` measures the validation loss and breaks ties between epochs.
VAL_LOSSES = ("rows", "batches")
TIES = ("first", "last")


def mean_loss(module, X, y, *, device, batch_rows=8192):
    """Return the mean cross-entropy of ``module`` (eval mode) on tensors ``X``, ``y``."""
    torch = import_torch("mean_loss")
    module.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(X), batch_rows):
            logits = module(X[start : start + batch_rows].to(device))
            target = y[start : start + batch_rows].to(device)
            total += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
    return total / max(len(X), 1)


def mean_batch_loss(module, X, y, *, device, batch_size, generator):
    """Mean of the per-batch mean cross-entropies over one shuffled pass with ``drop_last``
    (the baseline's validation loss); a set smaller than a batch is one batch."""
    torch = import_torch("mean_batch_loss")
    module.eval()
    losses = []
    with torch.no_grad():
        for batch in _batches(len(X), batch_size, generator, drop_last=True):
            logits = module(X[batch].to(device))
            losses.append(float(torch.nn.functional.cross_entropy(logits, y[batch].to(device))))
    return float(np.mean(losses))


def best_epoch(history, *, ties="first"):
    """The epoch (1-based) whose state :func:`train_network` kept; the last one without validation."""
    losses = [h["val_loss"] for h in history]
    if not history or losses[0] is None:
        return len(history)
    losses = np.asarray(losses, dtype=np.float64)
    lowest = np.flatnonzero(losses == losses.min())
    return int(lowest[-1 if ties == "last" else 0]) + 1


def train_network(
    module,
    X,
    y,
    *,
    X_val=None,
    y_val=None,
    learning_rate=1e-4,
    weight_decay=1e-4,
    batch_size=64,
    max_epochs=100,
    patience=None,
    drop_last=True,
    bf16=False,
    device="cpu",
    seed=0,
    val_loss="rows",
    ties="first",
):
    """Train ``module`` in place with Adam on cross-entropy; keep the lowest-validation-loss state.

    Parameters
    ----------
    module : torch.nn.Module mapping (batch, in_dim) float32 to (batch, n_classes) logits
    X : ndarray, shape (n_rows, in_dim), float32
    y : ndarray, shape (n_rows,), int class indices
    X_val, y_val : validation arrays or None (then the final state is kept)
    patience : int or None
        Stop after this many epochs without a lower validation loss.
    bf16 : bool
        bfloat16 autocast for the forward pass (parameters and optimiser stay float32).
    seed : int
        Seeds the batch order and dropout (inside a forked RNG: global state is untouched).
    val_loss : {"rows", "batches"}
        The exact mean over the validation rows, or the baseline's mean of per-batch losses
        (shuffled batches of ``batch_size``, incomplete last batch dropped).
    ties : {"first", "last"}
        Which of several epochs with the lowest validation loss is kept ("last": the baseline's
        ``==`` minimum-so-far rule).

    Returns
    -------
    list of dict, one per epoch: ``epoch``, ``train_loss``, ``val_loss`` (None without validation)
    """
    torch = import_torch("train_network")
    if val_loss not in VAL_LOSSES or ties not in TIES:
        raise ValueError(
            f"val_loss must be one of {VAL_LOSSES} and ties one of {TIES}, got "
            f"{val_loss!r}, {ties!r}"
        )
    device = resolve_device(device)
    X_t, y_t = torch.from_numpy(np.ascontiguousarray(X, np.float32)), torch.from_numpy(y)
    has_val = X_val is not None and len(X_val) > 0
    if has_val:
        X_v = torch.from_numpy(np.ascontiguousarray(X_val, np.float32))
        y_v = torch.from_numpy(np.asarray(y_val, np.int64))
    module.to(device)
    trainable = [p for p in module.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(trainable, lr=learning_rate, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    history, best_loss, best_state, stale = [], np.inf, None, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for epoch in range(1, max_epochs + 1):
            module.train()
            total, seen = 0.0, 0
            for batch in _batches(len(X_t), batch_size, generator, drop_last=drop_last):
                inputs, target = X_t[batch].to(device), y_t[batch].to(device)
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = module(inputs)
                loss = torch.nn.functional.cross_entropy(logits.float(), target)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
                seen += len(batch)
            loss_now = None
            if has_val and val_loss == "batches":
                loss_now = mean_batch_loss(
                    module, X_v, y_v, device=device, batch_size=batch_size, generator=generator
                )
            elif has_val:
                loss_now = mean_loss(module, X_v, y_v, device=device)
            history.append(
                {"epoch": epoch, "train_loss": total / max(seen, 1), "val_loss": loss_now}
            )
            if has_val and (loss_now < best_loss or (ties == "last" and loss_now == best_loss)):
                best_loss, stale = min(loss_now, best_loss), 0
                best_state = copy.deepcopy(module.state_dict())
            elif has_val:
                stale += 1
                if patience is not None and stale >= patience:
                    break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return history


def read_state_dict(path):
    """The tensors of a saved PyTorch state dict, as ``{key: ndarray}`` (CPU copies).

    Read with ``torch.load(path, map_location="cpu", weights_only=True)``: nothing but tensors
    and plain containers is ever unpickled. Raises ValueError (one line naming the file) when
    the file is not a state dict of tensors; OSError when it cannot be read.
    """
    torch = import_torch("reading a PyTorch checkpoint")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as error:  # UnpicklingError, RuntimeError, EOFError, ... of bad files
        reason = " ".join(str(error).split())[:120]
        raise ValueError(
            f"{path}: not a PyTorch checkpoint readable with weights_only=True "
            f"({type(error).__name__}: {reason})"
        ) from None
    if not isinstance(loaded, dict) or not loaded:
        raise ValueError(
            f"{path}: holds a {type(loaded).__name__}, not a state dict "
            "(a mapping of parameter names to tensors)"
        )
    state = {}
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(
                f"{path}: entry {str(key)[:60]!r} is a {type(value).__name__}, not a "
                "tensor: not a state dict"
            )
        state[key] = value.detach().cpu().numpy().copy()
    return state


class torch_threads:
    """Context manager: ``torch.set_num_threads(n)`` inside, previous value restored (None: no-op)."""

    def __init__(self, n_threads):
        self.n_threads = n_threads
        self.previous = None

    def __enter__(self):
        if self.n_threads is not None:
            torch = import_torch("torch_threads")
            self.previous = torch.get_num_threads()
            torch.set_num_threads(int(self.n_threads))
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            import_torch("torch_threads").set_num_threads(self.previous)
        return False
