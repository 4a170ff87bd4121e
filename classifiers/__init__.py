"""avscene classifiers: estimators with the scikit-learn protocol, fusion and DCASE metrics.

Works on arrays only (no media, no store access); torch is imported lazily inside the
estimators that need it, so ``import classifiers`` works without torch installed.
"""
