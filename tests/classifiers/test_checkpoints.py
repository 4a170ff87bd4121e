"""The baseline's checkpoints as estimators, against an independent torch re-statement of its nets.

The real checkpoints (``../shared/dcase2021-baseline/``) and random state dicts saved here in the
repository's layout load into avscene estimators whose probabilities equal those of the
baseline's modules (``tests/baseline_modules.py``) on the same inputs; bad state dicts fail with
one line naming the file and the key.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from classifiers import dcase_checkpoints, dcase_networks  # noqa: E402
from featurestore.datasets import SCENES  # noqa: E402
from featurestore.errors import CheckpointError  # noqa: E402
from tests import baseline_modules as official  # noqa: E402
from tests.helpers import shared_path  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")
BASELINE = shared_path("dcase2021-baseline")


def saved(module, path):
    torch.save(module.state_dict(), path)
    return path


def rows(n, dim, seed):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


@pytest.mark.parametrize("in_dim", [512, 1024, 24])
def test_random_l3_dense_state_dicts_predict_as_the_official_module(in_dim, tmp_path):
    module = official.random_state(official.L3Dense(in_dim), seed=in_dim).eval()
    path = saved(module, tmp_path / "model.pt")
    network = dcase_checkpoints.l3_dense_classifier(
        dcase_networks.read_state_dict(path), in_dim=in_dim, classes=SCENES, path=path
    )
    X = rows(200, in_dim, seed=1)
    np.testing.assert_allclose(
        network.predict_proba(X), official.l3_dense_proba(module, X), rtol=1e-5, atol=1e-6
    )
    assert list(network.classes_) == list(SCENES)


def test_random_proposed_state_dicts_predict_as_the_official_modules(tmp_path):
    audio = official.random_state(official.L3Dense(512), seed=1).eval()
    video = official.random_state(official.L3Dense(512), seed=2).eval()
    head = official.random_state(official.L3Combine(256), seed=3).eval()
    branches = [
        dcase_checkpoints.l3_dense_classifier(
            dcase_networks.read_state_dict(saved(m, tmp_path / f"{name}.pt")),
            in_dim=512,
            classes=SCENES,
            path=name,
        )
        for name, m in (("audio", audio), ("video", video))
    ]
    fusion = dcase_checkpoints.proposed_fusion(
        branches,
        dcase_networks.read_state_dict(saved(head, tmp_path / "head.pt")),
        columns=[slice(0, 512), slice(512, 1024)],
        names=["a", "v"],
        path="head.pt",
    )
    A, V = rows(150, 512, seed=4), rows(150, 512, seed=5)
    expected = official.proposed_proba(audio, video, head, A, V)
    np.testing.assert_allclose(
        fusion.predict_proba(np.concatenate([A, V], axis=1)), expected, rtol=1e-5, atol=1e-6
    )


@pytest.mark.needs_reference(BASELINE)
def test_the_official_checkpoints_predict_as_the_official_modules():
    A, V = rows(300, 512, seed=6), rows(300, 512, seed=7)
    nets = {}
    for name, in_dim, X in (
        ("audio", 512, A),
        ("video", 512, V),
        ("early_av", 1024, np.concatenate([A, V], axis=1)),
    ):
        path = BASELINE / f"{name}_l3_dense.pt"
        module = official.load(official.L3Dense(in_dim), path)
        nets[name] = dcase_checkpoints.l3_dense_classifier(
            dcase_networks.read_state_dict(path), in_dim=in_dim, classes=SCENES, path=path
        )
        np.testing.assert_allclose(
            nets[name].predict_proba(X), official.l3_dense_proba(module, X), rtol=1e-5, atol=1e-6
        )
    head_path = BASELINE / "proposed_combine_head.pt"
    fusion = dcase_checkpoints.proposed_fusion(
        [nets["audio"], nets["video"]],
        dcase_networks.read_state_dict(head_path),
        columns=[slice(0, 512), slice(512, 1024)],
        names=["a", "v"],
        path=head_path,
    )
    expected = official.proposed_proba(
        official.load(official.L3Dense(512), BASELINE / "audio_l3_dense.pt"),
        official.load(official.L3Dense(512), BASELINE / "video_l3_dense.pt"),
        official.load(official.L3Combine(256), head_path),
        A,
        V,
    )
    np.testing.assert_allclose(
        fusion.predict_proba(np.concatenate([A, V], axis=1)), expected, rtol=1e-5, atol=1e-6
    )


def broken(state, case):
    state = dict(state)
    if case == "missing":
        del state["model.12.bias"]
    elif case == "unexpected":
        state["model.13.weight"] = np.zeros((10, 10), np.float32)
    elif case == "shape":
        state["model.4.weight"] = np.zeros((128, 256), np.float32)
    elif case == "nan":
        state["model.1.running_var"] = np.full(512, np.nan, np.float32)
    return state


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "key 'model.12.bias' is missing"),
        ("unexpected", "unexpected key 'model.13.weight'"),
        ("shape", "model.4.weight has shape (128, 256), l3_dense(512, 10) needs (128, 512)"),
        ("nan", "model.1.running_var holds non-finite"),
    ],
)
def test_bad_state_dicts_fail_with_one_line_naming_file_and_key(case, message, tmp_path):
    state = dcase_networks.read_state_dict(saved(official.L3Dense(512), tmp_path / "model.pt"))
    with pytest.raises(CheckpointError) as error:
        dcase_checkpoints.l3_dense_classifier(
            broken(state, case), in_dim=512, classes=SCENES, path="model.pt"
        )
    assert str(error.value).startswith("model.pt: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_checkpoint_for_another_width_or_not_a_state_dict_fails_with_one_line(tmp_path):
    state = dcase_networks.read_state_dict(saved(official.L3Dense(512), tmp_path / "model.pt"))
    with pytest.raises(CheckpointError, match=r"model.0.weight has shape \(512, 512\)"):
        dcase_checkpoints.l3_dense_classifier(state, in_dim=1024, classes=SCENES, path="model.pt")
    torch.save([torch.zeros(3)], tmp_path / "list.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    torch.save({"model.0.weight": torch.zeros(2), "epoch": 3}, tmp_path / "mixed.pt")
    for name, message in (
        ("list.pt", "holds a list, not a state dict"),
        ("text.pt", "not a PyTorch checkpoint readable with weights_only=True"),
        ("mixed.pt", "entry 'epoch' is a int, not a tensor"),
    ):
        with pytest.raises(ValueError) as error:
            dcase_networks.read_state_dict(tmp_path / name)
        assert message in str(error.value) and "\n" not in str(error.value)
        assert str(error.value).startswith(str(tmp_path / name))


class _RunsACommand:
    """Unpickling this would create ``marker`` (what a hostile checkpoint could do instead)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_holding_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "hostile.pt"
    torch.save({"model.0.weight": torch.zeros(2), "payload": _RunsACommand(marker)}, path)
    with pytest.raises(ValueError) as error:
        dcase_networks.read_state_dict(path)
    assert str(error.value).startswith(
        f"{path}: not a PyTorch checkpoint readable with weights_only=True"
    ) and "\n" not in str(error.value)
    assert not marker.exists()
