"""A small HEAR-API module for the tests: a fixed linear projection of 25 ms frames at 16 kHz.

``load_model(path)`` reads the projection, a (8, 400) float32 ``.npy`` file (no pickle), or uses
an all-ones one for ``path == ""``. ``get_timestamp_embeddings`` embeds frame k, the 400
samples centred on sample ``k * 160`` (zero padding at both ends), for
``k = 0 .. n_samples // 160``, and reports its centre ``k * 10`` ms, as the HEAR API asks
(milliseconds, centre of the frame).
"""

import numpy as np
import torch

__version__ = "0.3"

SAMPLE_RATE, WINDOW, HOP = 16000, 400, 160


class Model(torch.nn.Module):
    sample_rate = SAMPLE_RATE
    timestamp_embedding_size = 8
    scene_embedding_size = 8

    def __init__(self, projection):
        super().__init__()
        self.register_buffer("projection", torch.from_numpy(projection))


def load_model(model_file_path=""):
    if model_file_path:
        projection = np.load(model_file_path, allow_pickle=False).astype(np.float32)
    else:
        projection = np.ones((8, WINDOW), np.float32)
    return Model(projection)


def get_timestamp_embeddings(audio, model):
    if audio.ndim != 2:
        raise ValueError("audio must be (n_sounds, n_samples)")
    n_sounds, n_samples = audio.shape
    padded = torch.nn.functional.pad(audio, (WINDOW // 2, WINDOW // 2))
    frames = padded.unfold(1, WINDOW, HOP)[:, : 1 + n_samples // HOP]  # (n, frames, 400)
    embeddings = frames @ model.projection.T
    stamps = torch.arange(frames.shape[1], dtype=torch.float32) * (1000.0 * HOP / SAMPLE_RATE)
    return embeddings, stamps.expand(n_sounds, -1)


def get_scene_embeddings(audio, model):
    return get_timestamp_embeddings(audio, model)[0].mean(dim=1)
