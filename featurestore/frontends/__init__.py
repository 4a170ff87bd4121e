"""Spectral frontends: the Slaney mel filterbank and batched log-mel spectrograms.

Modules: :mod:`~featurestore.frontends.melfilters` (NumPy, equal to librosa's Slaney filterbank;
used by OpenL3's frontend too) and :mod:`~featurestore.frontends.logmel` (log-mel in torch with a
timestamp per frame, ``logmel.logmel(signals, params)``; torch is imported by the functions
that run it).
"""

from featurestore.frontends import logmel, melfilters
from featurestore.frontends.logmel import logmel_params
from featurestore.frontends.melfilters import mel_filterbank

__all__ = ["logmel", "logmel_params", "mel_filterbank", "melfilters"]
