"""Torch networks: numpy inference equals torch eval mode; best validation epoch kept; presets."""

import numpy as np
import pytest

from classifiers import dcase_networks, presets
from classifiers.mlp import TorchMLPClassifier
from tests.helpers import BLOCK_TORCH, small_av

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("single_thread")


def test_numpy_forward_equals_torch_eval_mode():
    torch.manual_seed(0)
    net = dcase_networks.l3_dense(48, 7)
    for module in net:
        if isinstance(module, torch.nn.BatchNorm1d):  # non-trivial running statistics
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.normal_()
            module.bias.data.normal_()
    net.eval()
    X = np.random.default_rng(0).normal(size=(33, 48)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(X)).numpy()
    kinds, state = dcase_networks.module_kinds(net), dcase_networks.state_to_numpy(net)
    assert kinds[:5] == ["linear", "batchnorm", "relu", "dropout", "linear"]
    np.testing.assert_allclose(
        dcase_networks.numpy_forward(kinds, state, X), expected, rtol=1e-4, atol=1e-5
    )
    with torch.no_grad():
        trunk = net[:5](torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(
        dcase_networks.numpy_forward(kinds, state, X, n_modules=5), trunk, rtol=1e-4, atol=1e-5
    )


def test_training_keeps_the_lowest_validation_loss_state():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 10)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    X_val = rng.normal(size=(100, 10)).astype(np.float32)
    y_val = rng.integers(
        0, 2, 100
    )  # random validation labels: the loss drifts as training overfits
    torch.manual_seed(0)
    net = dcase_networks.build_mlp(10, (64,), 2)
    history = dcase_networks.train_network(
        net,
        X,
        y,
        X_val=X_val,
        y_val=y_val,
        learning_rate=1e-2,
        batch_size=32,
        max_epochs=8,
        seed=0,
    )
    best = min(h["val_loss"] for h in history)
    final = dcase_networks.mean_loss(
        net, torch.from_numpy(X_val), torch.from_numpy(y_val), device="cpu"
    )
    assert final == pytest.approx(best, rel=1e-5)


def test_patience_stops_early():
    X, y, groups, _ = small_av(seed=1)
    model = TorchMLPClassifier(
        hidden=(8,), max_epochs=50, patience=1, learning_rate=0.1, batch_size=16, random_state=0
    ).fit(X, y, groups=groups)
    assert len(model.history_) < 50
    assert 1 <= model.best_epoch_ <= len(model.history_)


def test_bf16_option_trains():
    X, y, groups, _ = small_av(seed=2)
    model = TorchMLPClassifier(hidden=(16,), max_epochs=2, bf16=True, random_state=0).fit(X, y)
    assert model.predict_proba(X).shape == (len(X), 4)


def test_presets_are_plain_dicts_with_every_model():
    for name in ("fast", "default", "paper"):
        preset = presets.get_preset(name)
        assert set(preset) == {"lr", "mlp", "lgbm", "baseline", "proposed", "stack"}
    preset = presets.get_preset("fast")
    preset["lr"]["C"] = 123.0
    assert presets.get_preset("fast")["lr"]["C"] != 123.0  # callers get copies
    with pytest.raises(ValueError, match="unknown preset"):
        presets.get_preset("nope")


def test_without_torch_fitting_raises_one_clear_error_and_fitted_models_still_predict(tmp_path):
    import json
    import pathlib
    import subprocess
    import sys

    from classifiers.persistence import dump_estimator

    X, y, _, _ = small_av(seed=3)
    model = TorchMLPClassifier(hidden=(8,), max_epochs=1, random_state=0).fit(X, y)
    tree, arrays, _ = dump_estimator(model)
    (tmp_path / "model.json").write_text(json.dumps(tree))
    np.savez(tmp_path / "model.npz", X=X, **arrays)
    code = (
        BLOCK_TORCH
        + f"""
import json, numpy as np
from classifiers.mlp import TorchMLPClassifier
from classifiers.persistence import load_estimator
from featurestore.errors import AvsceneError
with np.load({str(tmp_path / "model.npz")!r}, allow_pickle=False) as stored:
    arrays = {{key: stored[key] for key in stored.files}}
X = arrays.pop("X")
model = load_estimator(json.loads(open({str(tmp_path / "model.json")!r}).read()), arrays, {{}})
assert model.predict_proba(X).shape == (len(X), 4)
try:
    TorchMLPClassifier().fit(X, model.predict(X))
except AvsceneError as error:
    assert isinstance(error, ImportError) and "needs PyTorch" in str(error), error
else:
    raise SystemExit("fit without torch did not fail")
assert "torch" not in sys.modules
"""
    )
    root = pathlib.Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_best_epoch_breaks_ties_as_asked():
    history = [{"val_loss": v} for v in (0.9, 0.5, 0.7, 0.5, 0.6)]
    assert dcase_networks.best_epoch(history, ties="first") == 2
    assert dcase_networks.best_epoch(history, ties="last") == 4
    assert dcase_networks.best_epoch([{"val_loss": None}] * 3) == 3


@pytest.mark.parametrize("ties", ["first", "last"])
def test_ties_keep_the_first_or_the_last_epoch_of_equal_validation_loss(ties, monkeypatch):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(96, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)

    def trained(epochs, *, validation):
        torch.manual_seed(0)
        net = dcase_networks.build_mlp(6, (8,), 2)
        dcase_networks.train_network(
            net,
            X,
            y,
            X_val=X[:10] if validation else None,
            y_val=y[:10] if validation else None,
            learning_rate=1e-2,
            batch_size=16,
            max_epochs=epochs,
            seed=3,
            ties=ties,
        )
        return dcase_networks.state_to_numpy(net)

    after_one, after_four = trained(1, validation=False), trained(4, validation=False)
    monkeypatch.setattr(dcase_networks, "mean_loss", lambda *a, **k: 0.25)  # every epoch ties
    kept = trained(4, validation=True)
    expected = after_one if ties == "first" else after_four
    for key in expected:
        np.testing.assert_array_equal(kept[key], expected[key])
    assert not np.array_equal(after_one["0.weight"], after_four["0.weight"])


def test_batch_validation_loss_is_the_mean_of_shuffled_full_batches():
    rng = np.random.default_rng(3)
    X = torch.from_numpy(rng.normal(size=(150, 6)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, 150))
    torch.manual_seed(1)
    net = dcase_networks.build_mlp(6, (8,), 3).eval()
    found = dcase_networks.mean_batch_loss(
        net, X, y, device="cpu", batch_size=64, generator=torch.Generator().manual_seed(9)
    )
    order = torch.randperm(150, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():  # the DataLoader's shuffle, drop_last: batches of 64 rows, 22 dropped
        losses = [
            float(
                torch.nn.functional.cross_entropy(net(X[order[s : s + 64]]), y[order[s : s + 64]])
            )
            for s in (0, 64)
        ]
    assert found == pytest.approx(np.mean(losses), rel=1e-6)
    exact = dcase_networks.mean_loss(net, X[:128], y[:128], device="cpu")
    whole = dcase_networks.mean_batch_loss(
        net,
        X[:128],
        y[:128],
        device="cpu",
        batch_size=64,
        generator=torch.Generator().manual_seed(9),
    )
    assert whole == pytest.approx(exact, rel=1e-5)  # equal batches cover every row once
