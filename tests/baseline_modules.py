"""The DCASE 2021 Task 1B baseline's networks, re-stated in torch for the tests (not collected).

Written from the architecture of ``train/model.py`` and ``train_combine/model_combine.py`` of
``shanwangshan/TAU-urban-audio-visual-scenes`` (a module with one ``nn.Sequential`` called
``model``, so that the repository's state dict keys ``model.0.weight`` ... load unchanged), with
nothing from avscene, to check avscene's checkpoint import against.
"""

import numpy as np
import torch
from torch import nn


class L3Dense(nn.Module):
    """``l3_dense(emb_dim, n)``: three Linear-BatchNorm-ReLU-Dropout(0.2) blocks 512, 128, 64."""

    def __init__(self, emb_dim, n_classes=10):
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(emb_dim, 512),
            nn.BatchNorm1d(512),
            nn.ReLU(),
            nn.Dropout(p=0.2),
            nn.Linear(512, 128),
            nn.BatchNorm1d(128),
            nn.ReLU(),
            nn.Dropout(p=0.2),
            nn.Linear(128, 64),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.Dropout(p=0.2),
            nn.Linear(64, n_classes),
        )

    def forward(self, x):
        return self.model(x)


class L3Combine(nn.Module):
    """``l3_combine(emb_dim, n)``: Linear(emb_dim, 128) then Linear(128, n)."""

    def __init__(self, emb_dim=256, n_classes=10):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(emb_dim, 128), nn.Linear(128, n_classes))

    def forward(self, x):
        return self.model(x)


def load(module, path):
    """``module`` with the state dict at ``path`` loaded strictly, in eval mode."""
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return module.eval()


def random_state(module, seed):
    """Give a module random weights and BatchNorm statistics (not the defaults)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(int(torch.randint(1, 1000, (1,), generator=generator)))
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif tensor.ndim == 2:  # Linear weights, at PyTorch's init scale
                tensor.copy_(
                    torch.randn(tensor.shape, generator=generator) / tensor.shape[1] ** 0.5
                )
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.2)
    return module


def l3_dense_proba(module, normalised):
    """Softmax of the eval-mode module on float32 rows, as float64 numpy."""
    with torch.no_grad():
        logits = module(torch.from_numpy(np.ascontiguousarray(normalised, np.float32)))
        return torch.softmax(logits, dim=1).double().numpy()


def proposed_proba(audio, video, head, normalised_audio, normalised_video):
    """The proposed fusion as train_combine/test_DCASE.py runs it: first 5 modules per branch."""
    with torch.no_grad():
        a = torch.from_numpy(np.ascontiguousarray(normalised_audio, np.float32))
        v = torch.from_numpy(np.ascontiguousarray(normalised_video, np.float32))
        for module in list(audio.model)[:5]:
            a = module(a)
        for module in list(video.model)[:5]:
            v = module(v)
        return torch.softmax(head(torch.cat((a, v), 1)), dim=1).double().numpy()
